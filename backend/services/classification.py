"""Classification service: supervised labels, NLI zero-shot, LLM label scoring, over one text or a whole file.

Three modes, one shape of result (ranked `LabelScore`s per text, probabilities):

- `supervised`: a `classify` model's own labels (softmax over its head; sums to 1).
- `zero_shot`: an NLI (`zero_shot`) model scores labels the user types, via a hypothesis template.
- `llm`: any `chat` / `generate` model scores each label's log-likelihood after a prompt template.

Inputs are validated before any model is touched; every error names the field. Texts run in batches of
`batch_size`; between batches the service reports progress and checks the cancel event, so a cancelled run
keeps everything classified so far. Nothing here imports torch: engines do, when a model is used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, TypedDict, Union, Unpack

import pandas as pd

from backend.engines.base import Engine, ScoresInBatches
from backend.core.config import ModelSpec
from backend.core.error_codes import refuse
from backend.core.json_types import JSONOutputObject
from backend.core.registry import Registry
from backend.services.generation import MAX_MESSAGE_CHARS, check_text
from backend.core.types import InvalidInputError, LabelScore, Task, UnsupportedTaskError

Mode = Literal["supervised", "zero_shot", "llm"]
MODES: tuple[Mode, ...] = ("supervised", "zero_shot", "llm")
MODE_TASKS: dict[Mode, tuple[Task, ...]] = {
    "supervised": ("classify",),
    "zero_shot": ("zero_shot",),
    "llm": ("generate", "chat"),
}
MODE_NAMES: dict[Mode, str] = {"supervised": "supervised", "zero_shot": "zero-shot", "llm": "LLM as classifier"}

DEFAULT_HYPOTHESIS_TEMPLATE = "This example is {}."
# The same default as backend.engines.label_scoring (which imports torch, so it is not imported here).
DEFAULT_PROMPT_TEMPLATE = "Classify the text into one of these labels: {labels}.\n\nText: {text}\nLabel:"
DEFAULT_BATCH_SIZE = 16
MAX_BATCH_SIZE = 256
MAX_LABELS = 50
MAX_LABEL_CHARS = 200
MAX_TEMPLATE_CHARS = 4_000
MAX_TEXTS = 100_000
MAX_ROWS_PER_PASS = 512  # (text, label) rows in one forward pass for zero-shot and LLM scoring

# (fraction done in [0, 1], a short description such as "256 / 1,000 texts")
ProgressCallback = Callable[[float, str], None]
# Candidate labels as a form or a request gives them: "a, b, c", a list, or none (checked by `parse_labels`).
Labels = Union[str, Sequence[str], None]


class ClassifyOptions(TypedDict, total=False):
    """The keyword options of `classify_texts`, which `classify_table` hands on."""

    multi_label: bool
    hypothesis_template: str
    prompt_template: str
    batch_size: int
    progress: Optional[ProgressCallback]
    cancel: Optional[threading.Event]


@dataclass(frozen=True)
class ClassificationResult:
    """What a run produced. `scores[i]` belongs to `texts[i]`; after a cancel, only the first `completed`."""

    scores: list[list[LabelScore]]
    total: int
    truncated: int  # texts longer than the model takes, cut to its limit
    max_context: Optional[int]
    cancelled: bool
    seconds: float
    mode: Mode
    model_id: str
    labels: tuple[str, ...] = ()  # the labels scored, in the model's (supervised) or the user's order

    @property
    def completed(self) -> int:
        return len(self.scores)

    def notices(self) -> list[str]:
        """What the user should be told besides the scores."""
        notes = []
        if self.truncated:
            limit = f"{self.max_context}-token" if self.max_context else "input"
            notes.append(f"{self.truncated:,} of {self.completed:,} text(s) were longer than the model's {limit} limit "
                         "and were truncated")
        if self.cancelled:
            notes.append(f"cancelled after {self.completed:,} of {self.total:,} text(s); the results so far are kept")
        return notes


# ------------------------------------------------------------------------------------------ validation


def parse_labels(labels: object) -> list[str]:
    """Candidate labels from a comma-separated string (or a list); blanks dropped, duplicates refused."""
    if labels is None:
        return []
    if isinstance(labels, str):
        items = labels.split(",")
    elif isinstance(labels, (list, tuple)):
        items = list(labels)
    else:
        raise InvalidInputError("labels: give a comma-separated string, e.g. 'sports, politics, science'",
                                field="labels")
    if not all(isinstance(item, str) for item in items):
        raise InvalidInputError("labels: every label must be text", field="labels")
    cleaned = [item.strip() for item in items if item.strip()]
    seen: dict[str, str] = {}
    for label in cleaned:
        key = label.casefold()
        if key in seen:
            raise InvalidInputError(f"labels: '{label}' is given twice" + (
                f" (as '{seen[key]}' and '{label}')" if seen[key] != label else "") + "; each label once")
        seen[key] = label
        if len(label) > MAX_LABEL_CHARS:
            raise InvalidInputError(f"labels: '{label[:40]}…' is {len(label)} characters; at most {MAX_LABEL_CHARS}",
                                    field="labels")
        if "\x00" in label:
            raise InvalidInputError("labels: a label contains a NUL character; remove it", field="labels")
    if len(cleaned) > MAX_LABELS:
        raise InvalidInputError(f"labels: at most {MAX_LABELS} labels, got {len(cleaned)}", field="labels")
    return cleaned


def mode_for(registry: Registry, model_id: str, mode: Optional[str] = None, has_labels: bool = False) -> Mode:
    """The mode to run `model_id` in: the one asked for (checked against the model), else what the model does.

    Without a mode, a model that can do several picks zero-shot / LLM scoring when labels are given, and its own
    labels (supervised) when none are.
    """
    spec = registry.spec(model_id)
    if mode is None or mode == "":
        preference: tuple[Mode, ...] = ("zero_shot", "llm", "supervised") if has_labels else MODES
        for candidate in preference:
            if set(MODE_TASKS[candidate]) & set(spec.tasks):
                return candidate
        raise UnsupportedTaskError(f"model '{model_id}' cannot classify (its tasks: {', '.join(spec.tasks)})")
    if mode not in MODES:
        raise InvalidInputError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
    if not set(MODE_TASKS[mode]) & set(spec.tasks):  # type: ignore[index]
        able = ", ".join(s.id for s in models_for(registry, mode)) or "none"  # type: ignore[arg-type]
        raise UnsupportedTaskError(
            f"model: '{model_id}' cannot do {MODE_NAMES[mode]} classification (its tasks: "  # type: ignore[index]
            f"{', '.join(spec.tasks)}); models that can: {able}"
        )
    return mode  # type: ignore[return-value]


def models_for(registry: Registry, mode: Mode) -> list[ModelSpec]:
    """The registry entries that can run in `mode` (the UI's model choices)."""
    return [spec for spec in registry.specs() if set(MODE_TASKS[mode]) & set(spec.tasks)]


def _task_for(registry: Registry, model_id: str, mode: Mode) -> Task:
    tasks = registry.spec(model_id).tasks
    return next(task for task in MODE_TASKS[mode] if task in tasks)


def _check_request(texts: Sequence[str], labels: list[str], mode: Mode, multi_label: bool,
                   hypothesis_template: str, prompt_template: str, batch_size: object) -> int:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise InvalidInputError("texts: give a list of texts", field="texts")
    if not texts:
        raise InvalidInputError("texts: nothing to classify; give at least one text", field="texts")
    if len(texts) > MAX_TEXTS:
        raise InvalidInputError(f"texts: at most {MAX_TEXTS:,} per request, got {len(texts):,}", field="texts")
    single = len(texts) == 1
    for index, text in enumerate(texts):
        check_text("text" if single else f"texts[{index}]", text)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, float)) or \
            (isinstance(batch_size, float) and not batch_size.is_integer()):
        raise refuse("whole_between", "batch_size", low=1, high=MAX_BATCH_SIZE, got=batch_size)
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise refuse("between", "batch_size", low=1, high=MAX_BATCH_SIZE, got=batch_size)
    if mode == "supervised":
        if labels:
            raise InvalidInputError("labels: a supervised model classifies into its own labels; leave labels empty, "
                                    "or choose zero-shot or LLM mode to use your own", field="labels")
        if multi_label:
            raise InvalidInputError("multi_label: only zero-shot classification scores labels independently",
                                    field="multi_label")
        return int(batch_size)
    if not labels:
        raise InvalidInputError(f"labels: {MODE_NAMES[mode]} classification needs candidate labels, "
                                "comma separated (e.g. 'sports, politics, science')", field="labels")
    if len(labels) < 2 and not multi_label:
        raise InvalidInputError("labels: give at least two labels (one label always scores 1 in single-label mode), "
                                "or turn on multi_label", field="labels")
    if mode == "zero_shot":
        _check_template("hypothesis_template", hypothesis_template, "{}")
    else:
        if multi_label:
            raise InvalidInputError("multi_label: only zero-shot classification scores labels independently; "
                                    "LLM scoring gives one distribution over the labels", field="multi_label")
        _check_template("prompt_template", prompt_template, "{text}")
    return int(batch_size)


