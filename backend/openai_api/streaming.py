"""From the backend's blocking event iterator to an HTTP answer: a server-sent event stream or one JSON body.

`Pump` runs the iterator in its own thread and hands events to the event loop; a client that disconnects
(`watch_disconnect`) or a stream that ends stops it, and stopping closes the iterator, which stops the model and
ends the registry lease.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator, Iterator, Optional

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.openai_api.errors import ApiError, api_error
from backend.openai_api.responses import Completion
from backend.types import Delta, Final

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Pump:
    """Runs the blocking event iterator in its own thread and hands events to the event loop.

    Closing happens in that same thread (a generator cannot be closed while another thread runs it): `stop()`
    sets a flag the thread checks after each event, so generation stops within one event of a disconnect.
    """

    def __init__(self, events: Iterator[Any], loop: asyncio.AbstractEventLoop) -> None:
        self._events = events
        self._loop = loop
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="openai-api-stream", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    async def get(self) -> tuple[str, Any]:
        return await self._queue.get()

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            self._stop.set()  # the event loop is gone: nobody is listening any more

    def _run(self) -> None:
        try:
            for event in self._events:
                if self._stop.is_set():
                    break
                self._put(("event", event))
                if self._stop.is_set():
                    break
        except BaseException as error:  # noqa: BLE001 - every failure must reach the response
            self._put(("error", error))
        finally:
            close = getattr(self._events, "close", None)
            if close is not None:
                try:
                    close()  # stops the model and ends the registry lease
                except Exception:  # noqa: BLE001 - already reporting, or nobody left to report to
                    pass
            self._put(("end", None))


async def watch_disconnect(request: Request, pump: Pump) -> None:
    """Stops the backend stream as soon as the client goes away (also while it waits for the first token)."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                pump.stop()
                return
    except Exception:  # noqa: BLE001 - a receive channel that is closed means the request is over
        return


async def answer(request: Request, events: Iterator[Any], completion: Completion, stream: bool) -> Response:
    """Streams or collects `events` for `completion`. The first event decides the status: a load failure is a
    503, not an error inside a 200 stream."""
    pump = Pump(events, asyncio.get_running_loop())
    watcher = asyncio.create_task(watch_disconnect(request, pump))
    try:
        first = await pump.get()
    except BaseException:
        pump.stop()
        watcher.cancel()
        raise
    if first[0] == "error":
        watcher.cancel()
        raise api_error(first[1], input_field=completion.input_field)
    if stream:
        return StreamingResponse(_sse(completion, first, pump, watcher), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    try:
        return await _collect(completion, first, pump)
    finally:
        pump.stop()
        watcher.cancel()


async def merged(pumps: list[Pump]) -> AsyncIterator[tuple[int, str, Any]]:
    """The events of several pumps as they come, each tagged with its pump's index (several choices of one
    request: n > 1, or several prompts). Ends when every pump has ended."""
    queue: asyncio.Queue[tuple[int, tuple[str, Any]]] = asyncio.Queue()

    async def forward(index: int, pump: Pump) -> None:
        while True:
            item = await pump.get()
            await queue.put((index, item))
            if item[0] == "end":
                return

    forwarders = [asyncio.create_task(forward(index, pump)) for index, pump in enumerate(pumps)]
    running = len(pumps)
    try:
        while running:
            index, (kind, value) = await queue.get()
            if kind == "end":
                running -= 1
                continue
            yield index, kind, value
    finally:
        for forwarder in forwarders:
            forwarder.cancel()


class Pumps:
    """The pumps of one request's streams, watched for a disconnect; `stop()` ends them all."""

    def __init__(self, request: Request, streams: list[Iterator[Any]]) -> None:
        loop = asyncio.get_running_loop()
        self.pumps = [Pump(events, loop) for events in streams]
        self.watchers = [asyncio.create_task(watch_disconnect(request, pump)) for pump in self.pumps]

    def stop(self) -> None:
        for pump in self.pumps:
            pump.stop()
        for watcher in self.watchers:
            watcher.cancel()


def sse_line(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _events(first: tuple[str, Any], pump: Pump) -> AsyncIterator[tuple[str, Any]]:
    item = first
    while item[0] != "end":
        yield item
        item = await pump.get()


async def _sse(completion: Completion, first: tuple[str, Any], pump: Pump,
               watcher: "asyncio.Task[None]") -> AsyncIterator[str]:
    """The event stream; its `finally` runs on disconnect (Starlette cancels it) and stops the backend stream."""
    try:
        opening = completion.opening()
        if opening is not None:
            yield sse_line(opening)
        async for kind, value in _events(first, pump):
            if kind == "error":
                yield sse_line(api_error(value, input_field=completion.input_field).body())
                return
            if isinstance(value, Delta):
                if value.text:
                    yield sse_line(completion.chunk(value.text))
            elif isinstance(value, Final):
                yield sse_line(completion.closing(value))
                if completion.include_usage:
                    yield sse_line(completion.usage_chunk(value))
        yield "data: [DONE]\n\n"
    finally:
        pump.stop()
        watcher.cancel()


async def _collect(completion: Completion, first: tuple[str, Any], pump: Pump) -> Response:
    final: Optional[Final] = None
    async for kind, value in _events(first, pump):
        if kind == "error":
            raise api_error(value, input_field=completion.input_field)
        if isinstance(value, Final):
            final = value
    if final is None:  # the client went away, or the stream ended without its Final
        raise ApiError(500, "generation ended without a result", kind="server_error")
    return JSONResponse(completion.response(final))
