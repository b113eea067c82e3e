"""How many threads a CPU runtime in this process runs on (llama.cpp: backend/engines/llama_cpp_model.py, ONNX
Runtime: backend/engines/onnx_runtime.py). Only the standard library (and psutil when installed)."""

from __future__ import annotations

import os

from backend.core.types import ModelLoadError


def cpu_threads(setting: str) -> int:
    """The environment variable `setting` (a whole number >= 1), else the physical cores this process may use:
    extra hyper-threads slow a decode down (llama.cpp's as PyTorch's), and PyTorch's default is the same."""
    configured = os.environ.get(setting, "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ModelLoadError(f"{setting}: a whole number of threads >= 1, got {configured!r}",
                                 field=setting, params={"value": configured})
        return int(configured)
    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, usable_cores()))


def usable_cores() -> int:
    """The logical cores this process may run on (its CPU affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
