"""Registry behaviour on real tiny models: lazy single-flight loads, retries, eviction, leases, memory."""

from __future__ import annotations

import gc
import shutil
import threading
import time
import weakref
from pathlib import Path

import psutil
import pytest
import yaml

from backend.services import generation as service
from backend.core.config import load_config
from backend.engines import create_engine
from backend.core.registry import Registry
from backend.core.types import GenerationParams, ModelLoadError, ModelNotFoundError, UnsupportedTaskError

GREEDY = GenerationParams(max_new_tokens=8, temperature=0.0)


def write_registry(tmp_path: Path, tiny_models_yaml: Path, settings: dict | None = None,
                   overrides: dict[str, dict] | None = None) -> Path:
    """A models.yaml over the tiny models with changed settings or entries."""
    raw = yaml.safe_load(tiny_models_yaml.read_text())
    raw["settings"] = {**raw.get("settings", {}), **(settings or {})}
    for entry in raw["models"]:
        entry.update((overrides or {}).get(entry["id"], {}))
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class CountingFactory:
    """The real engine factory, counting how often it runs (the registry must load once per model)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, spec):
        with self._lock:
            self.calls.append(spec.id)
        return create_engine(spec)


def test_nothing_loads_at_start_and_status_says_where_weights_are(registry: Registry) -> None:
    statuses = {s.id: s for s in registry.status()}
    assert set(statuses) == {"tiny-chat", "tiny-classifier", "tiny-nli",
        "tiny-ner", "tiny-qa", "tiny-mlm", "tiny-seq2seq", "tiny-embed"}  # + the pipeline-task models
    assert all(s.state == "unloaded" and s.weights == "local" for s in statuses.values())
    assert statuses["tiny-chat"].tasks == ("chat", "generate")


def test_eight_concurrent_first_requests_cause_one_load(tiny_config) -> None:
    factory = CountingFactory()
    registry = Registry(tiny_config, engine_factory=factory)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def first_request() -> None:
        barrier.wait()
        *_, final = service.stream_generate(registry, "tiny-chat", "hi", GREEDY)
        results.append(final.stats.finish_reason)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == ["length"] * 8
    assert factory.calls == ["tiny-chat"]
    assert registry.status_of("tiny-chat").state == "loaded"
    registry.close()


def test_failed_load_reaches_every_waiter_and_the_next_request_retries(tmp_path, tiny_models_yaml) -> None:
    good = Path(yaml.safe_load(tiny_models_yaml.read_text())["models"][0]["source"])
    broken = tmp_path / "broken-chat"
    shutil.copytree(good, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(b"this is not a safetensors file")
    config = load_config(write_registry(tmp_path, tiny_models_yaml, overrides={"tiny-chat": {"source": str(broken)}}))
    registry = Registry(config, create_engine)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def request() -> None:
        barrier.wait()
        try:
            with registry.lease("tiny-chat"):
                pass
        except ModelLoadError as error:
            errors.append(error)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(errors) == 4
    assert all("tiny-chat" in str(error) for error in errors)
    status = registry.status_of("tiny-chat")
    assert status.state == "failed" and "tiny-chat" in status.last_error
    # Repair the weights: the next request loads instead of replaying the old failure.
    shutil.copy(good / "model.safetensors", weights)
    *_, final = service.stream_generate(registry, "tiny-chat", "hi", GREEDY)
    assert final.stats.generated_tokens == GREEDY.max_new_tokens
    assert registry.status_of("tiny-chat").state == "loaded"
    assert registry.status_of("tiny-chat").last_error is None
    registry.close()


def test_least_recently_used_idle_model_is_evicted(tmp_path, tiny_models_yaml) -> None:
    registry = Registry(load_config(write_registry(tmp_path, tiny_models_yaml, {"max_loaded_models": 2})),
                        create_engine)
    registry.load("tiny-chat")
    registry.load("tiny-classifier")
    with registry.lease("tiny-chat"):
        pass  # tiny-chat is now the most recently used
    registry.load("tiny-nli")
    states = {s.id: s.state for s in registry.status() if s.state != "unloaded"}
    assert states == {"tiny-chat": "loaded", "tiny-nli": "loaded"}
    registry.close()


def test_a_model_in_use_is_not_evicted_until_its_stream_ends(tmp_path, tiny_models_yaml) -> None:
    registry = Registry(load_config(write_registry(tmp_path, tiny_models_yaml, {"max_loaded_models": 1})),
                        create_engine)
    stream = service.stream_generate(registry, "tiny-chat", "busy", GenerationParams(max_new_tokens=60,
                                                                                       temperature=0.0))
    next(stream)
    with registry.lease("tiny-classifier"):  # over the bound while tiny-chat streams: both stay loaded
        assert registry.status_of("tiny-chat").state == "loaded"
        assert registry.status_of("tiny-classifier").state == "loaded"
    *_, final = stream
    assert final.stats.generated_tokens == 60  # the busy model was never pulled away mid-stream
    assert sum(s.state == "loaded" for s in registry.status()) == 1  # the bound holds once requests end
    registry.close()


def test_explicit_unload_while_busy_waits_for_the_request(registry: Registry) -> None:
    stream = service.stream_generate(registry, "tiny-chat", "busy", GenerationParams(max_new_tokens=40,
                                                                                       temperature=0.0))
    next(stream)
    assert registry.unload("tiny-chat").state == "loaded"
    *_, final = stream
    assert final.stats.finish_reason == "length"
    assert registry.status_of("tiny-chat").state == "unloaded"


def test_idle_models_are_unloaded(tmp_path, tiny_models_yaml) -> None:
    registry = Registry(load_config(write_registry(tmp_path, tiny_models_yaml, {"idle_unload_seconds": 0.4})),
                        create_engine)
    registry.load("tiny-classifier")
    deadline = time.monotonic() + 10
    while registry.status_of("tiny-classifier").state == "loaded" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert registry.status_of("tiny-classifier").state == "unloaded"
    registry.close()


def test_unknown_model_and_wrong_task_are_clear_errors(registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="'nope'.*tiny-chat"):
        service.stream_chat(registry, "nope", "hi")
    with pytest.raises(UnsupportedTaskError, match="tiny-classifier.*chat"):
        service.stream_chat(registry, "tiny-classifier", "hi")
    assert all(s.state == "unloaded" for s in registry.status())  # bad requests never trigger a load


def test_status_reports_device_dtype_memory_and_load_time(registry: Registry) -> None:
    status = registry.load("tiny-chat")
    assert status.state == "loaded"
    assert status.device == "cpu" and status.dtype == "float32"
    assert status.parameters and status.parameters > 100_000
    assert status.memory_bytes and status.memory_bytes >= status.parameters * 4
    assert status.load_time_s and status.load_time_s > 0
    assert status.max_context == 512


def test_unloading_releases_the_model_objects(registry: Registry) -> None:
    with registry.lease("tiny-chat") as engine:
        model_ref = weakref.ref(engine.model)
    del engine
    registry.unload("tiny-chat")
    gc.collect()
    assert model_ref() is None, "the unloaded model is still referenced somewhere"


@pytest.fixture(scope="module")
def medium_model_yaml(tmp_path_factory, tiny_models_yaml) -> Path:
    """A ~12M-parameter copy of tiny-chat, big enough that a leaked copy per cycle would show in RSS."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    source = Path(yaml.safe_load(tiny_models_yaml.read_text())["models"][0]["source"])
    target = tmp_path_factory.mktemp("medium") / "medium-chat"
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=1024, num_hidden_layers=12,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return write_registry(target.parent, tiny_models_yaml, overrides={"tiny-chat": {"source": str(target)}})


