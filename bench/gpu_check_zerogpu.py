"""The ZeroGPU path on the device: the app's GPU functions under a stand-in `spaces.GPU` that records what ran
under it and what crossed its boundary.

tests/test_spaces.py's stand-in forks a worker per call, as ZeroGPU does; that cannot run here, where the parent
process has initialised CUDA (a forked child cannot use it; on ZeroGPU `import spaces` patches torch so the app
never initialises CUDA). So this stand-in runs each call in the calling process and checks what ZeroGPU needs
of it instead: every argument and result pickles (they cross a process boundary there) and none of them holds a
CUDA tensor (it would have to be shared across processes); and the outputs equal those of the same calls
without `spaces`. Generation (the Batcher's decode steps), classifier forwards, LLM label scoring and the
evaluation's log-likelihoods all run, with the models on this step's device.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.gpu_check_common import Details, Numbers, entries, on_device, say, write_registry

STAND_IN = '''
"""Stand-in `spaces` for the GPU check (bench/gpu_check_zerogpu.py): records, checks the boundary, runs here."""
import dataclasses
import functools
import inspect
import pickle

WRAPPED = []  # (function name, duration)
CALLS = []  # (function name, duration)
CROSSINGS = []  # (function name, "arguments" / "result", CUDA tensors found)
UNPICKLABLE = []  # (function name, where, error)


def _cuda_tensors(value, depth=0):
    import torch

    if depth > 5:
        return 0
    if isinstance(value, torch.Tensor):
        return int(value.is_cuda)
    if isinstance(value, dict):
        return sum(_cuda_tensors(item, depth + 1) for item in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(_cuda_tensors(item, depth + 1) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_cuda_tensors(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    if hasattr(value, "__dict__") and not inspect.isroutine(value) and not inspect.ismodule(value):
        return sum(_cuda_tensors(item, depth + 1) for item in vars(value).values())
    return 0


def _check(name, where, value):
    try:
        pickle.dumps(value)
    except Exception as error:
        UNPICKLABLE.append((name, where, f"{type(error).__name__}: {error}"[:200]))
    found = _cuda_tensors(value)
    if found:
        CROSSINGS.append((name, where, found))


def GPU(fn=None, *, duration=60):
    def decorate(task):
        name = getattr(task, "__name__", "?")
        WRAPPED.append((name, duration))

        if inspect.isgeneratorfunction(task):
            @functools.wraps(task)
            def on_gpu(*args, **kwargs):
                CALLS.append((name, duration))
                _check(name, "arguments", (args, kwargs))
                for item in task(*args, **kwargs):
                    _check(name, "result", item)
                    yield item
        else:
            @functools.wraps(task)
            def on_gpu(*args, **kwargs):
                CALLS.append((name, duration))
                _check(name, "arguments", (args, kwargs))
                result = task(*args, **kwargs)
                _check(name, "result", result)
                return result
        return on_gpu

    return decorate(fn) if fn is not None else decorate
'''

CHAT, CLASSIFIER, NLI = "tiny-chat", "tiny-classifier", "tiny-nli"
EXPECTED_CALLS = {"decode_steps_of_model", "_forward", "_label_log_likelihoods", "_nll_of_rows"}


def outputs(context: dict[str, Any], duration: int, name: str) -> Any:
    """Chat, classification (supervised, NLI zero-shot, LLM label scoring) and evaluation through the app's
    services, with every model on the step's device. A duration of its own per run: the app caches its wrapped
    functions per duration, so each run wraps afresh."""
    from backend.services import classification
    from backend.services import generation as service
    from backend.core.config import load_config
    from backend.evaluation import inference
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import Final, GenerationParams

    models = [{**on_device(entry, context["device"], "float32"), "gpu_duration_s": duration}
              for model_id, entry in entries(context["tiny_yaml"]).items() if model_id in (CHAT, CLASSIFIER, NLI)]
    say(f"ZeroGPU path, {name}")
    registry = Registry(load_config(write_registry(Path(context["workdir"]) / f"zerogpu-{name}.yaml", models, 3)),
                        create_engine)
    try:
        for model_id in (CHAT, CLASSIFIER, NLI):
            registry.load(model_id)  # ZeroGPU's rule: loaded before the first GPU call
        params = GenerationParams(max_new_tokens=24, temperature=0.8, seed=7)
        final = list(service.stream_chat(registry, CHAT, "Hello there", params=params))[-1]
        assert isinstance(final, Final)
        scores = [classification.classify_texts(registry, CLASSIFIER, ["good", "bad"]).scores,
                  classification.classify_texts(registry, NLI, ["good"], "x, y").scores,
                  classification.classify_texts(registry, CHAT, ["good"], "x, y").scores]
        with registry.lease(CHAT) as engine:
            texts = ["the cat sat", "a longer sentence about dogs", "x"]
            evaluation = (inference.generate_texts(engine, texts, max_new_tokens=8, batch_size=2, chat=False),
                          inference.text_log_likelihoods(engine, texts, batch_size=2))
            batcher_on_gpu = engine.batcher.steps_on_gpu is not None
    finally:
        registry.close()
    return {"reply": final.text, "scores": _plain(scores), "evaluation": _plain(evaluation),
            "batcher_on_gpu": batcher_on_gpu}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "label") and hasattr(value, "score"):
        return [value.label, float(value.score)]
    return value


def _outputs_only(run: dict[str, Any]) -> list[Any]:
    return [run["reply"], run["scores"], run["evaluation"]]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def zerogpu_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    folder = Path(context["workdir"]) / "spaces-stand-in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spaces.py").write_text(STAND_IN, encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        import spaces

        with_spaces = outputs(context, 17, "with-spaces")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("spaces", None)
    without = outputs(context, 18, "without-spaces")
    called = Counter(name for name, _ in spaces.CALLS)
    numbers: Numbers = {"device": context["device"], "gpu_calls": sum(called.values()),
                        "cuda_tensors_crossing": sum(found for _, _, found in spaces.CROSSINGS),
                        "unpicklable_crossings": len(spaces.UNPICKLABLE),
                        "outputs_equal_without_spaces": same(_plain(_outputs_only(with_spaces)),
                                                             _plain(_outputs_only(without))),
                        "batcher_on_gpu_with_spaces": with_spaces["batcher_on_gpu"],
                        "batcher_on_gpu_without_spaces": without["batcher_on_gpu"]}
    details: Details = {"calls": dict(called), "wrapped": sorted(set(map(tuple, spaces.WRAPPED))),
                        "crossings": spaces.CROSSINGS[:20], "unpicklable": spaces.UNPICKLABLE[:20],
                        "reply": with_spaces["reply"]}
    missing = EXPECTED_CALLS - set(called)
    if missing:
        raise RuntimeError(f"never ran under spaces.GPU: {sorted(missing)}; ran: {dict(called)}")
    if not numbers["outputs_equal_without_spaces"]:
        raise RuntimeError(f"outputs differ with and without spaces: {_outputs_only(with_spaces)} vs "
                           f"{_outputs_only(without)}")
    if not with_spaces["batcher_on_gpu"] or without["batcher_on_gpu"]:
        raise RuntimeError("the Batcher's GPU step is wrapped only when spaces is importable: it was not so")
    return numbers, details
