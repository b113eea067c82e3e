"""A pipeline task over every row of an uploaded table, in batches, with progress and cancel (like Classify).

One registry lease covers the whole run; between batches the run reports progress and checks the cancel flag, so
a cancelled run keeps every row done so far. Rows whose text is blank are kept and left empty. The results are
added as columns (JSON text for structured results, so the CSV download keeps them). `batch_size=1` is the
per-row loop that bench/tasks_batching.py compares against.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pandas as pd

from backend.datafiles import column_texts
from backend.registry import Registry
from backend.service import MAX_MESSAGE_CHARS
from backend.tasks import service
from backend.tasks.catalog import pair_error
from backend.types import GenerationParams, InvalidInputError

ProgressCallback = Callable[[float, str], None]
WINDOW_BATCHES = 8  # rows are sorted by length within windows of this many batches (see length_ordered)
FILE_TASKS = ("ner", "question_answering", "fill_mask", "summarize", "translate", "embed")
OUTPUT_COLUMNS = {"ner": ("entities",), "question_answering": ("answer", "answer_score", "answer_start", "answer_end"),
                  "fill_mask": ("prediction", "predictions"), "summarize": ("summary",),
                  "translate": ("translation",), "embed": ("embedding",)}


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
              question_column: Optional[str] = None, question: str = "", options: Optional[dict[str, Any]] = None,
              params: Optional[GenerationParams] = None, batch_size: int = 16,
              progress: Optional[ProgressCallback] = None,
              cancel: Optional[threading.Event] = None) -> TaskTableResult:
    """Runs `task` over `column` of `table` (for QA `column` is the context; the question is `question_column` of
    each row, or the one `question` for every row). `options` go to the task (aggregation, top_k, stride...)."""
    if task not in FILE_TASKS:
        raise InvalidInputError(f"task: one of {', '.join(FILE_TASKS)}, got {task!r}")
    registry.spec(model_id, task)  # type: ignore[arg-type]
    options = dict(options or {})
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 256:
        raise InvalidInputError(f"batch_size: must be between 1 and 256, got {batch_size!r}")
    texts = _texts(table, column)
    questions = _questions(table, task, question_column, question)
    rows = [i for i, text in enumerate(texts) if text.strip() and (questions is None or questions[i].strip())]
    if not rows:
        raise InvalidInputError(f"column: '{column}' is empty in every row; pick the column that holds the text")
    if task in ("summarize", "translate"):
        spec = registry.spec(model_id, task)  # type: ignore[arg-type]
        params = (params or spec.default_params()).validated()
        if task == "translate":
            problem = pair_error(service.language_pairs(registry, model_id), options.get("source", ""),
                                         options.get("target", ""))
            if problem:
                raise InvalidInputError(problem)
    mask = service.mask_token_of(registry, model_id) if task == "fill_mask" else None
    report = progress or (lambda fraction, description: None)
    results: dict[int, tuple] = {}
    skipped = 0
    cancelled = False
    started = time.perf_counter()
    report(0.0, f"0 / {len(rows):,} rows (loading the model if needed)")
    with registry.lease(model_id, task) as engine:  # type: ignore[arg-type]
        if task == "fill_mask":
            mask = mask or engine.mask_token  # type: ignore[attr-defined]  # a task engine
        done = 0
        order = length_ordered(rows, texts, batch_size)
        for start in range(0, len(order), batch_size):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            batch = order[start:start + batch_size]
            if task == "fill_mask":
                usable = [i for i in batch if mask and mask in texts[i]]
                skipped += len(batch) - len(usable)
                batch_texts = [texts[i] for i in usable]
                outputs = (engine.fill_mask(batch_texts, top_k=options.get("top_k", 5), batch_size=batch_size)  # type: ignore[attr-defined]
                           if usable else [])
                results.update(zip(usable, (_fill_row(out) for out in outputs)))
            else:
                results.update(zip(batch, _run_batch(engine, task, [texts[i] for i in batch],
                                                     [questions[i] for i in batch] if questions else None,
                                                     options, params, batch_size)))
            done += len(batch)
            report(done / len(rows), f"{done:,} / {len(rows):,} rows")
    handled = set(order[:done])
    # After a cancel: every row up to the last one done (rows between not done yet stay empty, and are counted).
    covered = len(table) if not cancelled else (max(handled) + 1 if handled else 0)
    pending = sum(1 for i in rows if i < covered and i not in handled)
    out = table.iloc[:covered].reset_index(drop=True).copy()
    for position, name in enumerate(OUTPUT_COLUMNS[task]):
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


def _questions(table: pd.DataFrame, task: str, question_column: Optional[str], question: str) -> Optional[list[str]]:
    if task != "question_answering":
        return None
    if question_column:
        return _texts(table, question_column)
    if not (question or "").strip():
        raise InvalidInputError("question: give a question column, or one question to ask of every row")
    return [question] * len(table)


def _run_batch(engine: Any, task: str, texts: list[str], questions: Optional[list[str]], options: dict[str, Any],
               params: Optional[GenerationParams], batch_size: int) -> list[tuple]:
    if task == "ner":
        found = engine.ner(texts, aggregation=options.get("aggregation", "simple"), batch_size=batch_size)
        return [(json.dumps([e.to_dict() for e in entities], ensure_ascii=False),) for entities in found]
    if task == "question_answering":
        answers = engine.answer(questions, texts, top_k=1, stride=options.get("stride", 128))
        return [(a[0].answer, a[0].score, a[0].start, a[0].end) if a else ("", None, None, None) for a in answers]
    if task in ("summarize", "translate"):
        outputs = engine.generate_batch(task, texts, params, options.get("source", ""), options.get("target", ""),
                                        options.get("min_new_tokens", 0))
        return [(text,) for text in outputs]
    vectors = engine.embed(texts).vectors
    return [(json.dumps([round(x, 6) for x in vector]),) for vector in vectors]


def _fill_row(per_mask: list) -> tuple:
    best = " | ".join(candidates[0].token for candidates in per_mask if candidates)
    detail = [[{"token": c.token, "score": c.score} for c in candidates] for candidates in per_mask]
    return best, json.dumps(detail, ensure_ascii=False)


def _free_name(table: pd.DataFrame, name: str) -> str:
    candidate, number = name, 2
    while candidate in table.columns:
        candidate, number = f"{name} ({number})", number + 1
    return candidate
