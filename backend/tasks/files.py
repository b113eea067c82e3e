"""A pipeline task over every row of an uploaded table, in batches, with progress and cancel (like Classify).

One registry lease covers the whole run; between batches the run reports progress and checks the cancel flag, so
a cancelled run keeps every row done so far. Rows whose text is blank are kept and left empty. The results are
added as columns (JSON text for structured results, so the CSV download keeps them). `batch_size=1` is the
per-row loop that bench/tasks_batching.py compares against.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Callable, Optional

import pandas as pd

from backend.data.files import column_texts
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.services.generation import MAX_MESSAGE_CHARS
from backend.tasks import service
from backend.tasks.base import Cell, TaskInputs, TaskRequest, TaskSpec
from backend.tasks.table import PIPELINE_TASKS, task_spec
from backend.core.types import GenerationParams, InvalidInputError

ProgressCallback = Callable[[float, str], None]
WINDOW_BATCHES = 8  # rows are sorted by length within windows of this many batches (see length_ordered)
FILE_TASKS = PIPELINE_TASKS  # every task of the table runs over a file


@dataclass(frozen=True)
class TaskTableResult:
    table: pd.DataFrame  # the rows up to the last one done, with the result columns added
    task: str
    model_id: str
    completed: int  # non-blank rows done
    total: int  # non-blank rows
    blank_rows: int
    skipped: int  # rows refused one by one (e.g. a fill-mask text without the mask token)
    cancelled: bool
    seconds: float
    pending: int = 0  # after a cancel: rows among those kept that were not processed (their results are empty)

    def notices(self) -> list[str]:
        notes = []
        if self.blank_rows:
            notes.append(f"{self.blank_rows:,} row(s) with an empty text were skipped")
        if self.skipped:
            notes.append(f"{self.skipped:,} row(s) could not be processed (e.g. no mask token); left empty")
        if self.cancelled:
            notes.append(f"cancelled after {self.completed:,} of {self.total:,} rows; the results so far are kept"
                         + (f" ({self.pending:,} row(s) among them were not reached: empty)" if self.pending else ""))
        return notes


def _texts(table: pd.DataFrame, column: str) -> list[str]:
    # Far beyond any context: cut before validation; NULs (binary debris) dropped, so one cell cannot refuse a file.
    return [text[:MAX_MESSAGE_CHARS].replace("\x00", "") for text in column_texts(table, column)]


def run_table(registry: Registry, model_id: str, task: str, table: pd.DataFrame, column: str, *,
              question_column: Optional[str] = None, question: str = "", options: Optional[Mapping[str, object]] = None,
              params: Optional[GenerationParams] = None, batch_size: int = 16,
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[threading.Event] = None) -> TaskTableResult:
    """Runs `task` over `column` of `table` (for QA `column` is the context; the question is `question_column` of
    each row, or the one `question` for every row). `options` go to the task (aggregation, top_k, stride...); the
    task's spec checks them and says which rows it can take and which columns a result fills."""
    spec = task_spec(task)
    model = registry.spec(model_id, task)  # type: ignore[arg-type]
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 256:
        raise refuse("between", "batch_size", low=1, high=256, got=batch_size)
    texts = _texts(table, column)
    questions = _questions(table, spec, question_column, question)
    rows = [i for i, text in enumerate(texts) if text.strip() and (questions is None or questions[i].strip())]
    if not rows:
        raise refuse("empty_column", "column", name=column)
    task_options = spec.file_options(model, dict(options or {}), params)
    report = progress or (lambda fraction, description: None)
    results: dict[int, tuple[Cell, ...]] = {}
    skipped = 0
    cancelled = False
    started = time.perf_counter()
    report(0.0, f"0 / {len(rows):,} rows (loading the model if needed)")
    with registry.lease(model_id, task) as engine:  # type: ignore[arg-type]
        task_options = spec.loaded_options(model, task_options)
        done = 0
        order = length_ordered(rows, texts, batch_size)
        for start in range(0, len(order), batch_size):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            batch = order[start:start + batch_size]
            usable = [i for i in batch if spec.usable(texts[i], task_options)]
            skipped += len(batch) - len(usable)
            if usable:
                inputs = TaskInputs(tuple(texts[i] for i in usable),
                                    tuple(questions[i] for i in usable) if questions else None)
                outputs = service.run_request(engine, model_id, task, TaskRequest(inputs, task_options, batch_size))
                results.update(zip(usable, (spec.file_row(output) for output in outputs)))
            done += len(batch)
            report(done / len(rows), f"{done:,} / {len(rows):,} rows")
    handled = set(order[:done])
    # After a cancel: every row up to the last one done (rows between not done yet stay empty, and are counted).
    covered = len(table) if not cancelled else (max(handled) + 1 if handled else 0)
    pending = sum(1 for i in rows if i < covered and i not in handled)
    out = table.iloc[:covered].reset_index(drop=True).copy()
    for position, name in enumerate(spec.columns):
        out[_free_name(out, name)] = [results[i][position] if i in results else None for i in range(covered)]
    chosen = set(rows)
    blank = sum(1 for i in range(covered) if i not in chosen)
    return TaskTableResult(out, task, model_id, completed=done, total=len(rows), blank_rows=blank, skipped=skipped,
                           cancelled=cancelled, seconds=time.perf_counter() - started, pending=pending)


def length_ordered(rows: list[int], texts: list[str], batch_size: int) -> list[int]:
    """The rows in processing order: file order by windows of WINDOW_BATCHES batches, longest first inside each.

    Why: a batch is padded to its longest text, so rows of similar length share a batch (on CPU, random lengths
    cost up to twice the compute); windows keep the run moving through the file, so a cancel keeps its start.
    """
    window = batch_size * WINDOW_BATCHES
    ordered: list[int] = []
    for start in range(0, len(rows), window):
        ordered.extend(sorted(rows[start:start + window], key=lambda i: len(texts[i]), reverse=True))
    return ordered


def _questions(table: pd.DataFrame, spec: TaskSpec[Any, Any], question_column: Optional[str],
               question: str) -> Optional[list[str]]:
    if not spec.asks_questions:
        return None
    if question_column:
        return _texts(table, question_column)
    if not (question or "").strip():
        raise InvalidInputError("question: give a question column, or one question to ask of every row",
                                field="question")
    return [question] * len(table)


def _free_name(table: pd.DataFrame, name: str) -> str:
    candidate, number = name, 2
    while candidate in table.columns:
        candidate, number = f"{name} ({number})", number + 1
    return candidate
