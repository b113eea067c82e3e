"""The command line that starts a training process: plain Python on one device, `accelerate launch` on several
GPUs (optionally with an Accelerate config file for DeepSpeed or FSDP). Standard library only."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

from backend.training.config import TrainConfig

WORKER_MODULE = "backend.training.worker"


def worker_command(config: TrainConfig, config_path: Path, resume: bool = False,
                   python: Optional[str] = None) -> list[str]:
    python = python or sys.executable
    tail = ["--config", str(config_path)] + (["--resume"] if resume else [])
    if config.num_gpus > 1:
        launcher = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                    str(config.num_gpus)]
        if config.accelerate_config:
            launcher += ["--config_file", config.accelerate_config]
        return launcher + ["--module", WORKER_MODULE] + tail
    return [python, "-m", WORKER_MODULE] + tail


def as_text(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
