"""What the GPU check's steps share: the Step record, Skip, the CUDA guards and the models.yaml variants."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

Numbers = dict[str, Any]
Details = dict[str, Any]


class Skip(Exception):
    """Raised by a step that cannot run here; its message is the reason ("no CUDA", ...)."""


@dataclass(frozen=True)
class Step:
    """One independent part of the check: `run(context)` returns (numbers, details); details["context"], if
    any, is added to the context of the steps after it (the models step hands on its paths that way)."""

    run: Callable[[dict[str, Any]], tuple[Numbers, Details]]
    timeout_s: dict[str, float]  # per mode ("gpu", "cpu"): the step's process is killed after this
    min_s: float = 20  # not started with less of the budget left
    needs: tuple[str, ...] = ()  # context keys an earlier step must have provided


def say(text: str) -> None:
    """A timestamped line in the check's log: where a slow or hung step was."""
    import time

    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def need_cuda(context: dict[str, Any]) -> None:
    """Skip: no CUDA in --cpu mode; a failure where CUDA should be there but is not."""
    if context["mode"] == "cpu":
        raise Skip("no CUDA")
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is visible to torch on the GPU run")


def need_bitsandbytes(context: dict[str, Any]) -> None:
    need_cuda(context)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError("bitsandbytes is not installed (carry its wheel: bench/gpu_check_wheels.py)")


def entries(models_yaml: str | Path) -> dict[str, dict[str, Any]]:
    import yaml

    return {entry["id"]: entry for entry in yaml.safe_load(Path(models_yaml).read_text())["models"]}


def write_registry(path: Path, models: list[dict[str, Any]], max_loaded: int = 2) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"settings": {"max_loaded_models": max_loaded}, "models": models},
                                   sort_keys=False, allow_unicode=True))
    return path


def on_device(entry: dict[str, Any], device: str, dtype: str = "auto") -> dict[str, Any]:
    """A registry entry moved to `device` (dtype auto: bfloat16 on CUDA, float32 on CPU, as users get)."""
    return {**entry, "device": device, "dtype": dtype if device != "cpu" else "float32"}


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def peak_gpu_memory_mb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None
