"""The engine contract every backend honours: local transformers models (backend/engines/local.py,
local_classifier.py) and OpenAI-compatible servers (backend/engines/remote.py).

`LoadedModel` is what every loaded model offers (status, token counting, unloading); `Engine` adds the text
methods (chat, generate, classify) of the text engines. Narrower capability protocols say what some engines also
offer, so callers check with `isinstance` instead of reaching for attributes or catching a raising stub:
`ScoresInBatches` (local sequence classifiers: batched scores with truncation flags), `CountsGeneratedTokens` (a
live counter for status), `RunsTasks` and `StreamsTasks` (the pipeline tasks of backend/tasks/, run by
backend/engines/local_tasks.py). A causal LM in this process also exposes its `LocalRuntime` and `Scheduler`
(`RunsLocally`, backend/engines/runtime.py) for evaluation and label scoring.
"""

from __future__ import annotations

from typing import Any, Generator, Iterator, Optional, Protocol, Sequence, runtime_checkable

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject
from backend.tasks.base import TaskRequest
from backend.core.types import Event, GenerationParams, LabelScore, Message, Task, UnsupportedTaskError


@runtime_checkable
class LoadedModel(Protocol):
    """What every loaded model offers, whatever it does."""

    spec: ModelSpec
    tasks: frozenset[Task]
    max_context: Optional[int]  # tokens of prompt plus reply; None when neither models.yaml nor the model says

    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> JSONObject:
        """device, dtype, parameters, memory_bytes, max_context, generated_tokens_total, notes."""
        ...

    def close(self) -> None:
        """Releases the weights and the memory they held."""
        ...


@runtime_checkable
class Engine(LoadedModel, Protocol):
    """A loaded text model: chat, generate, classify.

    Streams yield `Delta` events and end with exactly one `Final`. Closing a stream's iterator is the cancel
    signal: the engine stops generating within a couple of decode steps and leaves no thread behind.
    Errors inside generation reach the caller as `GenerationError`, never as a hang.
    """

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]: ...

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]: ...

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]: ...


@runtime_checkable
class ScoresInBatches(Protocol):
    """An engine that scores a batch itself: supervised over its own `labels`, or zero-shot over given ones."""

    labels: list[str]

    def score(self, texts: Sequence[str], labels: Sequence[str] | None = None, hypothesis_template: str = ...,
              multi_label: bool = False) -> tuple[list[list[LabelScore]], list[bool]]:
        """(scores per text, ranked; whether each text was cut to fit the context)."""
        ...


@runtime_checkable
class CountsGeneratedTokens(Protocol):
    """An engine with a live count of the tokens it has generated (it grows while a reply streams)."""

    generated_tokens_total: int


@runtime_checkable
class RunsTasks(Protocol):
    """An engine that runs pipeline tasks (backend/tasks/): a checked request in, one result per input out."""

    def run_task(self, task: str, request: TaskRequest[Any]) -> list[Any]:
        """Raises UnsupportedTaskError for a task the entry does not do."""
        ...


@runtime_checkable
class StreamsTasks(Protocol):
    """An engine that streams a pipeline task's generated text (summarize, translate): deltas, then a Final."""

    def stream_task(self, task: str, request: TaskRequest[Any]) -> Generator[Event, None, None]: ...


def require_task(model: LoadedModel, task: Task) -> None:
    """UnsupportedTaskError unless `model`'s entry is set up for `task`."""
    if task not in model.tasks:
        raise UnsupportedTaskError(f"model '{model.spec.id}' is not set up for '{task}' (its tasks: "
                                   f"{', '.join(model.spec.tasks)})")