def _check_template(field: str, template: object, slot: str) -> None:
    if not isinstance(template, str) or slot not in template:
        raise InvalidInputError(f"{field}: must contain {slot} (where the {'label' if slot == '{}' else 'text'} goes)",
                                field=field)
    if len(template) > MAX_TEMPLATE_CHARS:
        raise InvalidInputError(f"{field}: at most {MAX_TEMPLATE_CHARS:,} characters, got {len(template):,}",
                                field=field)


# ---------------------------------------------------------------------------------------------- running


def classify_texts(
    registry: Registry,
    model_id: str,
    texts: Sequence[str],
    labels: Labels = None,
    mode: Optional[str] = None,
    *,
    multi_label: bool = False,
    hypothesis_template: str = DEFAULT_HYPOTHESIS_TEMPLATE,
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[threading.Event] = None,
) -> ClassificationResult:
    """Classifies `texts` in batches with `model_id`; `labels` (a list or "a, b, c") for zero-shot and LLM modes.

    `mode` defaults to what the model does. `progress(fraction, description)` is called before the first batch
    and after each one; setting `cancel` stops before the next batch and returns what was done.
    """
    label_list = parse_labels(labels)
    chosen = mode_for(registry, model_id, mode, has_labels=bool(label_list))
    hypothesis_template = DEFAULT_HYPOTHESIS_TEMPLATE if hypothesis_template in (None, "") else hypothesis_template
    prompt_template = DEFAULT_PROMPT_TEMPLATE if prompt_template in (None, "") else prompt_template
    size = _check_request(texts, label_list, chosen, bool(multi_label), hypothesis_template, prompt_template,
                          batch_size)
    texts = list(texts)
    total = len(texts)
    report = progress or (lambda fraction, description: None)
    started = time.perf_counter()
    scores: list[list[LabelScore]] = []
    truncated = 0
    cancelled = False
    report(0.0, f"0 / {total:,} texts (loading the model if needed)")
    with registry.lease(model_id, _task_for(registry, model_id, chosen)) as engine:
        for start in range(0, total, size):
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            batch = texts[start:start + size]
            batch_scores, batch_truncated = _run_batch(engine, chosen, batch, label_list, bool(multi_label),
                                                       hypothesis_template, prompt_template, size)
            scores.extend(batch_scores)
            truncated += sum(batch_truncated)
            report(len(scores) / total, f"{len(scores):,} / {total:,} texts")
        max_context = engine.max_context
        order = tuple(label_list) if label_list else tuple(engine.labels if isinstance(engine, ScoresInBatches)
                                                           else ())
    return ClassificationResult(scores=scores, total=total, truncated=truncated, max_context=max_context,
                                cancelled=cancelled, seconds=time.perf_counter() - started, mode=chosen,
                                model_id=model_id, labels=order)


