"""What the Train tab shows of a run while it trains and after: the loss curves (and a task's own, such as DPO's
rewards), the progress line and why a run ended. Read from the run folder only (backend/training/runfiles.py)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import pandas as pd

from backend.training import runfiles
from backend.training.recipes import RECIPES
from backend.training.runs import RunInfo
from ui.i18n.core import say
from ui.i18n.error_words import worded


SERIES = ("train loss", "eval loss")
LOSS_CURVES = (("loss", SERIES[0]), ("eval_loss", SERIES[1]))


def curves(run_dir: Optional[Path], keys: tuple[tuple[str, str], ...] = LOSS_CURVES,
           value: str = "loss") -> pd.DataFrame:
    """Progress figures by step (default: train and eval loss), long format for gr.LinePlot: one series per
    (progress key, series name) in `keys`, the figure in column `value`."""
    rows = []
    for row in runfiles.read_progress(run_dir) if run_dir else []:
        rows += [{"step": row["step"], value: row[key], "series": name} for key, name in keys if key in row]
    # Every series is always in the table (a point with no value, which is not drawn, for one without points
    # yet): Gradio's chart fixes its colours from the series it first sees, and a series that came later was
    # drawn without a stroke, invisible. Typed, or an empty table's columns became category axes.
    rows += [{"step": 0, value: math.nan, "series": name} for _, name in keys
             if not any(row["series"] == name for row in rows)]
    return pd.DataFrame(rows, columns=["step", value, "series"]).astype({"step": "int64", value: "float64"})


def task_curves(run_dir: Optional[Path], task: str) -> Any:
    """The second chart (the task's own curves, e.g. DPO's reward margin and accuracy): shown only for a run of a
    task that has them."""
    recipe = RECIPES.get(task)
    if run_dir is None or recipe is None or not recipe.curves:
        return gr.update(visible=False)
    return gr.update(value=curves(run_dir, recipe.curves, "value"), visible=True)


def progress_text(run_dir: Path, info: Any) -> str:
    rows = runfiles.read_progress(run_dir)
    parts = [f"**{html.escape(info.status)}**"]
    if info.queue_position:
        parts.append(say("train_queue_position", position=info.queue_position))
    if info.max_steps:
        parts.append(say("train_step", step=info.step, max=info.max_steps))
    train: dict[str, Any] = next((row for row in reversed(rows) if "loss" in row), {})
    evaluation: dict[str, Any] = next((row for row in reversed(rows) if "eval_loss" in row), {})
    recipe = RECIPES.get(info.task)
    keys = recipe.progress_keys if recipe else ()
    # "eval accuracy" reads "accuracy" in this line, unless the training rows have an accuracy of their own
    task_keys = [(evaluation if key.startswith("eval_") else train, key,
                  label if key.removeprefix("eval_") in dict(keys) else label.removeprefix("eval "))
                 for key, label in keys]
    for row, key, label in ((train, "learning_rate", "lr"), (train, "samples_per_s", "examples/s"),
                            (train, "tokens_per_s", "tokens/s"), (train, "eta_s", "ETA s"),
                            (train, "memory_mb", "memory MiB"), (evaluation, "eval_loss", "eval loss"), *task_keys):
        if key in row:
            parts.append(f"{label} {row[key]:.4g}")
    if info.final:
        shown = recipe.final_keys if recipe else ("loss",)
        parts.append("final: " + ", ".join(f"{key} {value:.4g}" for key, value in info.final.items()
                                           if isinstance(value, float) and key in shown))
    if info.registered_as:
        parts.append(say("train_registered_as", model=html.escape(info.registered_as)))
    if info.reason or info.registration:
        parts.append(html.escape(reason(info)))
    return " · ".join(parts)


def reason(info: RunInfo) -> str:
    """Why a run ended (or why its model is not registered): a refusal worded in the browser's language, else the
    worker's own line."""
    unregistered = info.not_registered()
    if unregistered is not None:
        return worded(unregistered)
    failure = info.failure()
    return worded(failure) if failure is not None else info.reason
