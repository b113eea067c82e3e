"""Several models answering at once: one backend stream per side, pumped by one thread each into one channel
(backend/core/streams.py), so every model generates at the same time (the same model twice shares its batches:
backend/engines/batching.py) and one generator updates every pane.

Each side can be stopped on its own (`SideRun.stop_side`): its stream is closed in its pump thread before the next
event is handed on, which stops that model; the other sides go on. A side that had already finished keeps its
statistics whatever is stopped later.
"""

from __future__ import annotations

import threading
from typing import Iterator, Optional, Sequence

from backend.core.registry import Registry
from backend.core.streams import Ended, close_quietly, merge_in_threads
from backend.core.types import Event, GenerationParams
from backend.services import generation as service
from ui.chat.runs import Run, Runs
from ui.common.components import Accumulator, StreamState
from backend.core.update_rate import UPDATE_BUDGET, Throttle


class SideRun(Run):
    """A Compare run: the whole run can be superseded or stopped (ui/chat/runs.py), and each side stopped alone."""

    def __init__(self, sides: int) -> None:
        super().__init__()
        self.side_stops = [threading.Event() for _ in range(sides)]

    def stop_side(self, side: int) -> bool:
        if not 0 <= side < len(self.side_stops):
            return False
        self.side_stops[side].set()
        return True

    def stop_all(self) -> None:
        for stop in self.side_stops:
            stop.set()


COMPARE_RUNS = Runs()  # Compare's running round per session (apart from Chat's: one does not stop the other)


def stoppable(events: Iterator[Event], stop: threading.Event) -> Iterator[Event]:
    """`events` until `stop` is set (checked before each event is handed on); closing this closes `events`."""
    try:
        for event in events:
            if stop.is_set():
                return
            yield event
    finally:
        close_quietly(events)


def interleave(streams: Sequence[Iterator[Event]], interval: Optional[float] = None,
               stops: Optional[Sequence[threading.Event]] = None) -> Iterator[tuple[StreamState, ...]]:
    """The states of several streams, consumed in parallel; throttled, and always yielded once all have ended
    (and whenever one ends).

    A failing stream does not stop the others: its state carries the error. With `stops`, setting one ends that
    side's stream alone. Closing this generator makes every pump thread close its stream after its next event (a
    pump blocked waiting for the model cannot be interrupted), which stops those models.
    """
    sides = [Accumulator() for _ in streams]
    sources = [stoppable(stream, stop) for stream, stop in zip(streams, stops)] if stops else list(streams)
    throttle = Throttle(interval)
    with merge_in_threads(sources, name="compare-pump") as events:
        with UPDATE_BUDGET.streaming():  # one output updating, however many models feed it
            for index, item in events:
                if isinstance(item, Ended):
                    if item.error is not None:
                        sides[index].fail(item.error)
                else:
                    sides[index].add(item)
                if isinstance(item, Ended) or throttle.due():
                    yield tuple(side.state() for side in sides)


def compare_streams(registry: Registry, message: str, models: Sequence[str], params: GenerationParams,
                    system_prompt: str = "", histories: Optional[Sequence[Sequence[dict[str, str]]]] = None,
                    stops: Optional[Sequence[threading.Event]] = None) -> Iterator[tuple[StreamState, ...]]:
    """Validates every side first (a bad request fails before any model works), then streams them all.
    `histories`: each side's own earlier turns (plain messages), or none."""
    pasts = histories if histories is not None else [()] * len(models)
    streams = [service.stream_chat(registry, model, message, past, params, system_prompt)
               for model, past in zip(models, pasts)]
    return interleave(streams, stops=stops)
