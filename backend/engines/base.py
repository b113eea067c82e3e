"""The engine contract every backend honours (local transformers now, OpenAI-compatible servers later)."""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from backend.config import ModelSpec
from backend.types import Event, GenerationParams, LabelScore, Message, Task


@runtime_checkable
class Engine(Protocol):
    """A loaded model.

    Streams yield `Delta` events and end with exactly one `Final`. Closing a stream's iterator is the cancel
    signal: the engine stops generating within a couple of decode steps and leaves no thread behind.
    Errors inside generation reach the caller as `GenerationError`, never as a hang.
    """

    spec: ModelSpec
    tasks: frozenset[Task]

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]: ...

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]: ...

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]: ...

    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> dict[str, Any]:
        """device, dtype, parameters, memory_bytes, max_context, generated_tokens_total, notes."""
        ...

    def close(self) -> None:
        """Releases the weights and the memory they held."""
        ...
