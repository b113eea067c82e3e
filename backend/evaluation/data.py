"""Evaluation data: a table from a file (CSV / JSONL / Parquet) or a Hub dataset, its columns, and the examples.

Files are read by `backend.data.files` (one reader for the whole app, with its size limits and clear errors).
Hub datasets go through `datasets.load_dataset`; offline, that is a fast, clear error naming the dataset instead
of a minute of retries. Every error is an `InvalidInputError` whose message a user can act on.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal, Optional

from backend.core.error_codes import refuse
from backend.core.json_types import JSONObject
from backend.core.types import InvalidInputError
from backend.evaluation.conversation import conversation_examples, guess_conversation_column

if TYPE_CHECKING:  # pandas is light, but a UI that only lists runs does not need it
    import pandas as pd

EvalTask = Literal["classification", "generation", "perplexity",
                   "ner", "question_answering", "summarization", "translation"]  # the pipeline tasks' models
EVAL_TASKS: tuple[EvalTask, ...] = ("classification", "generation", "perplexity",
                                    "ner", "question_answering", "summarization", "translation")

HUB_PROBE_TIMEOUT_S = 5.0  # the Hub answers in well under a second when it is reachable
PREVIEW_ROWS = 5
# Column names that usually hold the expected output, most likely first (matched case-insensitively).
REFERENCE_HINTS: dict[str, tuple[str, ...]] = {
    "classification": ("label", "labels", "class", "category", "sentiment", "polarity", "emotion", "intent", "topic",
                       "target", "gold", "reference"),
    "generation": ("reference", "references", "answer", "target", "output", "summary", "completion", "response",
                   "expected", "gold"),
}
REFERENCE_HINTS.update({
    "ner": ("tags", "ner_tags", "labels", "reference"),
    "question_answering": ("answers", "answer", "reference"),
    "summarization": ("summary", "highlights", "reference", "target"),
    "translation": ("translation", "target", "reference"),
})
# The pipeline tasks' inputs go by well-known names too (the question, not the longer passage, is QA's input).
INPUT_HINTS: dict[str, tuple[str, ...]] = {
    "ner": ("tokens", "words"),
    "question_answering": ("question", "questions", "query"),
    "summarization": ("document", "article", "source", "text", "dialogue"),
    "translation": ("source", "src", "text", "sentence"),
}
CONTEXT_HINTS = ("context", "passage", "paragraph", "document")  # question answering's passage
PREDICTION_HINTS = ("prediction", "predictions", "predicted", "predicted_label", "model_output")
# A Hub dataset id is `owner/name` and nothing else: `datasets.load_dataset` also takes local folders, files and
# builder names (`text`, `csv`, `parquet`...), which would read the server's own files. Each part starts with a
# letter or digit (so no `.` / `..`), and holds letters, digits, `-`, `_`, `.` (the Hub's own rule).
HUB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
# Config and split names: plain names (a split may carry a slice, e.g. `test[:100]`).
HUB_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:%+\[\]-]{0,63}")


@dataclass(frozen=True)
class DataSource:
    """Where the examples come from: a local file, or a Hub dataset (id, config, split)."""

    path: Optional[str] = None
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    split: str = "test"

    def describe(self) -> str:
        if self.path:
            return os.path.basename(self.path)
        config = f" ({self.hub_config})" if self.hub_config else ""
        return f"{self.hub_id}{config} [{self.split}]"

    def to_dict(self) -> JSONObject:
        return asdict(self)

    @staticmethod
    def from_dict(data: JSONObject) -> "DataSource":
        return DataSource(path=_text(data.get("path")), hub_id=_text(data.get("hub_id")),
                          hub_config=_text(data.get("hub_config")), split=_text(data.get("split")) or "test")


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds what. `input` is the text a model sees (the text scored, for perplexity)."""

    input: Optional[str] = None
    reference: Optional[str] = None  # the expected text, or the true label
    predictions: Optional[str] = None  # predictions already in the file: scored as they are, no model
    context: Optional[str] = None  # question answering: the passage the answer is found in (`input`: the question)
    # generation: the turns before the evaluated one (backend/evaluation/conversation.py)
    conversation: Optional[str] = None

    def to_dict(self) -> JSONObject:
        return asdict(self)

    @staticmethod
    def from_dict(data: JSONObject) -> "ColumnMapping":
        return ColumnMapping(input=_text(data.get("input")), reference=_text(data.get("reference")),
                             predictions=_text(data.get("predictions")), context=_text(data.get("context")),
                             conversation=_text(data.get("conversation")))


