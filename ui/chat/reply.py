"""One chat reply as the Chatbot shows it: the wait (model loading / thinking, with seconds), the streamed text
with its reasoning folded away, and a stats line that includes the load time when this reply loaded the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from backend.core.registry import Registry
from backend.core.types import Event
from ui.chat.view import assistant_messages, waiting_message
from backend.core.streams import close_quietly
from ui.common.components import StreamState, format_progress, throttled
from ui.chat.runs import Run
from ui.common.waiting import Tick, ticking


@dataclass(frozen=True)
class ReplyUpdate:
    """What to show now: the messages of the reply, the stats line, and the final state once it has ended."""

    messages: list[dict[str, Any]]
    stats: str
    final: Optional[StreamState] = None


def waiting_title(registry: Registry, model_id: str, elapsed_s: float) -> str:
    seconds = f" ({elapsed_s:.0f} s)" if elapsed_s >= 1 else ""
    if registry.status_of(model_id).state in ("loading", "unloaded"):
        return f"Loading the model…{seconds}"
    return f"Thinking…{seconds}"


def reply_updates(registry: Registry, model_id: str, events: Iterator[Event], run: Run,
                  tick_s: float = 1.0) -> Iterator[ReplyUpdate]:
    """The updates of one reply; stops (closing the model's stream, sending nothing more) once `run` is
    superseded by Stop, Clear or another Send."""
    loaded_before = registry.status_of(model_id).state == "loaded"
    title = waiting_title(registry, model_id, 0)
    yield ReplyUpdate([waiting_message(title)], title)
    states = ticking(throttled(events), tick_s)
    try:
        for item in states:
            if run.cancelled:
                return
            if isinstance(item, Tick):
                title = waiting_title(registry, model_id, item.elapsed_s)
                yield ReplyUpdate([waiting_message(title)], title)
                continue
            stats = format_progress(item)
            if item.done and not loaded_before:
                load_s = registry.status_of(model_id).load_time_s
                if load_s is not None:
                    stats = f"model loaded in {load_s:.2f} s · " + stats
            yield ReplyUpdate(assistant_messages(item.text), stats, item if item.done else None)
    finally:
        close_quietly(states)
