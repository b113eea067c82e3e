"""What the engines that generate in this process share (backend/engines/local.py on transformers,
backend/engines/llama_cpp.py on llama.cpp): the chat template used when neither the entry nor the model has one,
and the events of one submitted row (its deltas, then the `Final` with its statistics)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from backend.core.types import Event
from backend.engines.budget import Clock, final_event

if TYPE_CHECKING:
    from backend.engines.runtime import RowStream

# Used when neither the entry nor the model ships a chat template (base models). Documented in the README and
# flagged in the engine's status notes.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def row_events(row: RowStream, *, prompt_tokens: int, max_context: Optional[int], dropped_turns: int,
               notices: Sequence[str], seed: Optional[int]) -> Iterator[Event]:
    """`row`'s deltas as they come, then its `Final`. Closing this iterator closes the row: it stops if it still
    runs, and the close returns once the scheduler has let go of it."""
    clock = Clock()
    try:
        for delta in row:
            if delta.text:
                clock.saw_text()
            yield delta
        result = row.result()
        yield final_event(result.text, clock=clock, prompt_tokens=prompt_tokens,
                          generated_tokens=result.generated_tokens, finish_reason=result.finish_reason,
                          max_context=max_context, dropped_turns=dropped_turns, notices=notices, seed=seed)
    finally:
        row.close()
