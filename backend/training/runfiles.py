"""The files of one run folder, shared by the training process (writer) and the server (reader).

    config.yaml       the TrainConfig (the run's only input)
    command.txt       the exact command that reproduces the run
    progress.jsonl    one JSON line per log / evaluation: step, loss, eval loss, lr, samples/s, tokens/s, ...
    metrics.json      {"status": running|completed|stopped|failed, "reason", "final", "history", "pid", ...}
    STOP              present: the training process saves a checkpoint at the next step and ends "stopped"
    checkpoints/      Trainer checkpoints (optimizer, scheduler and RNG state for resuming)
    model/            the result: a full model, or a LoRA adapter over the base
    README.md         the model card
    log.txt           the training process's stdout and stderr

Standard library only: the server reads these without torch.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Mapping, Optional, TypedDict

# One progress line: step, max_steps, epoch, time, the Trainer's logged figures and speeds, all numbers.
ProgressRow = dict[str, float]


class ErrorValue(TypedDict, total=False):
    """A refusal's code, field and params as metrics.json keeps them (the UI words it in the reader's language)."""

    code: str
    field: Optional[str]
    params: Mapping[str, object]


class RunMetrics(TypedDict, total=False):
    """metrics.json: written by the training process (and by the server for runs that never started or died)."""

    status: str  # queued, running, completed, stopped, failed
    reason: str
    pid: int
    started: Optional[float]
    finished: float
    resumed_from: Optional[str]
    history: list[ProgressRow]
    step: int
    max_steps: int
    train: dict[str, float]
    final: dict[str, float]
    best_checkpoint: Optional[str]
    early_stopped: bool
    model_kind: str  # "adapter" or "full"
    registered_as: str
    merged_as: str
    error: ErrorValue
    registration_error: ErrorValue | str  # a str: registration failed in an unforeseen way

CONFIG = "config.yaml"
COMMAND = "command.txt"
PROGRESS = "progress.jsonl"
METRICS = "metrics.json"
STOP = "STOP"
CHECKPOINTS = "checkpoints"
MODEL = "model"
CARD = "README.md"
LOG = "log.txt"
FINAL_STATUSES = ("completed", "stopped", "failed")


def write_json_atomic(path: Path, data: object) -> None:
    """Readers never see half a file: write aside, then rename over (anything `json.dumps` takes; other values are
    written as their str)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)


def read_metrics(run_dir: Path) -> RunMetrics:
    """metrics.json as written (only this package writes it, in the shape RunMetrics names); {} when none."""
    try:
        return json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_progress(run_dir: Path, limit: int = 100_000) -> list[ProgressRow]:
    """Progress lines written so far (a line being written right now is skipped)."""
    rows: list[ProgressRow] = []
    try:
        with open(run_dir / PROGRESS, encoding="utf-8") as handle:
            for line in handle:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
                if len(rows) >= limit:
                    break
    except OSError:
        pass
    return rows


def append_progress(run_dir: Path, row: ProgressRow) -> None:
    with open(run_dir / PROGRESS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=float) + "\n")


def request_stop(run_dir: Path) -> None:
    (run_dir / STOP).write_text(str(time.time()), encoding="utf-8")


def stop_requested(run_dir: Path) -> bool:
    return (run_dir / STOP).exists()


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(run_dir: Path) -> Optional[Path]:
    """The checkpoint with the highest step that is complete (has trainer_state.json)."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def tail(path: Path, max_bytes: int = 20_000) -> str:
    """The end of a (log) file, decoded leniently."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