def _text(value: object) -> Optional[str]:
    """A stored text setting: None stays None (not given), anything else is its text."""
    return None if value is None else str(value)


@dataclass(frozen=True)
class Examples:
    """The examples of a run, aligned: `rows[i]` is the 0-based row of the source table they came from."""

    rows: list[int]
    inputs: list[str]
    references: list[str]
    predictions: Optional[list[str]] = None  # from the file's predictions column, when there is one
    notices: list[str] = field(default_factory=list)
    contexts: Optional[list[str]] = None  # question answering: each question's passage
    # generation with a conversation column: the turns asked before the input (the reference turn cut off)
    conversations: Optional[list[list[dict[str, str]]]] = None

    def __len__(self) -> int:
        return len(self.rows)


# ------------------------------------------------------------------------------------------------ tables


def load_table(source: DataSource) -> "pd.DataFrame":
    """The whole table behind `source` (a file, or a Hub dataset split)."""
    if bool(source.path) == bool(source.hub_id):
        raise InvalidInputError("data: give either a file or a Hub dataset id (not both, not neither)", field="data")
    if source.path:
        return read_file(source.path)
    return load_hub_dataset(source.hub_id or "", source.hub_config, source.split)


def read_file(path: str | os.PathLike[str]) -> "pd.DataFrame":
    """A CSV / JSONL / Parquet file as a table (all reading goes through backend.data.files)."""
    from backend.data.files import read_table

    return read_table(path)


def check_hub_id(dataset_id: str, config: Optional[str] = None, split: str = "test") -> str:
    """`dataset_id` if it can only mean a Hub repository (`owner/name`); otherwise a clear refusal.

    A name that is also a local path (a folder of the server's working directory named like `owner/name`) is
    refused too: `datasets` would read that folder instead of the Hub.
    """
    dataset_id = (dataset_id or "").strip()
    if not dataset_id:
        raise refuse("hub_id_empty", "data")
    if (not HUB_ID_PATTERN.fullmatch(dataset_id) or ".." in dataset_id or "--" in dataset_id
            or dataset_id.endswith((".git", "."))):
        raise refuse("not_hub_id", "data", name=dataset_id[:100])
    for role, value in (("config", config), ("split", split)):
        if value and not HUB_NAME_PATTERN.fullmatch(value):
            raise refuse("hub_name", "data", name=value[:100], role=role)
    if os.path.lexists(dataset_id) or os.path.lexists(dataset_id + ".py"):
        raise refuse("server_folder", "data", name=dataset_id)
    return dataset_id


