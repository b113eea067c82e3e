"""The Evaluate tab's views: a run, a list of runs or a job's progress turned into tables, HTML and text.

Plain functions of backend values (no widgets), so each is tested on its own. Every string that reaches the page
is escaped here.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional, TypeGuard

import pandas as pd

from backend.evaluation import store
from backend.evaluation.metrics import HEADLINE, LOWER_IS_BETTER
from backend.evaluation.types import Progress, RunResult
from backend.guard.table_limits import SHOWN_CELL_CHARS, clip
from backend.core.types import InvalidInputError
from ui.evaluate.forms import ALL_MODELS
from ui.i18n.core import say

EXAMPLES_SHOWN = 500  # rows of the per-example table in the page; the downloads have every matching row
PER_CLASS_SHOWN = 500  # rows of the per-class table in the page (results.json has every class)
LABEL_CHARS = 40  # characters of a label in the confusion matrix's headers
EXPORT_DIR = Path(tempfile.gettempdir()) / "workbench-eval-exports"
# The leaderboard's columns unless "all metrics" is ticked (the rest are in results.json and behind the box).
MAIN_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "precision_macro", "recall_macro"),
    "generation": ("judge_score", "bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "contains",
                   "normalized_exact_match", "mean_length"),
    "perplexity": ("perplexity", "mean_perplexity", "nll_per_token"),
}
# Scoped to each gr.HTML that shows them (Gradio prefixes these rules with the component's root).
PROGRESS_CSS = """
.eval-bar { height: 12px; border-radius: 6px; background: var(--neutral-200); overflow: hidden; }
.eval-fill { height: 100%; border-radius: 6px; background: var(--color-accent); transition: width 0.3s; }
.eval-fill.cancelled { background: var(--neutral-400); }
.eval-text { font-size: 0.9em; margin-top: 4px; opacity: 0.85; }
"""
CONFUSION_CSS = """
table.confusion { border-collapse: collapse; font-size: 0.9em; margin-top: 4px; }
table.confusion th, table.confusion td {
  padding: 6px 10px; text-align: center; border: 1px solid var(--border-color-primary);
}
table.confusion th.corner { font-weight: normal; font-size: 0.8em; opacity: 0.7; }
.confusion-caption { font-size: 0.85em; opacity: 0.75; margin-bottom: 4px; }
"""


def headline(run: RunResult) -> str:
    return HEADLINE[run.task]


def format_number(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3g}"


def leaderboard_table(run: RunResult, all_metrics: bool = False) -> pd.DataFrame:
    """One row per model, best first: status, examples scored (n), then each metric as "value [low, high]" (the
    task's main metrics, or every metric)."""
    board = run.leaderboard()
    metrics = [column for column in board.columns
               if column not in ("model", "status", "examples") and not column.endswith(("_low", "_high"))]
    if not all_metrics:
        main = MAIN_METRICS.get(run.task, ())
        metrics = [name for name in main if name in metrics] or metrics
    rows = []
    for record in board.to_dict("records"):
        result = run.models[record["model"]]
        row: dict[str, Any] = {"model": record["model"], "status": record["status"], "n": int(record["examples"])}
        for name in metrics:
            value = record.get(name)
            low, high = record.get(f"{name}_low"), record.get(f"{name}_high")
            text = format_number(value)
            if _finite(value) and _finite(low) and _finite(high):
                text += f" [{format_number(low)}, {format_number(high)}]"
            row[name] = text
        row["seconds"] = round(result.seconds, 1)
        rows.append(row)
    return pd.DataFrame(rows)


def chart_frame(run: RunResult) -> pd.DataFrame:
    """The headline metric per scored model, in leaderboard order (for the bar chart)."""
    name = headline(run)
    rows = [(result.model_id, result.metrics.get(name)) for result in run.models.values()]
    frame = pd.DataFrame([(model, value) for model, value in rows if _finite(value)], columns=["model", "score"])
    order = frame["score"].sort_values(ascending=name in LOWER_IS_BETTER, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def per_class_table(run: RunResult, model_id: Optional[str]) -> pd.DataFrame:
    """Classification: precision / recall / F1 / support per class for one model."""
    result = run.models.get(model_id or "")
    per_class = (result.details.get("per_class") if result else None) or {}
    rows = [{"label": clip(str(label), SHOWN_CELL_CHARS), "precision": round(values.get("precision", 0.0), 4),
             "recall": round(values.get("recall", 0.0), 4), "f1": round(values.get("f1-score", 0.0), 4),
             "support": int(values.get("support", 0))}
            for label, values in list(per_class.items())[:PER_CLASS_SHOWN]]
    return pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])


