"""Something to show while a stream has not produced anything yet (the model loading, or thinking).

The first step of a backend stream blocks until the model is loaded and has produced its first token, which can
take seconds to minutes. `ticking` runs that first step in a helper thread and yields TICK every `period` s in
the meantime, so the UI can count the seconds; after the first item it iterates the stream directly (no thread
hop per token).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar, Union

from backend.core.streams import close_quietly

T = TypeVar("T")


class Tick:
    """Yielded while waiting; `elapsed_s` counts from the start of the wait."""

    def __init__(self, elapsed_s: float) -> None:
        self.elapsed_s = elapsed_s


_DONE = object()


def ticking(items: Iterator[T], period: float = 1.0) -> Iterator[Union[T, Tick]]:
    """`items`, with a Tick every `period` s until the first item arrives. Closing this closes `items` (at once
    when it is not blocked; else right after its first step returns, from the helper thread)."""
    first: queue.Queue = queue.Queue(maxsize=1)
    lock = threading.Lock()
    state = {"stepped": False, "abandoned": False}  # under `lock`: exactly one side closes an abandoned stream

    def first_step() -> None:
        try:
            first.put(next(items, _DONE))
        except BaseException as error:  # handed to the consumer, raised there
            first.put(error)
        with lock:
            state["stepped"] = True
            close = state["abandoned"]
        if close:
            close_quietly(items)

    helper = threading.Thread(target=first_step, daemon=True, name="first-token-wait")
    helper.start()
    waited = 0.0
    try:
        while True:
            try:
                item = first.get(timeout=period)
                break
            except queue.Empty:
                waited += period
                yield Tick(waited)
    except GeneratorExit:
        with lock:
            state["abandoned"] = True
            close = state["stepped"]
        if close:
            close_quietly(items)
        raise
    if isinstance(item, BaseException):
        raise item
    if item is _DONE:
        return
    try:
        yield item
        yield from items
    finally:
        close_quietly(items)
