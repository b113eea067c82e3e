"""ZeroGPU (Hugging Face Spaces): run the functions that use the GPU under `spaces.GPU`, and nothing else.

On a ZeroGPU Space a GPU is attached to the process only while a function decorated with
`spaces.GPU(duration=...)` runs; `duration` is the longest that call may hold it (shorter requests queue ahead).
The `spaces` package is preinstalled on Gradio Spaces and is a pass-through on every other hardware; here it is
usually not installed at all, so it is imported on demand and its absence changes nothing.

ZeroGPU's rules, and how this app meets them (see docs/DEPLOY.md):
- CUDA may be touched only inside a `spaces.GPU` function. `import spaces` patches torch so that
  `torch.cuda.is_available()` is True everywhere and `.to("cuda")` outside such a function only *registers*
  weights, which ZeroGPU moves to the GPU when the function runs.
- So weights are loaded on the CPU (or "moved to cuda" that emulated way) outside the GPU function, and
  everything that runs the model (`model.generate`, forward passes) happens inside it: the one call site is
  `Batcher._run` in backend/engines/batching.py, wrapped with the model's `gpu_duration_s` from models.yaml.
- The decorated function runs in a forked worker process; arguments and results are pickled. `Batcher._run`
  takes live request objects (queues, locks) and streams through them, so on real ZeroGPU hardware the GPU step
  still has to be made self-contained (plain values in, token ids out): see "Status" in docs/DEPLOY.md.

Only the standard library is imported here; `spaces` is imported when a function is wrapped.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable, Optional, TypeVar

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
