"""The Evaluate tab: a dataset (an upload or a Hub id), its columns, a task, one or more models -> a scored run.

    with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
        build_evaluate_tab(registry)

All the work is backend.evaluation's (the same runner as `python app.py eval`, so the tab and the command give
the same numbers); this module turns widgets into one `EvalConfig`, polls the background `EvaluationJob` for a
progress bar, and turns a `RunResult` into tables, a chart and downloads. Every run is saved under the runs
folder ($WORKBENCH_RUNS_DIR, default `runs`, as for the command line), listed under "Past runs" and can be
reopened or compared. `EvaluateController` holds the logic as plain functions (tested without a browser);
`build_evaluate_tab` only wires widgets to it. Never imports torch: the runner loads models in its thread.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import gradio as gr
import pandas as pd
from gradio.context import Context

from backend import datafiles
from backend.evaluation import store
from backend.evaluation.data import (
    EVAL_TASKS,
    ColumnMapping,
    DataSource,
    guess_columns,
    load_table,
    preview,
)
from backend.evaluation.metrics import HEADLINE, LOWER_IS_BETTER
from backend.evaluation.runner import EvaluationJob
from backend.evaluation.types import INPUT_SLOT, EvalConfig, Progress, RunResult
from backend.registry import Registry
from backend.types import InvalidInputError
from ui.components import handle_errors, ui_event
from ui.jobs import SessionJobs

RUNS_DIR_ENV = "WORKBENCH_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
POLL_S = 0.25  # how often the Run handler looks at the job's progress
PREVIEW_ROWS = 8
EXAMPLES_SHOWN = 500  # rows of the per-example table in the page; the downloads have every matching row
ALL_MODELS = ""  # the examples' model selector value meaning "every model"
NONE = ""  # an optional column left unset
CONCURRENCY_ID = "evaluation"
CONCURRENCY_LIMIT = 4  # runs at once (each in its own thread; the registry serialises work per model)
TASK_CHOICES = [("Classification", "classification"), ("Generation", "generation"), ("Perplexity", "perplexity")]
# Which registry tasks make a model eligible for an evaluation task.
MODEL_TASKS: dict[str, tuple[str, ...]] = {
    "classification": ("classify", "zero_shot", "chat", "generate"),
    "generation": ("chat", "generate"),
    "perplexity": ("chat", "generate"),
}
LABEL_PROMPT_PLACEHOLDER = "blank: the scorer's default (Text: {input}\\nLabel:)"
EXPORT_DIR = Path(tempfile.gettempdir()) / "workbench-eval-exports"
# The leaderboard's columns unless "all metrics" is ticked (the rest are in results.json and behind the box).
MAIN_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "precision_macro", "recall_macro"),
    "generation": ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match", "mean_length"),
    "perplexity": ("perplexity", "mean_perplexity", "nll_per_token"),
}

# Scoped to each gr.HTML below (Gradio prefixes these rules with the component's root).
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


# ------------------------------------------------------------------------------------------- plain data


@dataclass(frozen=True)
class DataView:
    """What the tab shows about a loaded dataset before a run."""

    source: DataSource
    rows: int
    columns: list[str]
    preview: pd.DataFrame
    guess: ColumnMapping

    def describe(self) -> str:
        return f"{self.source.describe()}: {self.rows:,} rows · columns: {', '.join(self.columns)}"


@dataclass(frozen=True)
class EvalForm:
    """The form's values, as plain Python (what a test passes instead of widgets)."""

    task: str
    input_column: Optional[str] = None
    reference_column: Optional[str] = None
    predictions_column: Optional[str] = None
    score_file: bool = False  # score the predictions already in the file (no model)
    models: tuple[str, ...] = ()
    prompt_template: Optional[str] = None
    max_new_tokens: int = 64
    batch_size: int = 8
    limit: Optional[int] = None
    seed: Optional[int] = None
    bootstrap: int = 1000

    def config(self, source: Optional[DataSource]) -> EvalConfig:
        """The validated `EvalConfig` (errors name the field)."""
        if source is None:
            raise InvalidInputError("data: upload a CSV, JSONL or Parquet file, or load a Hub dataset, first")
        if self.task not in EVAL_TASKS:
            raise InvalidInputError(f"task: pick one of {', '.join(EVAL_TASKS)}")
        scoring = self.score_file and self.task != "perplexity"
        if scoring and not self.predictions_column:
            raise InvalidInputError("predictions column: pick the column that holds the predictions to score")
        if not scoring and not self.models:
            raise InvalidInputError("models: pick at least one model (or score the predictions already in the file)")
        template = (self.prompt_template or "").strip("\n") or None
        if self.task == "perplexity" or scoring:
            template = None
        columns = ColumnMapping(
            input=self.input_column or None,
            reference=None if self.task == "perplexity" else self.reference_column or None,
            predictions=self.predictions_column or None if scoring else None,
        )
        return EvalConfig(task=self.task, data=source, columns=columns,  # type: ignore[arg-type]
                          models=() if scoring else tuple(self.models), prompt_template=template,
                          max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, limit=self.limit,
                          seed=self.seed, bootstrap=self.bootstrap).validated()


