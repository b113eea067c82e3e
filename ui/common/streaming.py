"""A backend stream as the tabs show it: deltas joined into a `StreamState` (`Accumulator`), throttled to the
shared update budget (`throttled`), and the stats line under a reply (`format_stats`, `format_progress`).
Re-exported by ui/common/components.py."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import gradio as gr

from backend.core.streams import close_quietly
from backend.core.types import Delta, Event, Final, GenerationStats, TokenChoice, WorkbenchError
from backend.services.generation import without_nul
from ui.i18n.core import say, text
from backend.core.update_rate import UPDATE_BUDGET, Throttle, UpdateBudget

# A finish reason -> the key of its words (one the table does not know is shown as it is).
FINISH_EXPLAINED = {
    "stop": "stats_finish_stop",
    "length": "stats_finish_length",
    "cancelled": "stats_finish_cancelled",
    "error": "stats_finish_error",
}

# ----------------------------------------------------------------------------------------- stats line


def format_stats(stats: GenerationStats, request: Optional[gr.Request] = None) -> str:
    """One Markdown line of timings and counts, then one line per notice (dropped turns, lowered limits), in the
    request's language (the one being served when `request` is None: ui/i18n/core.py `say`)."""
    parts = []
    if stats.time_to_first_token_s is not None:
        parts.append(say("stats_first_token", request, seconds=stats.time_to_first_token_s))
    if stats.tokens_per_second is not None:
        parts.append(say("stats_speed", request, rate=stats.tokens_per_second))
    parts.append(say("stats_tokens", request, prompt=stats.prompt_tokens, generated=stats.generated_tokens))
    reason = FINISH_EXPLAINED.get(stats.finish_reason)
    parts.append(say("stats_finish", request,
                     reason=say(reason, request) if reason else stats.finish_reason))
    parts.append(say("stats_total", request, seconds=stats.total_s))
    if stats.seed is not None:
        parts.append(say("stats_seed", request, seed=stats.seed))
    lines = [" · ".join(parts)]
    lines += [say("stats_notice", request, notice=notice) for notice in stats.notices]
    if stats.error:
        lines.append(say("stats_error", request, error=stats.error))
    return "\n\n".join(html.escape(line, quote=False) for line in lines)


def format_progress(state: "StreamState") -> str:
    """The stats line for a stream: progress while it runs, then its stats or its error."""
    if state.error:
        return "**Error:** " + html.escape(state.error, quote=False)
    if state.stats:
        return format_stats(state.stats)
    if not state.text:
        return text("status_waiting")
    return text("status_generating")


class OnChange:
    """Passes a value on only when it differs from the last one (else gr.skip()).

    Why: Stop writes "Stopped." to the stats line while the cancelled stream may still deliver an update or
    two; sending the stats line only when it changes keeps those late updates from overwriting it.
    """

    def __init__(self) -> None:
        self._last: Any = object()

    def __call__(self, value: Any) -> Any:
        if value == self._last:
            return gr.skip()
        self._last = value
        return value


STOPPED = text("status_stopped")  # translated in the browser (ui/i18n/core.py)


# ------------------------------------------------------------------------------------------ streaming


@dataclass(frozen=True)
class StreamState:
    """What a stream has produced so far; `stats` is set once it has ended."""

    text: str = ""
    choices: tuple[TokenChoice, ...] = ()
    stats: Optional[GenerationStats] = None
    error: Optional[str] = None  # set when the stream failed (compare shows it per side)

    @property
    def done(self) -> bool:
        return self.stats is not None


class Accumulator:
    """Joins a stream's deltas (a list, not repeated string concatenation: replies can be long)."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._choices: list[TokenChoice] = []
        self._final: Optional[Final] = None
        self._error: Optional[str] = None

    def fail(self, error: BaseException) -> None:
        self._error = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"

    def add(self, event: Event) -> None:
        if isinstance(event, Delta):
            self._pieces.append(event.text)
            self._choices.extend(event.choices)
        elif isinstance(event, Final):
            self._final = event

    def state(self) -> StreamState:
        text = self._final.text if self._final else "".join(self._pieces)
        # The app never hands on (nor later rejects) a NUL a byte-fallback tokenizer produced (the service drops
        # them; this covers streams that reach a tab some other way).
        text = without_nul(text)
        stats = self._final.stats if self._final else None
        return StreamState(text, tuple(self._choices), stats, self._error)


def throttled(events: Iterator[Event], interval: Optional[float] = None,
              budget: UpdateBudget = UPDATE_BUDGET) -> Iterator[StreamState]:
    """The growing state of one backend stream, at most every `interval` s (by default as often as the shared
    update budget allows: backend/core/update_rate.py), and always once at the end.

    The backend stream is closed when this generator is (Stop, cancel, closed tab): that stops the model.
    """
    accumulator = Accumulator()
    throttle = Throttle(interval, budget)
    try:
        with budget.streaming():
            for event in events:
                accumulator.add(event)
                if isinstance(event, Final) or throttle.due():
                    yield accumulator.state()
    finally:
        close_quietly(events)


def collect(events: Iterator[Event]) -> StreamState:
    """Drains a stream (for callers that want only the end result) and returns its final state."""
    state = StreamState()
    for state in throttled(events, interval=float("inf")):
        pass
    return state
