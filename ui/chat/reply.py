"""One chat reply as the Chatbot shows it: the wait (model loading / first token / thinking, with seconds), the
streamed text with its reasoning folded away, and a stats line that includes the load time when this reply loaded
the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from backend.core.registry import Registry
from backend.core.types import Event
from ui.chat.view import assistant_messages, reasoning_begun, waiting_message
from backend.core.streams import close_quietly
from ui.common.components import StreamState, format_progress, throttled
from ui.chat.runs import Run
from ui.common.waiting import Tick, ticking
from ui.i18n.core import say


@dataclass(frozen=True)
class ReplyUpdate:
    """What to show now: the messages of the reply, the stats line, and the final state once it has ended."""

    messages: list[dict[str, Any]]
    stats: str
    final: Optional[StreamState] = None


def waiting_title(registry: Registry, model_id: str, elapsed_s: float, thinking: bool = False) -> str:
    """The pending message's title: the model loading, or (loaded) waiting for its first token, or thinking once
    a reasoning block has begun; with the seconds from one on. In the language of the request being served."""
    if registry.status_of(model_id).state in ("loading", "unloaded"):
        key = "chat_wait_loading"
    else:
        key = "chat_wait_thinking" if thinking else "chat_wait_first_token"
    seconds = say("chat_wait_seconds", seconds=f"{elapsed_s:.0f}") if elapsed_s >= 1 else ""
    return say(key) + seconds


def reply_updates(registry: Registry, model_id: str, events: Iterator[Event], run: Run,
                  tick_s: float = 1.0) -> Iterator[ReplyUpdate]:
    """The updates of one reply; stops (closing the model's stream, sending nothing more) once `run` is
    superseded by Stop, Clear or another Send."""
    loaded_before = registry.status_of(model_id).state == "loaded"
    title = waiting_title(registry, model_id, 0)
    yield ReplyUpdate([waiting_message(title)], title)
    states = ticking(throttled(events), tick_s)
    started = time.monotonic()
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
                    stats = say("stats_model_loaded", seconds=load_s) + " · " + stats
            messages = assistant_messages(item.text)
            if not item.done and reasoning_begun(item.text):
                # "<think>" came, its first words not yet: the model is thinking, not silent.
                title = waiting_title(registry, model_id, time.monotonic() - started, thinking=True)
                messages = [waiting_message(title)]
            yield ReplyUpdate(messages, stats, item if item.done else None)
    finally:
        close_quietly(states)
