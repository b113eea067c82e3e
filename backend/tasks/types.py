"""Results of the pipeline tasks: plain data, no torch, so the UI and the API can use them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from backend.core.json_types import JSONObject

Aggregation = Literal["none", "simple", "first", "average", "max"]
AGGREGATIONS: tuple[Aggregation, ...] = ("none", "simple", "first", "average", "max")
Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class Entity:
    """One entity (or token, without aggregation): `text[start:end] == word` for fast tokenizers."""

    entity: str  # the type (PER, LOC...) when aggregated, else the token's BIO label
    score: float
    word: str
    start: int
    end: int

    def to_dict(self) -> JSONObject:
        # Spelled out: dataclasses.asdict deep-copies every field, a tenth of a file run's time for NER.
        return {"entity": self.entity, "score": self.score, "word": self.word, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Answer:
    """An answer span of the context; `context[start:end] == answer`."""

    answer: str
    score: float
    start: int
    end: int

    def to_dict(self) -> JSONObject:
        return asdict(self)


@dataclass(frozen=True)
class MaskFill:
    """One candidate for one mask: the token and the whole text with it filled in."""

    token: str
    score: float
    sequence: str

    def to_dict(self) -> JSONObject:
        return asdict(self)


@dataclass(frozen=True)
class Embedding:
    """One text's vector, its token count, whether it was cut to the model's limit, and how it was pooled."""

    vector: list[float]
    tokens: int
    truncated: bool
    pooling: Pooling
    normalized: bool


@dataclass(frozen=True)
class Embeddings:
    """One vector per text, its token count, and whether it was cut to the model's limit."""

    vectors: list[list[float]]
    tokens: list[int]
    truncated: list[bool]
    pooling: Pooling
    normalized: bool

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0

    @classmethod
    def of(cls, items: list[Embedding]) -> "Embeddings":
        """The vectors of several texts together (one model: one pooling)."""
        first = items[0]
        return cls(vectors=[e.vector for e in items], tokens=[e.tokens for e in items],
                   truncated=[e.truncated for e in items], pooling=first.pooling, normalized=first.normalized)