def confusion_html(run: RunResult, model_id: Optional[str]) -> str:
    """Classification: one model's confusion matrix as a heat map (rows: true label, columns: predicted)."""
    result = run.models.get(model_id or "")
    matrix = (result.details.get("confusion_matrix") if result else None) or {}
    labels, counts = matrix.get("labels") or [], matrix.get("matrix") or []
    if not labels:
        return ""
    peak = max((max(row) for row in counts if row), default=0) or 1
    escape = lambda text: html.escape(str(text), quote=True)  # noqa: E731
    head = "".join(f"<th>{escape(clip(str(label), LABEL_CHARS))}</th>" for label in labels)
    body = []
    for label, row in zip(labels, counts):
        cells = []
        for count in row:
            alpha = count / peak
            ink = "#fff" if alpha > 0.55 else "inherit"
            cells.append(f'<td style="background: rgba(79, 70, 229, {0.08 + 0.82 * alpha:.2f}); color: {ink}">'
                         f"{count}</td>")
        body.append(f"<tr><th>{escape(clip(str(label), LABEL_CHARS))}</th>{''.join(cells)}</tr>")
    assert result is not None  # it has labels
    classes = matrix.get("classes") or len(labels)
    hidden = (f" · the {len(labels) - 1:,} most frequent of {classes:,} classes, the rest summed in the last row "
              "and column" if classes > len(labels) else "")
    return (f'<div class="confusion-caption">Confusion matrix of <b>{escape(result.model_id)}</b> '
            f"(rows: true label · columns: predicted label{hidden})</div>"
            f'<table class="confusion"><tr><th class="corner">true \\ predicted</th>{head}</tr>'
            f"{''.join(body)}</table>")


def filter_examples(run: RunResult, text: str = "", model_id: str = ALL_MODELS) -> pd.DataFrame:
    """Per example and model: input, reference, prediction, scores; rows whose input, reference or prediction
    contain `text` (case-insensitive), of one model or all."""
    table = run.example_table(model_id or None)
    needle = (text or "").strip().lower()
    if needle and len(table):
        haystack = (table["input"].fillna("").astype(str) + "\n" + table["reference"].fillna("").astype(str)
                    + "\n" + table["prediction"].fillna("").astype(str)).str.lower()
        table = table[haystack.str.contains(needle, regex=False)].reset_index(drop=True)
    return table


def export_examples(run: RunResult, table: pd.DataFrame, fmt: str, text: str = "",
                    model_id: str = ALL_MODELS) -> Path:
    """Writes `table` (the filtered examples) as CSV or JSON; the name says which run and filter it holds.

    A run never changes, so the same run and filter always give the same file: it is written once.
    """
    if fmt not in ("csv", "json"):
        raise InvalidInputError(f"download: format must be csv or json, got {fmt!r}")
    parts = [run.run_id, "predictions"]
    if model_id:
        parts.append(re.sub(r"[^A-Za-z0-9._-]", "_", model_id))
    if (text or "").strip():
        parts.append("filter-" + hashlib.sha1(text.strip().lower().encode()).hexdigest()[:8])
    path = EXPORT_DIR / run.run_id / f"{'-'.join(parts)}.{fmt}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        if fmt == "csv":
            table.to_csv(temporary, index=False, encoding="utf-8")
        else:
            temporary.write_text(table.to_json(orient="records", force_ascii=False, indent=1), encoding="utf-8")
        os.replace(temporary, path)
    return path


