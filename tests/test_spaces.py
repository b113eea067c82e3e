"""Deploying to Hugging Face Spaces: the README front matter, a start with no arguments, and the ZeroGPU hook.

- The front matter (YAML between the README's first two `---` lines) is what configures a Space: it must agree
  with requirements.txt (gradio version), the app file, the Python the suite runs on, and models.yaml.
- On a Space the platform runs `python app.py` with SPACE_ID and the port in the environment: the app must
  listen on 0.0.0.0 and serve without any argument.
- ZeroGPU: `spaces.GPU(duration=...)` wraps the function that runs the model when `spaces` can be imported. A
  stand-in `spaces` module (a real file on sys.path) records what it wraps; without it nothing changes.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import httpx
import psutil
import pytest
import yaml

from tests.app_process import AppProcess
from tests.conftest import ROOT, free_port
from tests.tiny_models import CHAT_ID
from tests.tiers import full_tier

# Valid values, from the Spaces configuration reference (huggingface.co/docs/hub/spaces-config-reference).
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
SHORT_DESCRIPTION_MAX = 60


def front_matter() -> dict[str, Any]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "---", "README.md must start with the Spaces YAML front matter (a line '---')"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end]))


def pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(rf"{re.escape(package)}==([\w.]+)", line.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"requirements.txt does not pin {package}")


def hub_sources() -> set[str]:
    """The Hub repositories models.yaml loads in this process (local folders and remote servers excluded)."""
    from backend.core.config import load_config

    config = load_config(ROOT / "models.yaml")
    return {spec.source for spec in config.models
            if spec.backend == "transformers" and spec.local_path() is None}


def test_front_matter_makes_a_gradio_space() -> None:
    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == pinned("gradio"), "the Space must run the gradio the tests ran against"
    assert (ROOT / meta["app_file"]).is_file()
    # A string (quoted: an unquoted 3.10 would be read as 3.1), the Python this suite runs on.
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    from huggingface_hub import SpaceHardware

    assert meta["suggested_hardware"] in {flavor.value for flavor in SpaceHardware}
    assert {meta["colorFrom"], meta["colorTo"]} <= COLORS
    assert meta["title"] and meta["emoji"] and meta["license"]
    assert 0 < len(meta["short_description"]) <= SHORT_DESCRIPTION_MAX


def test_front_matter_preloads_the_models_of_models_yaml() -> None:
    meta = front_matter()
    sources = hub_sources()
    assert sources, "models.yaml lists no Hub model"
    # Each entry: "repo_id [file1,file2,...] [commit]" (the Spaces format).
    preloaded = [entry.split() for entry in meta["preload_from_hub"]]
    assert all(1 <= len(parts) <= 3 for parts in preloaded)
    assert {parts[0] for parts in preloaded} == sources
    for parts in preloaded:
        if len(parts) >= 2:
            files = parts[1].split(",")
            gguf = all(f.endswith(".gguf") for f in files)  # a GGUF entry's file (gguf_file) is the whole model
            assert gguf or ("config.json" in files and any(f.endswith(".safetensors") for f in files)), parts
    assert set(meta["models"]) == sources


def test_host_defaults_to_all_interfaces_on_a_space(monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert app.parse_args([]).host == "127.0.0.1"
    monkeypatch.setenv("SPACE_ID", "user/space")
    assert app.parse_args([]).host == "0.0.0.0"
    monkeypatch.setenv("GRADIO_SERVER_NAME", "10.1.2.3")
    assert app.parse_args([]).host == "10.1.2.3"
    assert app.parse_args(["--host", "127.0.0.1"]).host == "127.0.0.1"


@pytest.fixture(scope="module")
@full_tier
def space_app(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`python app.py` with no arguments, in the environment a Space gives it."""
    port = free_port()
    env = dict(SPACE_ID="user/space", SPACE_AUTHOR_NAME="user", SPACE_REPO_NAME="space",
               GRADIO_SERVER_PORT=str(port), WORKBENCH_MODELS=str(tiny_models_yaml), WORKBENCH_PRELOAD=CHAT_ID)
    with AppProcess(env=env, port=port, listen=False,
                    unset=("GRADIO_SERVER_NAME", "WORKBENCH_PRESENTER", "PORT")).wait_ready(90) as app:
        yield app.url, app.popen.pid