class _Cache:
    """A tiny thread-safe LRU (loaded tables, opened runs)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: reading a big file must not block other users
        self.put(key, value)
        return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# ------------------------------------------------------------------------------------------ controller


class EvaluateController:
    """The tab's logic over one registry and one runs folder, widget-free."""

    def __init__(self, registry: Optional[Registry], runs_dir: Optional[Union[str, Path]] = None) -> None:
        self.registry = registry
        self.runs_dir = Path(runs_dir or os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)
        self._tables = _Cache(4)
        self._runs = _Cache(8)
        self._jobs = SessionJobs()
        self._listing: Optional[tuple[Any, list[store.RunSummary]]] = None
        self._lock = threading.Lock()

    # -- data

    def table(self, source: DataSource) -> pd.DataFrame:
        """The whole table behind `source` (cached; a file is re-read when it changes)."""
        key: Any = source
        if source.path:
            try:
                stat = Path(source.path).stat()
                key = (source, stat.st_mtime_ns, stat.st_size)
            except OSError:
                pass  # read_table reports the problem
        return self._tables.get(key, lambda: load_table(source))

    def inspect(self, source: DataSource, task: str) -> DataView:
        """Reads the data (errors name the file or dataset) and guesses the column mapping for `task`."""
        table = self.table(source)
        return DataView(source=source, rows=len(table), columns=[str(c) for c in table.columns],
                        preview=preview(table, PREVIEW_ROWS), guess=guess_columns(table, task))  # type: ignore

    @staticmethod
    def hub_source(dataset_id: str, config: str = "", split: str = "") -> DataSource:
        if not (dataset_id or "").strip():
            raise InvalidInputError("Hub dataset: type a dataset id, e.g. 'imdb' or 'someone/reviews'")
        return DataSource(hub_id=dataset_id.strip(), hub_config=(config or "").strip() or None,
                          split=(split or "").strip() or "test")

    def model_choices(self, task: str) -> list[tuple[str, str]]:
        """(name, id) of the models that can be evaluated on `task`."""
        if self.registry is None:
            return []
        wanted = set(MODEL_TASKS.get(task, ()))
        return [(spec.display_name, spec.id) for spec in self.registry.specs() if wanted & set(spec.tasks)]

    def default_models(self, task: str) -> list[str]:
        if self.registry is None:
            return []
        first = "classify" if task == "classification" else "chat"
        preferred = [spec.id for spec in self.registry.specs() if first in spec.tasks]
        choices = [model_id for _, model_id in self.model_choices(task)]
        return (preferred or choices)[:1]

    # -- running

    def stream(self, config: EvalConfig, session: str = "") -> Iterator[Union[Optional[Progress], RunResult]]:
        """Runs `config` in the background: yields progress (None before the first report), then the run.

        `cancel(session)` stops it at the next batch; the run then holds what was done. Closing this generator
        (a closed browser tab) cancels too. Bad input raises the backend's error (a `WorkbenchError`).
        """
        job = EvaluationJob(config, self.registry, table=self.table(config.data), runs_dir=self.runs_dir)
        entry = self._jobs.start(session, job.cancel)  # one run per browser session: a new one replaces it
        try:
            yield None
            last: Optional[Progress] = None
            while not job.done:
                time.sleep(POLL_S)
                if job.progress is not last and job.progress is not None:
                    last = job.progress
                    yield last
        finally:
            if not job.done:
                job.cancel()
            self._jobs.finish(session, entry)
        run = job.result()
        if run.path is not None:
            self._runs.put(str(run.path), run)
        yield run

    def run(self, config: EvalConfig) -> RunResult:
        """Runs `config` to the end (the same path as the tab's Run button, without the polling)."""
        for item in self.stream(config):
            if isinstance(item, RunResult):
                return item
        raise AssertionError("the run ended without a result")

    def cancel(self, session: str = "") -> bool:
        """Asks this session's run to stop after its current batch; False when none is running."""
        return self._jobs.cancel(session)

    # -- saved runs

    def past_runs(self) -> list[store.RunSummary]:
        """The saved runs, newest first; re-read only when a results.json was added or changed (page loads list
        them, and a results.json holds every prediction)."""
        try:
            key = tuple(sorted((str(path), path.stat().st_mtime_ns)
                               for path in self.runs_dir.glob(f"*/{store.RESULTS_FILE}")))
        except OSError:  # a run being written or removed right now
            key = None
        with self._lock:
            if key is not None and self._listing is not None and self._listing[0] == key:
                return list(self._listing[1])
        summaries = store.list_runs(self.runs_dir)
        if key is not None:
            with self._lock:
                self._listing = (key, summaries)
        return list(summaries)

    def open_run(self, run_id: str) -> RunResult:
        """A saved run of this runs folder, by id (only listed ids: a request cannot name any other folder)."""
        if not run_id:
            raise InvalidInputError("run: pick a saved run first")
        summary = next((s for s in self.past_runs() if s.run_id == run_id), None)
        if summary is None:
            raise InvalidInputError(f"run: there is no saved run '{run_id}' in {self.runs_dir}")
        return self.load(str(summary.path))

    def load(self, path: str) -> RunResult:
        return self._runs.get(path, lambda: store.open_run(path))


