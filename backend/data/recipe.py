"""What a data preparation does, as one validated object: the card stores it, so a run can be reproduced.

Every check happens here, before any file is read or written, and every error names the field (the CLI flag
names are in parentheses where they differ) and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional, TypedDict, Unpack

from backend.core.json_types import JSONObject, json_list, json_object

from backend.core.error_codes import refuse
from backend.evaluation.data import DataSource
from backend.core.types import InvalidInputError

# Cleaning steps, in the order they are applied (normalising first, so duplicates are found on clean text).
CLEAN_STEPS = ("normalize", "html", "empty", "length", "dedupe", "near-dedupe", "labels")
AUGMENT_METHODS = ("delete", "swap", "insert", "synonym", "paraphrase")
SPLIT_NAMES = ("train", "validation", "test")
FORMATS = ("csv", "jsonl", "parquet")
MAX_COPIES = 20
DEFAULT_PARAPHRASE_PROMPT = ("Rewrite the following text so that it says the same thing in different words. "
                             "Answer with the rewritten text only.\n\n{text}")


@dataclass(frozen=True)
class Recipe:
    """Source, columns, cleaning, split and augmentation of one prepared dataset."""

    source: DataSource
    text_column: str
    label_column: Optional[str] = None
    clean: tuple[str, ...] = ()
    min_chars: Optional[int] = None
    max_chars: Optional[int] = None
    min_tokens: Optional[int] = None
    max_tokens: Optional[int] = None
    token_model: Optional[str] = None  # a registry model whose tokenizer counts tokens
    near_threshold: float = 0.8  # estimated Jaccard similarity of word 3-grams above which rows are near-duplicates
    allowed_labels: tuple[str, ...] = ()  # "labels" step: empty means "any non-empty label"
    split: Optional[tuple[float, float, float]] = None  # train, validation, test fractions
    augment: tuple[str, ...] = ()
    rate: float = 0.3  # fraction of words changed by delete / swap / insert / synonym
    copies: int = 1  # augmented rows made per row and method
    paraphrase_model: Optional[str] = None
    paraphrase_prompt: str = DEFAULT_PARAPHRASE_PROMPT
    seed: int = 0
    notes: list[str] = field(default_factory=list, compare=False)

    def validated(self) -> "Recipe":
        """Returns self, or raises InvalidInputError naming the field."""
        if not self.text_column:
            raise refuse("name_text_column", "text_column")
        if self.label_column and self.label_column == self.text_column:
            raise refuse("label_is_text", "label_column")
        _known("clean (--clean)", self.clean, CLEAN_STEPS)
        _known("augment (--augment)", self.augment, AUGMENT_METHODS)
        for name in ("min_chars", "max_chars", "min_tokens", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidInputError(f"{name} (--{name.replace('_', '-')}): must be a whole number >= 0, "
                                        f"got {value!r}")
        for low, high in (("min_chars", "max_chars"), ("min_tokens", "max_tokens")):
            if getattr(self, low) is not None and getattr(self, high) is not None and \
                    getattr(self, low) > getattr(self, high):
                raise InvalidInputError(f"{low}: {getattr(self, low)} is more than {high} {getattr(self, high)}",
                                        field=low)
        if "length" in self.clean and all(getattr(self, name) is None for name in
                                          ("min_chars", "max_chars", "min_tokens", "max_tokens")):
            raise InvalidInputError("clean: the 'length' step needs a minimum or maximum length (--min-chars, "
                                    "--max-chars, --min-tokens, --max-tokens)", field="clean")
        if (self.min_tokens is not None or self.max_tokens is not None) and not self.token_model:
            raise InvalidInputError("token_model (--model): counting tokens needs a registry model whose "
                                    "tokenizer counts them", field="token_model")
        if "labels" in self.clean and not self.label_column:
            raise InvalidInputError("clean: the 'labels' step needs a label column (--label-column)", field="clean")
        _fraction("near_threshold (--near-threshold)", self.near_threshold, open_low=True)
        _fraction("rate (--rate)", self.rate)
        if isinstance(self.copies, bool) or not isinstance(self.copies, int) or not 1 <= self.copies <= MAX_COPIES:
            raise InvalidInputError(f"copies (--copies): must be a whole number from 1 to {MAX_COPIES}, "
                                    f"got {self.copies!r}", field="copies")
        if "paraphrase" in self.augment:
            if not self.paraphrase_model:
                raise InvalidInputError("paraphrase_model (--paraphrase-model / --model): paraphrasing needs a "
                                        "chat model of the registry")
            if "{text}" not in self.paraphrase_prompt:
                raise InvalidInputError("paraphrase_prompt: must contain {text}, where each row's text goes",
                                        field="paraphrase_prompt")
        if self.split is not None:
            parts = tuple(self.split)
            if len(parts) != 3 or any(not isinstance(p, (int, float)) or isinstance(p, bool) or
                                      not 0 <= p <= 1 or math.isnan(p) for p in parts):
                raise InvalidInputError("split (--split): three fractions from 0 to 1 (train, validation, test), "
                                        f"got {self.split!r}", field="split")
            if abs(sum(parts) - 1) > 1e-6 or parts[0] == 0:
                raise refuse("split_sum", "split", got=", ".join(f"{p:g}" for p in parts))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError(f"seed (--seed): must be a whole number >= 0, got {self.seed!r}", field="seed")
        return self

    def with_changes(self, **changes: Unpack[RecipeChanges]) -> "Recipe":
        return replace(self, **changes)

    def to_dict(self) -> JSONObject:
        data = asdict(self)
        data["source"] = self.source.to_dict()
        data.pop("notes")
        return data

    @staticmethod
    def from_dict(data: JSONObject) -> "Recipe":
        # Field values as a card stored them; `validated()` checks each one's type and range.
        values: dict[str, Any] = {key: value for key, value in data.items() if key in Recipe.__dataclass_fields__}
        values["source"] = DataSource.from_dict(json_object(data.get("source")))
        for key in ("clean", "augment", "allowed_labels"):
            values[key] = tuple(json_list(values.get(key)))
        if values.get("split") is not None:
            values["split"] = tuple(json_list(values["split"]))
        return Recipe(**values)


class RecipeChanges(TypedDict, total=False):
    """Fields `Recipe.with_changes` may set (every field of Recipe)."""

    source: DataSource
    text_column: str
    label_column: Optional[str]
    clean: tuple[str, ...]
    min_chars: Optional[int]
    max_chars: Optional[int]
    min_tokens: Optional[int]
    max_tokens: Optional[int]
    token_model: Optional[str]
    near_threshold: float
    allowed_labels: tuple[str, ...]
    split: Optional[tuple[float, float, float]]
    augment: tuple[str, ...]
    rate: float
    copies: int
    paraphrase_model: Optional[str]
    paraphrase_prompt: str
    seed: int
    notes: list[str]


def _known(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise InvalidInputError(f"{name}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}",
                                field=name)
    if len(set(values)) != len(values):
        raise InvalidInputError(f"{name}: a step is listed twice", field=name)


def _fraction(name: str, value: object, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not \
            (0 < value <= 1 if open_low else 0 <= value <= 1):
        bound = "above 0 and at most 1" if open_low else "from 0 to 1"
        raise InvalidInputError(f"{name}: must be a number {bound}, got {value!r}", field=name)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); two numbers mean no test part."""
    try:
        parts = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise refuse("split_form", "split", got=text) from None
    if len(parts) == 2:
        parts.append(0.0)
    if len(parts) != 3:
        raise refuse("split_count", "split", got=text)
    return parts[0], parts[1], parts[2]