def test_app_starts_with_no_arguments_on_a_space(space_app: tuple[str, int]) -> None:
    from gradio_client import Client

    url, pid = space_app
    listening = {(conn.laddr.ip, conn.laddr.port) for conn in psutil.Process(pid).net_connections(kind="tcp")
                 if conn.status == psutil.CONN_LISTEN}
    assert ("0.0.0.0", int(url.rsplit(":", 1)[1].strip("/"))) in listening, listening
    assert httpx.get(url, timeout=30).status_code == 200
    client = Client(url, verbose=False)
    statuses = {status["id"]: status["state"] for status in client.predict(api_name="/models")}
    assert statuses[CHAT_ID] == "loaded"  # WORKBENCH_PRELOAD: loaded before the first request
    assert {state for model_id, state in statuses.items() if model_id != CHAT_ID} == {"unloaded"}
    client.close()


def test_preload_defaults_to_every_local_model_on_zerogpu_only(tiny_models_yaml: Path) -> None:
    import app
    from backend.core.config import load_config
    from backend.core.types import ConfigError

    config = load_config(tiny_models_yaml)
    local = [spec.id for spec in config.models if spec.backend == "transformers"]
    assert app.preload_ids(config, None, on_zerogpu=False) == []
    assert app.preload_ids(config, None, on_zerogpu=True) == local and local
    assert app.preload_ids(config, "none", on_zerogpu=True) == []
    assert app.preload_ids(config, f" {CHAT_ID} ,", on_zerogpu=False) == [CHAT_ID]
    with pytest.raises(ConfigError, match=r"WORKBENCH_PRELOAD: 'nope' is not a local model"):
        app.preload_ids(config, f"{CHAT_ID},nope", on_zerogpu=False)


# ------------------------------------------------------------------------------------------------ ZeroGPU

STAND_IN_SPACES = textwrap.dedent('''
    """A stand-in for the `spaces` package as it behaves on ZeroGPU: GPU(duration=...) runs every call in a
    worker process forked from the app, arguments and results pickled across (multiprocessing's fork context and
    queues, as spaces does), a generator's items streamed back one by one, and closing it early stops the worker's
    generator at its next item. Like spaces, a worker's exception reaches the app as its class name only.
    It also records what it wraps and every call."""
    import functools
    import inspect
    import multiprocessing

    WRAPPED = []  # (function name, duration) per decorated function
    CALLS = []  # (function name, duration) per call
    FAIL_WITH = None  # set to an exception to play a refused GPU request (e.g. quota exceeded)
    _fork = multiprocessing.get_context("fork")


    def _worker(task, generator, arguments, results, stop):
        # The real worker computes on its GPU; this one on the CPU, where OpenMP's thread pool does not survive
        # a fork (a parallel region in the child can hang), so one thread, as PyTorch's DataLoader workers do.
        import torch
        torch.set_num_threads(1)
        args, kwargs = arguments.get()
        try:
            if generator:
                items = task(*args, **kwargs)
                for item in items:
                    if stop.is_set():
                        items.close()
                        break
                    results.put(("item", item))
            else:
                results.put(("item", task(*args, **kwargs)))
            results.put(("end", None))
        except BaseException as error:
            results.put(("error", type(error).__name__))


    def GPU(fn=None, *, duration=60):
        def decorate(task):
            name = getattr(task, "__name__", "?")
            WRAPPED.append((name, duration))
            generator = inspect.isgeneratorfunction(task)

            def start(args, kwargs):
                CALLS.append((name, duration))
                if FAIL_WITH is not None:
                    raise FAIL_WITH
                arguments, results, stop = _fork.SimpleQueue(), _fork.SimpleQueue(), _fork.Event()
                worker = _fork.Process(target=_worker, args=(task, generator, arguments, results, stop), daemon=True)
                worker.start()
                arguments.put((args, kwargs))  # pickled here
                return worker, results, stop

            def outcomes(worker, results):
                try:
                    while True:
                        kind, value = results.get()
                        if kind == "end":
                            return
                        if kind == "error":
                            raise RuntimeError(f"ZeroGPU worker error: {value}")
                        yield value
                finally:
                    worker.join(timeout=60)

            if generator:
                @functools.wraps(task)
                def on_gpu(*args, **kwargs):
                    worker, results, stop = start(args, kwargs)
                    items = outcomes(worker, results)
                    try:
                        yield from items
                    except GeneratorExit:
                        stop.set()
                        for _ in items:  # drain until the worker has stopped
                            pass
                        raise
            else:
                @functools.wraps(task)
                def on_gpu(*args, **kwargs):
                    return next(outcomes(*start(args, kwargs)[:2]))

            return on_gpu

        return decorate(fn) if fn is not None else decorate
''')