def load_hub_dataset(dataset_id: str, config: Optional[str] = None, split: str = "test") -> "pd.DataFrame":
    """One split of a Hub dataset as a table; class-label columns come back as their names."""
    dataset_id = check_hub_id(dataset_id, config, split)
    offline = _hub_offline()
    if not offline:
        _probe_hub(dataset_id)  # fail in seconds, not after load_dataset's retries
    import datasets

    def unreachable(reason: str) -> InvalidInputError:
        return refuse("hub_offline", "data", name=dataset_id, reason=reason)

    if offline and not datasets.config.HF_HUB_OFFLINE:
        # The flag was set after `datasets` read it at import: load_dataset would still go online (and retry for
        # a minute). Honour the flag instead.
        raise unreachable("HF_HUB_OFFLINE was set after start-up, so the cache is not consulted")
    try:
        dataset = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as error:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError...)
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if offline:
            raise unreachable(text) from None
        raise InvalidInputError(f"data: could not load the Hub dataset '{dataset_id}' "
                                f"(config {config!r}, split {split!r}): {text}", field="data") from None
    from backend.data.files import check_table
    from backend.guard.table_limits import TableLimits

    limits = TableLimits.from_env()
    what = f"data: split '{split}' of the Hub dataset '{dataset_id}'"
    if dataset.num_rows > limits.max_rows:  # all checked on the memory-mapped Arrow data, before copying it
        raise InvalidInputError(f"{what} has {dataset.num_rows:,} rows; the limit is {limits.max_rows:,}. "
                                f"Take a slice, e.g. split '{split}[:{limits.max_rows}]'")
    if len(dataset.column_names) > limits.max_columns:
        raise InvalidInputError(f"{what} has {len(dataset.column_names):,} columns; the limit is "
                                f"{limits.max_columns:,}")
    if dataset.data.nbytes > limits.max_table_bytes:
        raise InvalidInputError(f"{what} holds {dataset.data.nbytes / 2**20:,.0f} MB; the limit is "
                                f"{limits.max_table_bytes / 2**20:,.0f} MB. Take a slice of the split")
    frame = dataset.to_pandas()
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):  # 0 / 1 mean nothing in a report: use the names
            frame[name] = [feature.int2str(int(value)) if value is not None and value >= 0 else ""
                           for value in frame[name]]
    if len(frame) == 0:
        raise InvalidInputError(f"data: split '{split}' of the Hub dataset '{dataset_id}' has no rows", field="data")
    frame.columns = [str(column) for column in frame.columns]
    check_table(frame, what, limits)
    return frame


