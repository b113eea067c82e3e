"""ZeroGPU (Hugging Face Spaces): run the functions that use the GPU under `spaces.GPU`, and nothing else.

On a ZeroGPU Space a GPU is attached to the process only while a function decorated with
`spaces.GPU(duration=...)` runs; `duration` is the longest that call may hold it (shorter requests queue ahead).
The `spaces` package is preinstalled on Gradio Spaces and is a pass-through on every other hardware; here it is
usually not installed at all, so it is imported on demand and its absence changes nothing.

ZeroGPU's rules, and how this app meets them (see docs/DEPLOY.md):
- CUDA may be touched only inside a `spaces.GPU` function. `import spaces` patches torch so that
  `torch.cuda.is_available()` is True everywhere and `.to("cuda")` outside such a function only *registers*
  weights, which ZeroGPU moves to the GPU when the function runs. app.py imports `spaces` before torch there.
- The decorated function runs in a worker process forked from the app, and its arguments and results are
  pickled. So every GPU function takes and returns plain values (token ids, parameters, seeds, CPU tensors) and
  finds its model by key in `resident_model`, the table of loaded models the worker inherited when it was
  forked: generation (`decode_steps` in backend/engines/decode.py), classifier forward passes and label scoring.
- A worker is forked from the app as it was then: models must be loaded before, at start-up
  (`WORKBENCH_PRELOAD`, which defaults to every local model on ZeroGPU; see app.py).

Only the standard library (and backend.core.types) is imported here; `spaces` is imported when a function is wrapped.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel
import importlib
import os
from types import ModuleType
from typing import Callable, Optional, TypeVar

from backend.core.types import WorkbenchError

F = TypeVar("F", bound=Callable[..., object])

DEFAULT_DURATION_S = 60  # ZeroGPU's own default for spaces.GPU


def spaces_module() -> Optional[ModuleType]:
    """The `spaces` package when it can be imported, else None (never raises for a missing package)."""
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def gpu_function(fn: F, duration: Optional[int] = None) -> F:
    """`spaces.GPU(duration=duration)(fn)` when `spaces` is importable, else `fn` itself, unchanged."""
    spaces = spaces_module()
    if spaces is None:
        return fn
    return spaces.GPU(duration=duration or DEFAULT_DURATION_S)(fn)


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space (it sets SPACES_ZERO_GPU), where `spaces.GPU` really forks a worker."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in {"1", "true", "yes"}


# The loaded models a GPU function can find by key; a forked GPU worker has the table as it was at the fork.
_RESIDENT: dict[str, HFModel] = {}


def make_resident(key: str, model: HFModel) -> None:
    _RESIDENT[key] = model


def evict_resident(key: str, model: HFModel) -> None:
    """Forgets `model` (only if `key` still names it: a reloaded model may have taken the key)."""
    if _RESIDENT.get(key) is model:
        del _RESIDENT[key]


def resident_model(key: str) -> HFModel:
    model = _RESIDENT.get(key)
    if model is None:
        raise WorkbenchError(f"model '{key}' is not loaded in this process; on ZeroGPU, a GPU worker only has the "
                           "models loaded before it started: list it in WORKBENCH_PRELOAD (docs/DEPLOY.md)")
    return model