@pytest.fixture
def stand_in_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "spaces.py").write_text(STAND_IN_SPACES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("spaces", None)
    import spaces

    yield spaces
    sys.modules.pop("spaces", None)


def chat_registry(tiny_models_yaml: Path, gpu_duration_s: int):
    from backend.core.config import parse_config
    from backend.core.registry import Registry
    from backend.engines import create_engine

    raw = yaml.safe_load(tiny_models_yaml.read_text(encoding="utf-8"))
    for entry in raw["models"]:
        if entry["id"] == CHAT_ID:
            entry["gpu_duration_s"] = gpu_duration_s
    return Registry(parse_config(raw, tiny_models_yaml), create_engine)


def reply(registry) -> str:  # noqa: ANN001 - Registry
    from backend.services import generation as service
    from backend.core.types import Final, GenerationParams

    params = GenerationParams(max_new_tokens=24, temperature=0.8, seed=7)
    events = list(service.stream_chat(registry, CHAT_ID, "Hello there", params=params))
    assert isinstance(events[-1], Final)
    return events[-1].text


def test_gpu_function_is_the_original_without_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.engines.zerogpu import gpu_function

    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` fails, as where it is not installed

    def forward() -> int:
        return 1

    assert gpu_function(forward, 30) is forward


def test_generation_runs_in_a_forked_gpu_worker_with_the_models_duration(stand_in_spaces: Any,
                                                                         tiny_models_yaml: Path) -> None:
    """The GPU step gets plain values (it crosses a process boundary) and streams back the same text."""
    registry = chat_registry(tiny_models_yaml, gpu_duration_s=17)
    try:
        registry.load(CHAT_ID)  # ZeroGPU's rule: loaded before the worker is forked
        on_gpu = reply(registry)
        with registry.lease(CHAT_ID) as engine:
            assert engine.batcher.steps_on_gpu is not None
    finally:
        registry.close()
    assert stand_in_spaces.WRAPPED == [("decode_steps_of_model", 17)]
    assert stand_in_spaces.CALLS == [("decode_steps_of_model", 17)]  # one batch, one GPU call

    # Without `spaces`: the very same output, and the batcher runs the step in its own thread.
    sys.modules.pop("spaces", None)
    sys.path.remove(str(Path(stand_in_spaces.__file__).parent))
    registry = chat_registry(tiny_models_yaml, gpu_duration_s=17)
    try:
        assert reply(registry) == on_gpu and on_gpu
        with registry.lease(CHAT_ID) as engine:
            assert engine.batcher.steps_on_gpu is None
    finally:
        registry.close()
    assert len(stand_in_spaces.CALLS) == 1  # nothing went through the stand-in this time


def test_stop_reaches_the_gpu_worker(stand_in_spaces: Any, tiny_models_yaml: Path) -> None:
    """Stop flags are shared memory: rows the app ends stop decoding in the worker, mid-batch."""
    import torch

    from backend.engines.decode import RowPlan
    from backend.core.types import GenerationParams

    registry = chat_registry(tiny_models_yaml, gpu_duration_s=17)
    try:
        with registry.lease(CHAT_ID) as engine:
            greedy = GenerationParams(max_new_tokens=300, temperature=0.0)
            rows = [RowPlan.of(engine.tokenizer("Hello")["input_ids"], greedy, 300, 0)] * 2
            stop_flags = torch.zeros(2, dtype=torch.bool)
            steps = engine.batcher.steps_on_gpu(engine.runtime.model_key, engine.runtime.decoding, rows, stop_flags)
            for count, step in enumerate(steps):
                assert len(step.token_ids) == 2
                if count == 3:
                    stop_flags[:] = True  # written here, after the flags were pickled to the worker
                assert count < 10, "the worker kept decoding rows the app had ended"
            assert count < 10

            # Closing the stream early (every consumer gone) ends the worker's batch too.
            steps = engine.batcher.steps_on_gpu(engine.runtime.model_key, engine.runtime.decoding, rows,
                                                torch.zeros(2, dtype=torch.bool))
            next(steps)
            steps.close()
    finally:
        registry.close()


def test_classifier_and_label_scoring_run_in_the_forked_gpu_worker(stand_in_spaces: Any,
                                                                   tiny_models_yaml: Path) -> None:
    from backend.services import classification

    def scores(registry) -> list[Any]:  # noqa: ANN001
        for model in ("tiny-classifier", "tiny-nli", CHAT_ID):
            registry.load(model)
        return [classification.classify_texts(registry, "tiny-classifier", ["good", "bad"]).scores,
                classification.classify_texts(registry, "tiny-nli", ["good"], "x, y").scores,
                classification.classify_texts(registry, CHAT_ID, ["good"], "x, y").scores]

    registry = chat_registry(tiny_models_yaml, gpu_duration_s=9)
    try:
        on_gpu = scores(registry)
    finally:
        registry.close()
    called = {name for name, _ in stand_in_spaces.CALLS}
    assert {"_forward", "_label_log_likelihoods"} <= called

    sys.modules.pop("spaces", None)
    sys.path.remove(str(Path(stand_in_spaces.__file__).parent))
    registry = chat_registry(tiny_models_yaml, gpu_duration_s=9)
    try:
        assert scores(registry) == on_gpu
    finally:
        registry.close()


def test_a_refused_gpu_request_reaches_the_caller(stand_in_spaces: Any, tiny_models_yaml: Path) -> None:
    """ZeroGPU refuses calls (quota exceeded, illegal duration): the request fails with that error, no hang."""
    from backend.core.types import GenerationError

    stand_in_spaces.FAIL_WITH = RuntimeError("ZeroGPU quota exceeded (60s requested vs. 12s left)")
    registry = chat_registry(tiny_models_yaml, gpu_duration_s=60)
    try:
        with pytest.raises(GenerationError, match="quota exceeded"):
            reply(registry)
    finally:
        registry.close()


def test_evaluation_runs_in_the_forked_gpu_worker(stand_in_spaces: Any, tiny_models_yaml: Path) -> None:
    from backend.evaluation import inference

    def evaluate(registry) -> tuple[Any, Any]:  # noqa: ANN001
        registry.load(CHAT_ID)
        with registry.lease(CHAT_ID) as engine:
            texts = ["the cat sat", "a longer sentence about dogs", "x"]
            return (inference.generate_texts(engine, texts, max_new_tokens=8, batch_size=2, chat=False),
                    inference.text_log_likelihoods(engine, texts, batch_size=2))

    registry = chat_registry(tiny_models_yaml, gpu_duration_s=5)
    try:
        on_gpu = evaluate(registry)
    finally:
        registry.close()
    assert {"decode_steps_of_model", "_nll_of_rows"} <= {name for name, _ in stand_in_spaces.CALLS}

    sys.modules.pop("spaces", None)
    sys.path.remove(str(Path(stand_in_spaces.__file__).parent))
    registry = chat_registry(tiny_models_yaml, gpu_duration_s=5)
    try:
        assert evaluate(registry) == on_gpu and all(on_gpu[0][0])
    finally:
        registry.close()
