"""Training data, the parts every task shares: tables read with the app's one file reader, a column's texts
with errors that name the field, length statistics, and the preview's shape.

Each task's own checks, formatting and tokenizing live in its recipe (backend/training/recipes/). Everything that
can be wrong with a dataset is found before a model is loaded, as an `InvalidInputError` naming the column and
row. Tokenizing imports transformers-side objects only through the tokenizer passed in.
"""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer, decoded_text
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pandas as pd

from backend.data.files import column_texts, read_table
from backend.training.config import TrainConfig
from backend.core.types import InvalidInputError

IGNORE_INDEX = -100  # labels with this value carry no loss (PyTorch's cross-entropy default)


@dataclass
class LengthStats:
    """Token lengths of the examples and how many the chosen max length cuts."""

    count: int
    min: int
    mean: float
    p95: int
    max: int
    max_length: int
    truncated: int
    loss_tokens: Optional[int] = None  # tokens that carry the loss (sft: assistant tokens; dpo: completions)

    def describe(self) -> str:
        text = (f"{self.count} examples, tokens: min {self.min}, mean {self.mean:.0f}, p95 {self.p95}, "
                f"max {self.max}; {self.truncated} of {self.count} longer than max length {self.max_length} "
                "(cut)")
        return text + (f"; {self.loss_tokens} tokens carry the loss" if self.loss_tokens is not None else "")


@dataclass
class Preview:
    """One formatted training example as the model sees it: (text piece, carries loss) segments."""

    segments: list[tuple[str, bool]] = field(default_factory=list)
    stats: Optional[LengthStats] = None
    label_counts: dict[str, int] = field(default_factory=dict)


def load_tables(config: TrainConfig) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """The training table and the separate validation table (None: split from the training data)."""
    train = read_table(config.data)
    validation = read_table(config.validation) if config.validation else None
    return train, validation


def table_column(table: pd.DataFrame, column: Optional[str], field_name: str, what: str) -> list[str]:
    """The column's cells as texts; a missing column is an error naming the config field and the file."""
    try:
        return column_texts(table, column)
    except InvalidInputError as error:
        # The same error (code and params) about this config field, its message naming the field and the file.
        raise InvalidInputError(f"field '{field_name}' ({what} file): {str(error).removeprefix('column: ')}",
                                code=error.code, field=field_name, params=error.params) from None


def length_stats(lengths: Sequence[int], max_length: int, loss_tokens: Optional[int] = None) -> LengthStats:
    if not lengths:
        raise InvalidInputError("field 'data': no examples", field="data")
    ordered = sorted(lengths)
    return LengthStats(count=len(ordered), min=ordered[0], mean=sum(ordered) / len(ordered),
                       p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], max=ordered[-1],
                       max_length=max_length, truncated=sum(length > max_length for length in ordered),
                       loss_tokens=loss_tokens)


def marked_segments(tokenizer: HFTokenizer, token_ids: Sequence[int], loss: Sequence[bool]) -> list[tuple[str, bool]]:
    """Tokens decoded one by one and joined into runs that carry the loss or not (the preview's highlight)."""
    segments: list[tuple[str, bool]] = []
    for token, carries in zip(token_ids, loss):
        piece = decoded_text(tokenizer, [token], skip_special_tokens=False)
        if segments and segments[-1][1] == carries:
            segments[-1] = (segments[-1][0] + piece, carries)
        else:
            segments.append((piece, carries))
    return segments