def _hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _probe_hub(dataset_id: str) -> None:
    """One quick metadata request: tells 'no network' and 'no such dataset' apart before the slow path."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(dataset_id, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        return  # it exists; load_dataset says what access it needs
    except RepositoryNotFoundError:
        raise InvalidInputError(f"data: there is no dataset '{dataset_id}' on the Hugging Face Hub (or it is "
                                "private); check the id", field="data") from None
    except Exception as error:  # connection refused, DNS failure, timeout, proxy error ...
        raise InvalidInputError(
            f"data: the Hub dataset '{dataset_id}' cannot be reached: this machine looks offline "
            f"({type(error).__name__}: {error}). Export it to a CSV / JSONL / Parquet file and pass that, or set "
            "HF_HUB_OFFLINE=1 to use a copy already in the local cache"
        , field="data") from None


# ------------------------------------------------------------------------------------------------ columns


def preview(table: "pd.DataFrame", rows: int = PREVIEW_ROWS) -> "pd.DataFrame":
    """The first rows, as text cut to PREVIEW_CELL_CHARS per cell, for showing before a run."""
    from backend.data.files import column_texts
    from backend.guard.table_limits import PREVIEW_CELL_CHARS, clip

    head = table.head(rows)
    return head.assign(**{str(column): [clip(text, PREVIEW_CELL_CHARS) for text in column_texts(head, str(column))]
                          for column in head.columns})


def guess_columns(table: "pd.DataFrame", task: EvalTask) -> ColumnMapping:
    """A starting column mapping for a form: well-known names first."""
    from backend.data.files import guess_text_column

    reference = _find(table, REFERENCE_HINTS[task]) if task in REFERENCE_HINTS else None
    predictions = None if task == "perplexity" else _find(table, PREDICTION_HINTS)
    taken = [c for c in (reference, predictions) if c]
    conversation = None
    if task == "generation":
        conversation = guess_conversation_column([c for c in table.columns if c not in taken])
    context = _find(table.drop(columns=taken), CONTEXT_HINTS) if task == "question_answering" else None
    rest = table.drop(columns=[*taken, *[c for c in (context, conversation) if c]])
    text = _find(rest, INPUT_HINTS.get(task, ())) or guess_text_column(rest)
    return ColumnMapping(input=text, reference=reference, predictions=predictions, context=context,
                         conversation=conversation)


def _find(table: "pd.DataFrame", hints: tuple[str, ...]) -> Optional[str]:
    by_lower = {str(column).lower(): str(column) for column in table.columns}
    return next((by_lower[hint] for hint in hints if hint in by_lower), None)


def required_columns(task: EvalTask, mapping: ColumnMapping) -> dict[str, str]:
    """The roles a task needs filled, as {role: what the CLI calls it}."""
    if task == "perplexity":
        return {"input": "--input-column"}
    if mapping.conversation and not mapping.predictions:  # the conversation can hold the input and the reference
        return {}
    needed = {"reference": "--reference-column"}
    if not mapping.predictions:  # scoring existing predictions needs no input text
        needed["input"] = "--input-column"
        if task == "question_answering":
            needed["context"] = "--context-column"
    return needed


def select_examples(
    table: "pd.DataFrame",
    task: EvalTask,
    mapping: ColumnMapping,
    limit: Optional[int] = None,
    seed: Optional[int] = None,
) -> Examples:
    """The examples of a run: mapped columns as text, blank rows skipped, then `limit` rows.

    Without a seed the first `limit` rows are taken; with one, a random sample of `limit` rows (kept in file
    order), the same for the same seed.
    """
    from backend.data.files import column_texts

    if task not in EVAL_TASKS:
        raise InvalidInputError(f"task: must be one of {', '.join(EVAL_TASKS)}, got {task!r}", field="task")
    if task == "perplexity" and (mapping.reference or mapping.predictions):
        raise InvalidInputError("columns: perplexity scores the input text only; drop the reference and "
                                "predictions columns", field="columns")
    if mapping.conversation and task != "generation":
        raise refuse("conversation_task", "conversation_column", task=task)
    for role in ("input", "reference", "predictions", "context", "conversation"):
        column = getattr(mapping, role)
        if column and column not in table.columns:
            raise refuse("no_column", f"{role}_column", shown=f"{role} column", name=column,
                         columns=column_list(table))
    if mapping.input and mapping.input == mapping.reference:  # the model would be shown the answer
        raise refuse("same_column", "reference_column", name=mapping.input)
    for role, flag in required_columns(task, mapping).items():
        if not getattr(mapping, role):
            raise refuse("needs_column", f"{role}_column", role=role, task=task, flag=flag,
                         columns=column_list(table))
    values = {role: column_texts(table, getattr(mapping, role))
              for role in ("input", "reference", "predictions", "context") if getattr(mapping, role)}
    if mapping.conversation and not mapping.predictions:
        picked = conversation_examples(table, mapping.conversation, values, lambda rows: _limit(rows, limit, seed))
        return Examples(rows=picked.rows, inputs=picked.inputs, references=picked.references, notices=picked.notices,
                        conversations=picked.conversations)
    needed = list(required_columns(task, mapping))
    # A row without its text or its reference cannot be scored; a blank prediction is a (wrong) answer.
    keep = [row for row in range(len(table)) if all(values[role][row].strip() for role in needed)]
    notices = []
    skipped = len(table) - len(keep)
    if skipped:
        named = " / ".join(f"'{getattr(mapping, role)}'" for role in needed)
        notices.append(f"{skipped:,} row(s) with an empty {named} were skipped")
    if not keep:
        raise InvalidInputError(f"data: every row has an empty {' or '.join(getattr(mapping, r) for r in needed)}; "
                                "nothing to evaluate", field="data")
    keep = _limit(keep, limit, seed)
    empty = [""] * len(keep)
    return Examples(
        rows=keep,
        inputs=[values["input"][row] for row in keep] if "input" in values else empty,
        references=[values["reference"][row] for row in keep] if "reference" in values else empty,
        predictions=[values["predictions"][row] for row in keep] if "predictions" in values else None,
        notices=notices,
        contexts=[values["context"][row] for row in keep] if "context" in values else None,
    )


def _limit(rows: list[int], limit: Optional[int], seed: Optional[int]) -> list[int]:
    if limit is None:
        return rows
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise refuse("whole_at_least", "limit", low=1, got=limit)
    if limit >= len(rows):
        return rows
    if seed is None:
        return rows[:limit]
    return sorted(random.Random(seed).sample(rows, limit))


def column_list(table: "pd.DataFrame", limit: int = 20) -> str:
    names = [str(column) for column in table.columns]
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