def runs_table(summaries: list[store.RunSummary]) -> pd.DataFrame:
    """Past runs, newest first: when, task, data, models and each model's main metric."""
    rows = []
    for summary in summaries:
        name = HEADLINE.get(summary.task, "")
        scores = ", ".join(f"{model} {format_number(metrics.get(name))}" for model, metrics in summary.metrics.items())
        rows.append({"run": summary.run_id, "created": _when(summary.created), "task": summary.task,
                     "data": summary.data, "models": ", ".join(summary.models),
                     "main metric": f"{name}: {scores}" if name else scores,
                     "status": "cancelled" if summary.cancelled else "complete"})
    return pd.DataFrame(rows, columns=["run", "created", "task", "data", "models", "main metric", "status"])


def run_choices(summaries: list[store.RunSummary]) -> list[tuple[str, str]]:
    return [(f"{_when(s.created)} · {s.task} · {s.data} · {', '.join(s.models)}", s.run_id) for s in summaries]


def run_summary(run: RunResult) -> str:
    """One Markdown paragraph about a run: what, on what, how long, where saved, and what to know."""
    count = len(run.examples)
    # Worded in the language of the request being served (ui/i18n/core.py); notices and errors stay the backend's.
    state = say("eval_state_cancelled" if run.cancelled else "eval_state_complete")
    lines = [say("eval_run_line", run=run.run_id, task=run.task, data=run.config.data.describe(), count=count,
                 models=len(run.models), seconds=run.seconds, state=state)]
    if run.task in ("generation", "summarization"):
        lines.append(say("eval_rouge_stemmed" if run.config.rouge_stemmer else "eval_rouge_unstemmed"))
    if run.path is not None:
        lines.append(say("eval_saved_in", path=run.path))
    lines += [say("eval_note", note=notice) for notice in run.examples.notices]
    for result in run.models.values():
        if result.error:
            lines.append(say("eval_model_failed", model=result.model_id, error=result.error))
        lines += [say("eval_note", note=f"{result.model_id}: {notice}") for notice in result.notices]
    return "\n\n".join(html.escape(line, quote=False) for line in lines)


def compare_summary(left: RunResult, right: RunResult) -> str:
    """The headline metric of the models both runs share, and how it moved from the left run to the right."""
    name = headline(left)
    if left.task != right.task:
        return html.escape(say("eval_different_tasks", left=left.task, right=right.task), quote=False)
    shared = [model for model in left.models if model in right.models]
    if not shared:
        return say("eval_no_shared_model")
    lines = []
    for model in shared:
        before, after = left.models[model].metrics.get(name), right.models[model].metrics.get(name)
        change = f" ({after - before:+.4g})" if _finite(before) and _finite(after) else ""
        lines.append(f"{model}: {name} {format_number(before)} → {format_number(after)}{change}")
    return "\n\n".join(html.escape(line, quote=False) for line in lines)


def progress_html(progress: Optional[Progress], run: Optional[RunResult] = None) -> str:
    """A progress bar (role=progressbar, readable by tests and screen readers) with counts and time left."""
    if run is not None:
        done = sum(result.completed for result in run.models.values())
        total = len(run.examples) * max(len(run.models), 1)
        # Worded in the language of the request being served (ui/i18n/core.py), English outside one.
        text = (say("eval_cancelled", done=done, total=total) if run.cancelled else
                say("eval_done", done=done, total=total, seconds=run.seconds))
        fraction = done / total if total else 1.0
        css = " cancelled" if run.cancelled else ""
    elif progress is None:
        text, fraction, css = say("eval_starting"), 0.0, ""
    else:
        eta = "" if progress.eta_s is None else say("eval_eta", left=_duration(progress.eta_s))
        text = say("eval_progress", done=progress.done, total=progress.total, message=progress.message,
                   elapsed=_duration(progress.elapsed_s), eta=eta)
        fraction, css = progress.fraction, ""
    percent = 100 * max(0.0, min(1.0, fraction))
    label = html.escape(text, quote=True)
    return (f'<div role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent:.0f}" '
            f'aria-valuetext="{label}"><div class="eval-bar"><div class="eval-fill{css}" '
            f'style="width: {percent:.1f}%"></div></div><div class="eval-text">{label}</div></div>')


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _when(created: str) -> str:
    return created[:19].replace("T", " ") if created else ""


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)

