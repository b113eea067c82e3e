"""The one bridge between a blocking producer in a thread and the code that consumes what it makes.

A model produces in a thread (the batch thread, a GPU step, a backend stream a UI or the API reads); the
consumer reads items in its own thread, or in an event loop. Every place that needs this uses a `Channel`:

- items, then exactly one end: a normal end, or the error that ended the producer (raised at the consumer, so
  a failure is never a hang). Whoever ends it first wins: `finish`, `fail` and `end` may all be called.
- `close()` from the consumer side is the cancel signal: later `put`s are refused (a producer stops when `put`
  returns False) and the channel's `on_close` callbacks run (e.g. set a GPU step's stop flags).
- Read it as an iterator (`for item in channel`, blocking) or, when made with an event loop, asynchronously
  (`await channel.next_async()`, `async for`), without blocking that loop.

Built on it: `iterate_in_thread` (a blocking iterator pumped by a thread, closed in that thread after the
consumer closes: a generator belongs to the thread that runs it), `produce_in_thread` (a function that calls
`emit(item)`, for `model.generate`'s streamer callbacks) and `merge_in_threads` (several iterators at once, each
reporting its own end, for Compare). `close_quietly` closes anything that may have a `close`.

Code that runs inside a pump thread (e.g. an engine fitting a long chat before its first token) can ask
`consumer_gone()` to stop early once the consumer has closed the channel: a thread blocked in that work could
not otherwise be told.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Generic, Iterable, Iterator, Optional, Sequence, TypeVar, Union

T = TypeVar("T")
ItemT = TypeVar("ItemT")  # what a pumped source gives (its channel may wrap it: merge_in_threads)


def close_quietly(stream: object, *, ignore_errors: bool = False) -> None:
    """Closes `stream` when it has a `close` (a generator: runs its `finally`, which is what stops a model).
    Objects without one are left alone. With `ignore_errors`, an error raised while closing is dropped (for a
    caller that is already reporting another error, or that nobody is listening to any more)."""
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        if not ignore_errors:
            raise


_CONSUMER_CLOSED: contextvars.ContextVar[Optional[threading.Event]] = contextvars.ContextVar(
    "consumer_closed", default=None)


def consumer_gone() -> bool:
    """True in a pump thread whose consumer has closed its channel (False anywhere else)."""
    closed = _CONSUMER_CLOSED.get()
    return closed is not None and closed.is_set()


@dataclass(frozen=True)
class _End:
    error: Optional[BaseException] = None


class Channel(Generic[T]):
    """Items from producer thread(s) to one consumer, then one end. See the module docstring."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None,
                 on_close: Sequence[Callable[[], None]] = ()) -> None:
        self._loop = loop
        self._queue: Union["queue.SimpleQueue[Union[T, _End]]", "asyncio.Queue[Union[T, _End]]"] = \
            queue.SimpleQueue() if loop is None else asyncio.Queue()
        self._lock = threading.Lock()  # orders every put before the end
        self._ended = False
        self._seen_end = False
        self._closed = threading.Event()
        self._on_close = list(on_close)

    # --------------------------------------------------------------------------------------- producer side

    def put(self, item: T) -> bool:
        """Hands `item` over; False (and nothing handed over) once the channel has ended or was closed."""
        with self._lock:
            if self._ended or self._closed.is_set():
                return False
            self._deliver(item)
            return True

    def end(self, error: Optional[BaseException] = None) -> bool:
        """Ends the channel (with `error`, raised at the consumer); False when it had ended already."""
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            self._deliver(_End(error))
            return True

    def finish(self) -> bool:
        return self.end()

    def fail(self, error: BaseException) -> bool:
        return self.end(error)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def closed(self) -> bool:
        """The consumer closed it: stop producing."""
        return self._closed.is_set()

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        return self._closed.wait(timeout)

    def _deliver(self, item: Union[T, _End]) -> None:
        if self._loop is None:
            self._queue.put(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self._closed.set()

    # --------------------------------------------------------------------------------------- consumer side

    def close(self) -> None:
        """The consumer is done (finished, cancelled or gone): refuse further items, run `on_close` once."""
        if self._closed.is_set():
            return
        self._closed.set()
        for callback in self._on_close:
            callback()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._loop is not None:
            raise TypeError("this channel was made for an event loop: use `await next_async()`")
        if self._seen_end:
            raise StopIteration
        return self._unwrap(self._queue.get(), StopIteration)  # type: ignore[arg-type]

    async def next_async(self) -> T:
        """The next item; raises the producer's error, or StopAsyncIteration at the end."""
        if self._loop is None:
            raise TypeError("this channel has no event loop: iterate it instead")
        if self._seen_end:
            raise StopAsyncIteration
        return self._unwrap(await self._queue.get(), StopAsyncIteration)  # type: ignore[misc]

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.next_async()

    def _unwrap(self, item: Union[T, _End], stop: type[Exception]) -> T:
        if isinstance(item, _End):
            self._seen_end = True
            if item.error is not None:
                raise item.error
            raise stop
        return item

    def __enter__(self) -> "Channel[T]":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def iterate_in_thread(source: Iterable[T], *, name: str,
                      loop: Optional[asyncio.AbstractEventLoop] = None) -> Channel[T]:
    """`source` iterated by a thread of its own, its items read from the returned channel.

    Closing the channel makes the thread stop after the item it is waiting for (a thread blocked inside the
    source cannot be interrupted) and close `source` there. An error from `source` ends the channel with it.
    Closing never blocks (safe from an event loop); the thread is a daemon and ends on its own.
    """
    channel: Channel[T] = Channel(loop)
    threading.Thread(target=_pump, args=(source, channel.put, channel, channel.end),
                     name=name, daemon=True).start()
    return channel


def _pump(source: Iterable[ItemT], put: Callable[[ItemT], bool], channel: Channel[T],
          end: Callable[[Optional[BaseException]], object]) -> None:
    """Runs in the pump thread: iterates `source`, hands items to `put` until refused or closed, then closes
    `source` here and reports the end (the source's error, else a failure to close it, else a normal end)."""
    error: Optional[BaseException] = None
    _CONSUMER_CLOSED.set(channel._closed)  # this thread's own context: see consumer_gone
    try:
        for item in source:
            if not put(item) or channel.closed:
                break
    except BaseException as raised:  # noqa: BLE001 - every failure must reach the consumer
        error = raised
    try:
        close_quietly(source)
    except Exception as raised:  # noqa: BLE001 - reported unless an earlier error is
        error = error or raised
    end(error)


def produce_in_thread(produce: Callable[[Callable[[T], bool]], None], *, name: str,
                      on_close: Optional[Callable[[], object]] = None) -> Channel[T]:
    """`produce(emit)` run by a thread of its own; each `emit(item)` reaches the returned channel.

    When the channel is closed, `on_close` runs (it must make `produce` return soon, e.g. set stop flags that
    a decode step checks) and then the close waits for the thread to end, so nothing outlives the consumer.
    """
    holder: list[threading.Thread] = []

    def stop() -> None:
        if on_close is not None:
            on_close()
        if holder and holder[0] is not threading.current_thread():
            holder[0].join()

    channel: Channel[T] = Channel(on_close=[stop])

    def run() -> None:
        try:
            produce(channel.put)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            channel.fail(error)
        else:
            channel.finish()

    thread = threading.Thread(target=run, name=name, daemon=True)
    holder.append(thread)
    thread.start()
    return channel


@dataclass(frozen=True)
class Ended:
    """The last item a merged source gives: `error` is what ended it, None for a normal end."""

    error: Optional[BaseException] = None


def merge_in_threads(sources: Sequence[Iterable[T]], *, name: str) -> Channel[tuple[int, Union[T, Ended]]]:
    """Several sources iterated at once, one thread each: `(index, item)` per item, then `(index, Ended(...))`
    once per source (its error does not stop the others), and the channel ends when every source has ended.
    Closing the channel makes each thread close its source after its next item."""
    channel: Channel[tuple[int, Union[T, Ended]]] = Channel()
    remaining = [len(sources)]
    lock = threading.Lock()

    def ended(index: int, error: Optional[BaseException]) -> None:
        # Delivered even after a close (put is refused then), so a consumer still reading sees every end.
        with lock:
            channel.put((index, Ended(error)))
            remaining[0] -= 1
            if remaining[0] == 0:
                channel.finish()

    if not sources:
        channel.finish()
    for index, source in enumerate(sources):
        put = (lambda i: lambda item: channel.put((i, item)))(index)
        end = (lambda i: lambda error: ended(i, error))(index)
        threading.Thread(target=_pump, args=(source, put, channel, end), name=f"{name}-{index}",
                         daemon=True).start()
    return channel
