"""From the backend's blocking event iterator to an HTTP answer: a server-sent event stream or one JSON body.

`Pump` reads the iterator from the event loop through backend/core/streams.py's bridge, its deltas joined as the
app's shared update budget asks (`coalesced`); a client that disconnects
(`watch_disconnect`) or a stream that ends stops it, and stopping closes the iterator, which stops the model and
ends the registry lease. `merged` reads several (the choices of one request) as their events come.
"""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator, Iterator, Optional, Union

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.api.errors import ApiError, api_error
from backend.api.shapes import Completion
from backend.core.json_types import JSONOutput
from backend.core.streams import close_quietly, iterate_in_thread
from backend.core.types import Delta, Event, Final
from backend.core.update_rate import UPDATE_BUDGET, Throttle, UpdateBudget

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# What `Pump.get()` gives: ("event", an event), ("error", the stream's failure) or ("end", None).
Item = Union[Event, Exception, None]


class Pump:
    """A backend stream read from the event loop, through the app's one thread-to-consumer bridge
    (backend/core/streams.py `iterate_in_thread`): its thread iterates the blocking stream; `stop()` closes the channel,
    after which the thread stops at the next event and closes the stream there (a generator belongs to the thread
    that runs it), which stops the model and ends the registry lease.

    `get()` gives ("event", event), then ("error", error) if the stream failed, then ("end", None).
    """

    def __init__(self, events: Iterator[Event], loop: asyncio.AbstractEventLoop) -> None:
        self.channel = iterate_in_thread(coalesced(events), name="openai-api-stream", loop=loop)

    def stop(self) -> None:
        self.channel.close()

    async def get(self) -> tuple[str, Item]:
        try:
            return "event", await self.channel.next_async()
        except StopAsyncIteration:
            return "end", None
        except Exception as error:  # noqa: BLE001 - the stream's failure, answered in OpenAI's shape
            return "error", error


def coalesced(events: Iterator[Event], budget: UpdateBudget = UPDATE_BUDGET) -> Iterator[Event]:
    """`events` with consecutive deltas joined into one (texts and token choices in order) as often as the shared
    update budget allows (backend/core/update_rate.py): alone, every delta as it comes; under load, the deltas
    since this stream's last one. Any other event (the Final) first hands over what is held. Nothing is lost, and
    the first delta is never held. Closing it closes `events` (which stops the model)."""
    throttle = Throttle(budget=budget, fastest_s=0.0)
    held: Optional[Delta] = None
    try:
        with budget.streaming():
            for event in events:
                if isinstance(event, Delta):
                    held = event if held is None else Delta(held.text + event.text, held.choices + event.choices)
                    if throttle.due():
                        yield held
                        held = None
                    continue
                if held is not None:
                    yield held
                    held = None
                yield event
            if held is not None:
                yield held
    finally:
        close_quietly(events)


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


async def answer(request: Request, events: Iterator[Event], completion: Completion, stream: bool) -> Response:
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
    if isinstance(first[1], Exception):  # ("error", the failure)
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


async def merged(pumps: list[Pump]) -> AsyncIterator[tuple[int, str, Item]]:
    """The events of several pumps as they come, each tagged with its pump's index (several choices of one
    request: n > 1, or several prompts). Ends when every pump has ended."""
    queue: asyncio.Queue[tuple[int, tuple[str, Item]]] = asyncio.Queue()

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

    def __init__(self, request: Request, streams: list[Iterator[Event]]) -> None:
        loop = asyncio.get_running_loop()
        self.pumps = [Pump(events, loop) for events in streams]
        self.watchers = [asyncio.create_task(watch_disconnect(request, pump)) for pump in self.pumps]

    def stop(self) -> None:
        for pump in self.pumps:
            pump.stop()
        for watcher in self.watchers:
            watcher.cancel()


def sse_line(payload: JSONOutput) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _events(first: tuple[str, Item], pump: Pump) -> AsyncIterator[tuple[str, Item]]:
    item = first
    while item[0] != "end":
        yield item
        item = await pump.get()


async def _sse(completion: Completion, first: tuple[str, Item], pump: Pump,
               watcher: "asyncio.Task[None]") -> AsyncIterator[str]:
    """The event stream; its `finally` runs on disconnect (Starlette cancels it) and stops the backend stream."""
    try:
        opening = completion.opening()
        if opening is not None:
            yield sse_line(opening)
        async for _, value in _events(first, pump):
            if isinstance(value, Exception):
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


async def _collect(completion: Completion, first: tuple[str, Item], pump: Pump) -> Response:
    final: Optional[Final] = None
    async for _, value in _events(first, pump):
        if isinstance(value, Exception):
            raise api_error(value, input_field=completion.input_field)
        if isinstance(value, Final):
            final = value
    if final is None:  # the client went away, or the stream ended without its Final
        raise ApiError(500, "generation ended without a result", kind="server_error")
    return JSONResponse(completion.response(final))