# ------------------------------------------------------------------------------------------ result views


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
    rows = [{"label": label, "precision": round(values.get("precision", 0.0), 4),
             "recall": round(values.get("recall", 0.0), 4), "f1": round(values.get("f1-score", 0.0), 4),
             "support": int(values.get("support", 0))} for label, values in per_class.items()]
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
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    body = []
    for label, row in zip(labels, counts):
        cells = []
        for count in row:
            alpha = count / peak
            ink = "#fff" if alpha > 0.55 else "inherit"
            cells.append(f'<td style="background: rgba(79, 70, 229, {0.08 + 0.82 * alpha:.2f}); color: {ink}">'
                         f"{count}</td>")
        body.append(f"<tr><th>{escape(label)}</th>{''.join(cells)}</tr>")
    return (f'<div class="confusion-caption">Confusion matrix of <b>{escape(result.model_id)}</b> '
            "(rows: true label · columns: predicted label)</div>"
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
    state = "cancelled (what was done is kept)" if run.cancelled else "complete"
    lines = [f"Run {run.run_id} · {run.task} on {run.config.data.describe()} · {count:,} example(s) · "
             f"{len(run.models)} model(s) · {run.seconds:.1f} s · {state}"]
    if run.path is not None:
        lines.append(f"Saved in {run.path}")
    lines += [f"Note: {notice}" for notice in run.examples.notices]
    for result in run.models.values():
        if result.error:
            lines.append(f"⚠️ {result.model_id} failed: {result.error}")
        lines += [f"Note: {result.model_id}: {notice}" for notice in result.notices]
    return "\n\n".join(html.escape(line, quote=False) for line in lines)


def compare_summary(left: RunResult, right: RunResult) -> str:
    """The headline metric of the models both runs share, and how it moved from the left run to the right."""
    name = headline(left)
    if left.task != right.task:
        return html.escape(f"The runs are different tasks ({left.task} / {right.task}): compare them by eye.",
                           quote=False)
    shared = [model for model in left.models if model in right.models]
    if not shared:
        return "The two runs share no model."
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
        text = (f"Cancelled: {done:,} of {total:,} examples scored and kept" if run.cancelled else
                f"Done: {done:,} of {total:,} examples in {run.seconds:.1f} s")
        fraction = done / total if total else 1.0
        css = " cancelled" if run.cancelled else ""
    elif progress is None:
        text, fraction, css = "Starting: checking the data and the models…", 0.0, ""
    else:
        eta = "" if progress.eta_s is None else f" · about {_duration(progress.eta_s)} left"
        text = (f"{progress.done:,} / {progress.total:,} examples · {progress.message}"
                f" · {_duration(progress.elapsed_s)} elapsed{eta}")
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


def _seed(value: Any) -> Optional[int]:
    """-1 or blank: no seed (the first rows are taken); otherwise a seed >= 0 for a random sample."""
    if value is None or value == "" or value == -1:
        return None
    return _whole(value, "seed", None, 0)


def _when(created: str) -> str:
    return created[:19].replace("T", " ") if created else ""


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _whole(value: Any, name: str, blank: Optional[int] = None, low: int = 0) -> Optional[int]:
    """A gr.Number's value as a whole number; blank gives `blank`."""
    if value is None or value == "":
        return blank
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a whole number, got {value!r}") from None
    if not number.is_integer() or number < low:
        raise InvalidInputError(f"{name}: must be a whole number of at least {low}, got {value!r}")
    return int(number)


# ------------------------------------------------------------------------------------------------ the tab


@dataclass
class _Widgets:
    """The widgets the handlers read and write (one object instead of a dozen loose names)."""

    source: gr.State
    task: gr.Radio
    input_col: gr.Dropdown
    reference_col: gr.Dropdown
    predictions_col: gr.Dropdown
    score_file: gr.Checkbox
    models: gr.Dropdown
    prompt: gr.Textbox
    max_new_tokens: gr.Slider
    batch_size: gr.Slider
    limit: gr.Number
    seed: gr.Number
    bootstrap: gr.Number

    @property
    def form_inputs(self) -> set:
        return {self.source, self.task, self.input_col, self.reference_col, self.predictions_col, self.score_file,
                self.models, self.prompt, self.max_new_tokens, self.batch_size, self.limit, self.seed,
                self.bootstrap}

    def read(self, data: dict) -> tuple[Optional[DataSource], EvalForm]:
        source = DataSource.from_dict(data[self.source]) if data[self.source] else None
        form = EvalForm(
            task=data[self.task], input_column=data[self.input_col] or None,
            reference_column=data[self.reference_col] or None, predictions_column=data[self.predictions_col] or None,
            score_file=bool(data[self.score_file]), models=tuple(data[self.models] or ()),
            prompt_template=data[self.prompt],
            max_new_tokens=_whole(data[self.max_new_tokens], "max new tokens", 64, 1),
            batch_size=_whole(data[self.batch_size], "batch size", 8, 1),
            limit=_whole(data[self.limit], "sample size", None, 0) or None,
            seed=_seed(data[self.seed]),
            bootstrap=_whole(data[self.bootstrap], "bootstrap resamples", 1000, 0))
        return source, form


def build_evaluate_tab(registry: Registry, runs_dir: Optional[Union[str, Path]] = None) -> EvaluateController:
    """Renders the Evaluate tab's content (call inside `with gr.Tab(...)`); returns its controller.

    Runs are saved to `runs_dir`, else $WORKBENCH_RUNS_DIR, else `runs` (the command line's default too).
    """
    ctl = EvaluateController(registry, runs_dir)
    initial_task = "generation"
    summaries = ctl.past_runs()

    gr.Markdown("Score models on a labelled dataset: accuracy and F1 for classification, BLEU / chrF / ROUGE for "
                "generation, perplexity for text. Every run is saved and can be reopened below.",
                elem_id="eval-intro")
    # ---- 1. data
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            with gr.Tabs(elem_id="eval-source"):
                with gr.Tab("Upload a file", id="eval-upload-tab", elem_id="eval-upload-tab"):
                    upload = gr.File(label=f"CSV, JSONL or Parquet (up to {datafiles.MAX_FILE_BYTES // 2**20} MB)",
                                     file_types=list(datafiles.SUPPORTED_EXTENSIONS), height=120,
                                     elem_id="eval-file")
                with gr.Tab("Hub dataset", id="eval-hub-tab", elem_id="eval-hub-tab"):
                    hub_id = gr.Textbox(label="Dataset id", placeholder="e.g. imdb or someone/reviews",
                                        elem_id="eval-hub-id")
                    with gr.Row():
                        hub_config = gr.Textbox(label="Config", placeholder="optional", elem_id="eval-hub-config")
                        hub_split = gr.Textbox(label="Split", value="test", elem_id="eval-hub-split")
                    hub_load = gr.Button("Load dataset", elem_id="eval-hub-load", size="sm")
            data_info = gr.Markdown("Upload a file or name a Hub dataset.", elem_id="eval-data-info")
        with gr.Column(scale=3, min_width=400):
            data_preview = gr.Dataframe(label="Preview (first rows)", interactive=False, wrap=True, max_height=300,
                                        elem_id="eval-preview")
    # ---- 2. task, columns, models
    with gr.Row(equal_height=True):
        task = gr.Radio(TASK_CHOICES, value=initial_task, label="Task", elem_id="eval-task", scale=3)
        models = gr.Dropdown(choices=ctl.model_choices(initial_task), value=ctl.default_models(initial_task),
                             multiselect=True, label="Models", info="one or more; each gets a row in the leaderboard",
                             elem_id="eval-models", interactive=True, scale=4)
        batch_size = gr.Slider(1, 256, value=8, step=1, label="Batch size", elem_id="eval-batch-size", scale=2)
    with gr.Row(equal_height=True):
        input_col = gr.Dropdown(choices=[], value=None, label="Input column", interactive=True,
                                elem_id="eval-input-col")
        reference_col = gr.Dropdown(choices=[], value=None, label="Reference column", interactive=True,
                                    elem_id="eval-reference-col")
        score_file = gr.Checkbox(label="Score the predictions already in the file (no model)", value=False,
                                 elem_id="eval-score-file")
        predictions_col = gr.Dropdown(choices=[], value=None, label="Predictions column", interactive=True,
                                      visible=False, elem_id="eval-predictions-col")
    with gr.Row(equal_height=True):
        prompt = gr.Textbox(value=INPUT_SLOT, label="Prompt template ({input} is where the input goes)", lines=1,
                            max_lines=6, elem_id="eval-prompt", scale=4)
        max_new_tokens = gr.Slider(1, 1024, value=64, step=1, label="Max new tokens", elem_id="eval-max-new-tokens",
                                   scale=2)
        limit = gr.Number(value=0, precision=0, minimum=0, label="Sample size", info="rows; 0: every row",
                          elem_id="eval-limit", scale=1)
        seed = gr.Number(value=-1, precision=0, minimum=-1, label="Seed", info="random sample; -1: first rows",
                         elem_id="eval-seed", scale=1)
        bootstrap = gr.Number(value=1000, precision=0, minimum=0, label="Bootstrap resamples",
                              info="95% intervals; 0: off", elem_id="eval-bootstrap", scale=1)
    with gr.Row():
        run_button = gr.Button("Run evaluation", variant="primary", elem_id="eval-run", scale=4)
        cancel_button = gr.Button("Cancel", variant="stop", elem_id="eval-cancel", scale=1)
    progress = gr.HTML("", elem_id="eval-progress", css_template=PROGRESS_CSS, js_on_load=None)
    # ---- 3. results (shown once there is a run)
    run_info = gr.Markdown("", elem_id="eval-run-info")
    with gr.Column(visible=False, elem_id="eval-results") as results_box:
        leaderboard = gr.Dataframe(label="Leaderboard ([low, high]: bootstrap 95% interval)", interactive=False,
                                   wrap=True, elem_id="eval-leaderboard")
        all_metrics = gr.Checkbox(label="Show every metric", value=False, elem_id="eval-all-metrics")
        with gr.Row(equal_height=False):
            chart = gr.BarPlot(None, x="model", y="score", label="Main metric",
                               elem_id="eval-chart", scale=4)
            with gr.Column(scale=3, visible=False, elem_id="eval-report") as report_box:
                report_model = gr.Dropdown(choices=[], label="Per-class report of", interactive=True,
                                           elem_id="eval-report-model")
                per_class = gr.Dataframe(label="Per class", interactive=False, elem_id="eval-per-class")
                confusion = gr.HTML("", elem_id="eval-confusion", css_template=CONFUSION_CSS, js_on_load=None)
        with gr.Row(equal_height=False):
            examples_filter = gr.Textbox(label="Filter examples", elem_id="eval-filter", scale=4,
                                         placeholder="text in the input, reference or prediction")
            examples_model = gr.Dropdown(choices=[("All models", ALL_MODELS)], value=ALL_MODELS, label="Model",
                                         interactive=True, elem_id="eval-examples-model", scale=2)
            with gr.Column(scale=1, min_width=170):
                download_csv = gr.DownloadButton("Download CSV", visible=False, size="sm", elem_id="eval-download-csv")
                download_json = gr.DownloadButton("Download JSON", visible=False, size="sm",
                                                  elem_id="eval-download-json")
        examples_info = gr.Markdown("", elem_id="eval-examples-info")
        examples = gr.Dataframe(label="Examples", interactive=False, wrap=True, max_height=420, elem_id="eval-examples")
    run_state = gr.State(None)  # the folder of the run on show
    # ---- 4. past runs
    with gr.Accordion("Past runs", open=True, elem_id="eval-past-runs"):
        runs = gr.Dataframe(runs_table(summaries), label="Saved runs (newest first)", interactive=False,
                            max_height=260, elem_id="eval-runs")
        with gr.Row(equal_height=False):
            open_choice = gr.Dropdown(choices=run_choices(summaries), value=None, label="Open a run",
                                      interactive=True, elem_id="eval-open-run", scale=6)
            with gr.Column(scale=1, min_width=140):
                open_button = gr.Button("Open", size="sm", variant="primary", elem_id="eval-open")
                refresh_button = gr.Button("Refresh list", size="sm", elem_id="eval-runs-refresh")
        with gr.Row(equal_height=True):
            compare_a = gr.Dropdown(choices=run_choices(summaries), value=None, label="Compare run",
                                    interactive=True, elem_id="eval-compare-a", scale=3)
            compare_b = gr.Dropdown(choices=run_choices(summaries), value=None, label="with run",
                                    interactive=True, elem_id="eval-compare-b", scale=3)
            compare_button = gr.Button("Compare", elem_id="eval-compare", scale=1)
        compare_summary_md = gr.Markdown("", elem_id="eval-compare-summary")
        with gr.Row(equal_height=False, visible=False) as compare_row:
            compare_left = gr.Dataframe(label="Left run", interactive=False, wrap=True, elem_id="eval-compare-left")
            compare_right = gr.Dataframe(label="Right run", interactive=False, wrap=True, elem_id="eval-compare-right")

    source = gr.State(None)  # DataSource.to_dict() of the data on show
    widgets = _Widgets(source, task, input_col, reference_col, predictions_col, score_file, models, prompt,
                       max_new_tokens, batch_size, limit, seed, bootstrap)
    result_outputs = [run_info, results_box, leaderboard, all_metrics, chart, report_box, report_model, per_class,
                      confusion, examples_filter, examples_model, examples_info, examples, download_csv,
                      download_json, run_state]
    runs_outputs = [runs, open_choice, compare_a, compare_b]

    # -- data: an upload or a Hub dataset -> preview and column choices

    def data_updates(view: Optional[DataView]) -> dict:
        if view is None:
            empty = gr.Dropdown(choices=[], value=None)
            return {source: None, data_info: "Upload a file or name a Hub dataset.", data_preview: None,
                    input_col: empty, reference_col: empty, predictions_col: empty}
        optional = [("(none)", NONE), *[(c, c) for c in view.columns]]
        return {
            source: view.source.to_dict(),
            data_info: html.escape(view.describe(), quote=False),
            data_preview: view.preview,
            input_col: gr.Dropdown(choices=view.columns, value=view.guess.input),
            reference_col: gr.Dropdown(choices=optional, value=view.guess.reference or NONE),
            predictions_col: gr.Dropdown(choices=optional, value=view.guess.predictions or NONE),
        }

    data_outputs = [source, data_info, data_preview, input_col, reference_col, predictions_col]

    @handle_errors
    def on_upload(path: Optional[str], task_value: str) -> dict:
        view = ctl.inspect(DataSource(path=path), task_value) if path else None
        return data_updates(view)

    @handle_errors
    def on_hub(dataset_id: str, config: str, split: str, task_value: str) -> dict:
        return data_updates(ctl.inspect(ctl.hub_source(dataset_id, config, split), task_value))

    def clear_data() -> dict:  # first, so that a failed load does not leave the old preview up
        return data_updates(None)

    upload.change(clear_data, outputs=data_outputs, **ui_event(data_info, queue=False)).then(
        on_upload, inputs=[upload, task], outputs=data_outputs, **ui_event(data_info))
    hub_load.click(clear_data, outputs=data_outputs, **ui_event(data_info, queue=False)).then(
        on_hub, inputs=[hub_id, hub_config, hub_split, task], outputs=data_outputs, **ui_event(data_info, True))

    # -- task / scoring mode -> which widgets apply, which models fit

    @handle_errors
    def on_task(task_value: str, scoring: bool, chosen: list, template: str, data_source: Optional[dict]) -> dict:
        scoring = bool(scoring) and task_value != "perplexity"
        choices = ctl.model_choices(task_value)
        ids = [model_id for _, model_id in choices]
        kept = [model_id for model_id in (chosen or []) if model_id in ids] or ctl.default_models(task_value)
        if task_value == "generation":
            template = template or INPUT_SLOT
        elif task_value == "classification" and template == INPUT_SLOT:
            template = ""
        reference_label = "Label column" if task_value == "classification" else "Reference column"
        updates = {
            models: gr.Dropdown(choices=choices, value=kept, multiselect=True, visible=not scoring),
            reference_col: gr.Dropdown(visible=task_value != "perplexity", label=reference_label),
            input_col: gr.Dropdown(label="Text column" if task_value == "perplexity" else "Input column"),
            score_file: gr.Checkbox(visible=task_value != "perplexity", value=scoring),
            predictions_col: gr.Dropdown(visible=scoring),
            prompt: gr.Textbox(
                value=template, visible=task_value != "perplexity" and not scoring,
                label=("Prompt template for chat / generate models (label scoring; {input} is the text)"
                       if task_value == "classification" else "Prompt template ({input} is where the input goes)"),
                placeholder=LABEL_PROMPT_PLACEHOLDER if task_value == "classification" else None),
            max_new_tokens: gr.Slider(visible=task_value == "generation" and not scoring),
        }
        if data_source:  # the likely reference column differs per task ("label" / "answer")
            view = ctl.inspect(DataSource.from_dict(data_source), task_value)
            updates[reference_col] = gr.Dropdown(choices=[("(none)", NONE), *[(c, c) for c in view.columns]],
                                                 value=view.guess.reference or NONE, label=reference_label,
                                                 visible=task_value != "perplexity")
        return updates

    task_outputs = [models, reference_col, input_col, score_file, predictions_col, prompt, max_new_tokens]
    gr.on([task.input, score_file.input], on_task, inputs=[task, score_file, models, prompt, source],
          outputs=task_outputs, **ui_event(models))

    # -- run, with a progress bar; Cancel keeps what was done

    def show_run(run: Optional[RunResult]) -> dict:
        if run is None:
            return {run_info: "", results_box: gr.Column(visible=False), leaderboard: None, chart: None,
                    report_box: gr.Column(visible=False),
                    report_model: gr.Dropdown(choices=[], value=None), per_class: None, confusion: "",
                    examples_filter: "", examples_model: gr.Dropdown(choices=[("All models", ALL_MODELS)],
                                                                     value=ALL_MODELS),
                    examples_info: "", examples: None, download_csv: gr.DownloadButton(visible=False),
                    download_json: gr.DownloadButton(visible=False), run_state: None}
        name = headline(run)
        ids = list(run.models)
        classification = run.task == "classification"
        first = next((model_id for model_id in leaderboard_table(run)["model"]
                      if run.models[model_id].details.get("confusion_matrix")), ids[0] if ids else None)
        return {
            run_info: run_summary(run),
            results_box: gr.Column(visible=True),
            leaderboard: leaderboard_table(run),
            all_metrics: False,
            chart: gr.BarPlot(chart_frame(run), y_title=name, x_title="model",
                              label=f"{name} per model" + (" (lower is better)" if name in LOWER_IS_BETTER else ""),
                              y_lim=[0, 1] if classification else None,
                              sort="y" if name in LOWER_IS_BETTER else "-y"),
            report_box: gr.Column(visible=classification),
            report_model: gr.Dropdown(choices=ids, value=first),
            per_class: per_class_table(run, first) if classification else None,
            confusion: confusion_html(run, first) if classification else "",
            examples_filter: "",
            examples_model: gr.Dropdown(choices=[("All models", ALL_MODELS), *[(i, i) for i in ids]],
                                        value=ALL_MODELS),
            **example_updates(run, "", ALL_MODELS),
            run_state: str(run.path) if run.path else None,
        }

    def example_updates(run: RunResult, text: str, model_id: str) -> dict:
        table = filter_examples(run, text, model_id)
        shown = table.head(EXAMPLES_SHOWN).round(4)
        total = len(run.examples) * (1 if model_id else len(run.models))
        note = f"{len(table):,} of {total:,} rows match" if (text or "").strip() else f"{len(table):,} rows"
        if len(table) > len(shown):
            note += f"; showing the first {len(shown):,} (the downloads have them all)"
        return {
            examples_info: note,
            examples: shown,
            download_csv: gr.DownloadButton(value=str(export_examples(run, table, "csv", text, model_id)),
                                            visible=True),
            download_json: gr.DownloadButton(value=str(export_examples(run, table, "json", text, model_id)),
                                             visible=True),
        }

    def runs_updates() -> dict:
        summaries = ctl.past_runs()
        choices = run_choices(summaries)
        return {runs: runs_table(summaries), open_choice: gr.Dropdown(choices=choices),
                compare_a: gr.Dropdown(choices=choices), compare_b: gr.Dropdown(choices=choices)}

    @handle_errors
    def on_run(data: dict, request: gr.Request) -> Iterator[dict]:
        data_source, form = widgets.read(data)
        config = form.config(data_source)
        for item in ctl.stream(config, session=request.session_hash or ""):
            if isinstance(item, RunResult):
                yield {progress: progress_html(None, item), **show_run(item), **runs_updates()}
            elif item is None:
                yield {progress: progress_html(None), **show_run(None)}
            else:
                yield {progress: progress_html(item)}

    run_button.click(
        on_run, inputs=widgets.form_inputs, outputs=[progress, *result_outputs, *runs_outputs],
        concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(progress)
    ).failure(lambda: "", outputs=progress, **ui_event(progress, queue=False))  # no stale "Starting…" bar
    # Cancel does not cancel this event: the run must end normally to score and show what was done.

    def on_cancel(request: gr.Request) -> None:
        ctl.cancel(request.session_hash or "")

    # Not queued: it runs at once while the run holds its queue slot; the job stops after its current batch.
    cancel_button.click(on_cancel, inputs=None, outputs=None, **ui_event(cancel_button, queue=False))
    root = Context.root_block
    if root is not None:
        root.unload(on_cancel)  # a closed or reloaded page stops its run instead of computing for nobody
        root.load(runs_updates, outputs=runs_outputs, **ui_event(runs, queue=False))

    # -- results: per-class report, filter, downloads

    @handle_errors
    def on_report_model(path: Optional[str], model_id: Optional[str]) -> tuple:
        if not path:
            return None, ""
        run = ctl.load(path)
        return per_class_table(run, model_id), confusion_html(run, model_id)

    report_model.change(on_report_model, inputs=[run_state, report_model], outputs=[per_class, confusion],
                       **ui_event(per_class))

    @handle_errors
    def on_all_metrics(path: Optional[str], everything: bool) -> Any:
        return leaderboard_table(ctl.load(path), all_metrics=bool(everything)) if path else None

    all_metrics.input(on_all_metrics, inputs=[run_state, all_metrics], outputs=leaderboard, **ui_event(leaderboard))

    @handle_errors
    def on_filter(path: Optional[str], text: str, model_id: str) -> dict:
        if not path:
            return {examples_info: "", examples: None}
        return example_updates(ctl.load(path), text, model_id or ALL_MODELS)

    gr.on([examples_filter.change, examples_filter.submit, examples_model.change], on_filter,
          inputs=[run_state, examples_filter, examples_model], outputs=[examples_info, examples, download_csv,
                                                                        download_json],
          trigger_mode="always_last", **ui_event(examples))

    # -- past runs: list, reopen, compare

    refresh_button.click(runs_updates, outputs=runs_outputs, **ui_event(runs, queue=False))

    @handle_errors
    def on_open(run_id: Optional[str]) -> dict:
        run = ctl.open_run(run_id or "")
        return {progress: "", **show_run(run)}

    open_button.click(on_open, inputs=open_choice, outputs=[progress, *result_outputs], **ui_event(run_info))

    @handle_errors
    def on_compare(left_id: Optional[str], right_id: Optional[str]) -> tuple:
        if not left_id or not right_id:
            raise InvalidInputError("compare: pick two saved runs")
        left, right = ctl.open_run(left_id), ctl.open_run(right_id)
        return (compare_summary(left, right), gr.Row(visible=True),
                gr.Dataframe(leaderboard_table(left), label=f"{left.run_id} · {left.config.data.describe()}"),
                gr.Dataframe(leaderboard_table(right), label=f"{right.run_id} · {right.config.data.describe()}"))

    compare_button.click(on_compare, inputs=[compare_a, compare_b],
                         outputs=[compare_summary_md, compare_row, compare_left, compare_right],
                         **ui_event(compare_summary_md))
    return ctl