def _run_batch(engine: Engine, mode: Mode, batch: list[str], labels: list[str], multi_label: bool,
               hypothesis_template: str, prompt_template: str, batch_size: int) -> tuple[list, list[bool]]:
    # Zero-shot and LLM scoring run one row per (text, label): cap the rows of one forward pass so that a big
    # batch times many labels cannot exhaust memory. Results do not depend on how rows are grouped.
    per_pass = max(1, min(batch_size, MAX_ROWS_PER_PASS // max(1, len(labels)))) if labels else batch_size
    if mode == "llm":
        from backend.engines.label_scoring import score_labels

        return score_labels(engine, batch, labels, prompt_template, texts_per_pass=per_pass)
    if not isinstance(engine, ScoresInBatches):  # no batched scoring (e.g. a remote one): the contract method
        results = engine.classify(batch, labels or None)
        return results, [False] * len(batch)
    score = engine.score
    if mode == "supervised":
        return score(batch)
    scores: list = []
    truncated: list[bool] = []
    for start in range(0, len(batch), per_pass):
        part_scores, part_truncated = score(batch[start:start + per_pass], labels,
                                            hypothesis_template=hypothesis_template, multi_label=multi_label)
        scores.extend(part_scores)
        truncated.extend(part_truncated)
    return scores, truncated


# ----------------------------------------------------------------------------------------------- tables


PREDICTED_LABEL = "predicted_label"
PREDICTED_SCORE = "predicted_score"


@dataclass(frozen=True)
class TableResult:
    """A file's results: its rows (all columns) with the prediction added, and the run behind them."""

    table: pd.DataFrame
    result: ClassificationResult
    blank_rows: int  # rows whose text was empty: left unclassified

    def notices(self) -> list[str]:
        notes = self.result.notices()
        if self.blank_rows:
            notes.insert(0, f"{self.blank_rows:,} row(s) with an empty text were skipped")
        return notes


def classify_table(
    registry: Registry,
    model_id: str,
    table: pd.DataFrame,
    column: str,
    labels: Labels = None,
    mode: Optional[str] = None,
    **options: Unpack[ClassifyOptions],
) -> TableResult:
    """Classifies every row's `column` (see `classify_texts` for the options); adds the predictions as columns.

    Added columns: `predicted_label`, `predicted_score`, and `score: <label>` for every label. Rows with an
    empty text are kept, unclassified. After a cancel the table holds the rows up to the last one classified.
    """
    from backend.data.files import column_texts

    texts = column_texts(table, column)
    # Characters far beyond any model's context would only be truncated anyway: cut them before validation, and
    # drop NULs (binary debris in exported files), so one odd cell cannot refuse a whole file.
    texts = [text[:MAX_MESSAGE_CHARS].replace("\x00", "") for text in texts]
    rows = [index for index, text in enumerate(texts) if text.strip()]
    if not rows:
        raise refuse("empty_column", "column", name=column)
    result = classify_texts(registry, model_id, [texts[index] for index in rows], labels, mode, **options)
    done_rows = rows[:result.completed]
    # Up to the first row not classified (blank rows in between count as handled).
    covered = len(table) if not result.cancelled else (rows[result.completed] if result.completed < len(rows)
                                                       else len(table))
    out = table.iloc[:covered].reset_index(drop=True).copy()
    label_order = list(result.labels) or _label_order(result.scores)
    predicted = [""] * covered
    best = [float("nan")] * covered
    per_label = {label: [float("nan")] * covered for label in label_order}
    for row, ranked in zip(done_rows, result.scores):
        predicted[row], best[row] = ranked[0].label, ranked[0].score
        for item in ranked:
            per_label.setdefault(item.label, [float("nan")] * covered)[row] = item.score
    out[_free_name(out, PREDICTED_LABEL)] = predicted
    out[_free_name(out, PREDICTED_SCORE)] = best
    for label, column_scores in per_label.items():
        out[_free_name(out, f"score: {label}")] = column_scores
    blank = sum(1 for text in texts[:covered] if not text.strip())
    return TableResult(out, result, blank)


def _label_order(scores: list[list[LabelScore]]) -> list[str]:
    """Labels in a stable (alphabetical) order when the engine did not say which order it has."""
    return sorted({item.label for ranked in scores for item in ranked})


def _free_name(table: pd.DataFrame, name: str) -> str:
    """`name`, or `name (2)`, ... when the uploaded file already has such a column."""
    candidate, number = name, 2
    while candidate in table.columns:
        candidate, number = f"{name} ({number})", number + 1
    return candidate


def scores_to_dicts(scores: list[LabelScore]) -> list[JSONOutputObject]:
    """[{"label": ..., "score": ...}, ...] in score order (the API's shape)."""
    return [{"label": item.label, "score": item.score} for item in scores]