def test_twenty_load_unload_cycles_keep_memory_bounded(medium_model_yaml) -> None:
    registry = Registry(load_config(medium_model_yaml), create_engine)
    process = psutil.Process()

    def cycle() -> int:
        *_, final = service.stream_generate(registry, "tiny-chat", "memory", GREEDY)
        assert final.stats.generated_tokens == GREEDY.max_new_tokens
        model_bytes = registry.status_of("tiny-chat").memory_bytes
        registry.unload("tiny-chat")
        return model_bytes

    model_bytes = cycle()  # warm-up: first-use allocations (kernels, caches) are not a leak
    baseline = process.memory_info().rss
    for _ in range(20):
        cycle()
    growth = process.memory_info().rss - baseline
    # A leaked model per cycle would add 20 x the model's size; allow less than two models' worth.
    assert growth < 2 * model_bytes, f"RSS grew by {growth / 2**20:.1f} MiB over 20 cycles " \
                                     f"(model: {model_bytes / 2**20:.1f} MiB)"
    registry.close()


def test_two_models_loading_at_once_leave_later_loads_whole(tiny_config) -> None:
    """Compare (or two users) starting two different models at the same moment: transformers' loading is not
    thread-safe (a load at the same moment as another left tiny-mlm's tied decoder weight on the meta device for
    every later load in the process), so the registry loads one model at a time in a process."""
    from backend.core.model_spec import ModelSpec
    from backend.tasks.service import fill_masks

    registry = Registry(tiny_config, create_engine)
    chat = registry.spec("tiny-chat")
    registry.add(ModelSpec(**{**chat.model_dump(exclude={"base_dir"}), "id": "tiny-chat-twin",
                              "source": str(chat.local_path())}))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def load(model_id: str) -> None:
        barrier.wait()
        try:
            with registry.lease(model_id, "chat"):
                pass
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=load, args=(model_id,)) for model_id in ("tiny-chat", "tiny-chat-twin")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    registry.close()
    assert not errors
    later = Registry(tiny_config, create_engine)
    try:
        assert fill_masks(later, "tiny-mlm", "The capital of France is [MASK].")
    finally:
        later.close()
