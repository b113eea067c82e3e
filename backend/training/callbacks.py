"""TrainerCallbacks of the training process: progress lines for the server, and Stop at a step boundary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from transformers import TrainerCallback

from backend.training import runfiles

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments


def memory_in_use_mb() -> float:
    """GPU memory allocated by this process (peak since the last reading), or its resident memory on CPU."""
    import torch

    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        return peak / 1024 ** 2
    import psutil

    return psutil.Process().memory_info().rss / 1024 ** 2


class ProgressWriter(TrainerCallback):
    """Appends one JSON line per Trainer log (train loss, lr) and per evaluation (eval loss, metrics)."""

    def __init__(self, run_dir: Path, samples_per_step: int,
                 derived: Optional[Callable[[runfiles.ProgressRow], dict[str, float]]] = None) -> None:
        self.run_dir = run_dir
        self.derived = derived  # the recipe's figures computed from the logged ones (e.g. eval perplexity)
        self.samples_per_step = samples_per_step
        self.started = time.perf_counter()
        self.first_step = 0
        self.first_tokens = 0
        self.history: list[runfiles.ProgressRow] = []

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: object) -> None:
        # A resumed run counts its speed from where it resumed.
        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.first_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: Optional[Mapping[str, object]] = None, **kwargs: object) -> None:
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.perf_counter() - self.started
        steps = state.global_step - self.first_step
        row: runfiles.ProgressRow = {"time": time.time(), "step": state.global_step, "max_steps": state.max_steps,
                               "epoch": round(float(state.epoch or 0), 4)}
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not key.endswith(("_runtime", "_per_second")):
                row[key] = float(value)
        if self.derived is not None:
            row.update(self.derived(row))
        if steps > 0 and elapsed > 0:
            row["samples_per_s"] = steps * self.samples_per_step / elapsed
            tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0) - self.first_tokens
            if tokens > 0:
                row["tokens_per_s"] = tokens / elapsed
            row["eta_s"] = max(0.0, (state.max_steps - state.global_step) * elapsed / steps)
        row["memory_mb"] = round(memory_in_use_mb(), 1)
        self.history.append(row)
        runfiles.append_progress(self.run_dir, row)


class StopOnRequest(TrainerCallback):
    """Stop: when the STOP file appears, save a checkpoint at this step boundary and end training."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.stopped_at: int | None = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: object) -> TrainerControl:
        if runfiles.stop_requested(self.run_dir):
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control
