"""The stream bridge (backend/core/streams.py): items in order, one clear end, errors raised at the consumer, and
closing as the cancel signal that really stops the producer (its finally runs, its thread ends)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from backend.core.streams import Channel, Ended, close_quietly, iterate_in_thread, merge_in_threads, produce_in_thread


class Source:
    """An endless generator that records what happened to it, and in which thread it was closed."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.made = 0
        self.closed_in: str | None = None
        self.fail_at = fail_at
        self.release = threading.Event()

    def __iter__(self) -> Iterator[int]:
        try:
            for index in itertools.count():
                if index == self.fail_at:
                    raise ValueError(f"broke at {index}")
                self.made += 1
                yield index
        finally:
            self.closed_in = threading.current_thread().name


def test_items_arrive_in_order_then_the_end() -> None:
    assert list(iterate_in_thread(iter(range(50)), name="t-order")) == list(range(50))


def test_an_error_in_the_producer_is_raised_at_the_consumer_after_its_items() -> None:
    source = Source(fail_at=3)
    channel = iterate_in_thread(source, name="t-error")
    got = []
    with pytest.raises(ValueError, match="broke at 3"):
        for item in channel:
            got.append(item)
    assert got == [0, 1, 2]
    assert source.closed_in == "t-error"
    with pytest.raises(StopIteration):  # the end is reported once, then the channel stays ended
        next(channel)


def test_closing_stops_the_source_in_its_own_thread() -> None:
    source = Source()
    channel = iterate_in_thread(source, name="t-close")
    assert [next(channel) for _ in range(3)] == [0, 1, 2]
    channel.close()
    for _ in range(200):  # the pump ends after at most the item it was making
        if source.closed_in:
            break
        threading.Event().wait(0.01)
    assert source.closed_in == "t-close"
    made = source.made
    threading.Event().wait(0.05)
    assert source.made == made  # nothing more is made after the close
    assert not channel.put(99)


def test_first_end_wins_and_nothing_is_accepted_after_it() -> None:
    channel: Channel[str] = Channel()
    assert channel.put("a")
    assert channel.finish()
    assert not channel.fail(RuntimeError("late"))
    assert not channel.put("b")
    assert list(channel) == ["a"]


def test_a_failure_before_any_item_is_raised_not_waited_for() -> None:
    channel: Channel[str] = Channel()
    threading.Timer(0.05, channel.fail, args=(RuntimeError("gone"),)).start()
    with pytest.raises(RuntimeError, match="gone"):
        next(channel)


def test_produce_in_thread_delivers_emitted_items_and_close_stops_and_joins_the_producer() -> None:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def produce(emit) -> None:
        threads.append(threading.current_thread())
        for index in itertools.count():
            if stop.is_set():
                return
            emit(index)

    channel = produce_in_thread(produce, name="t-produce", on_close=stop.set)
    assert [next(channel) for _ in range(5)] == [0, 1, 2, 3, 4]
    channel.close()
    assert stop.is_set()
    assert not threads[0].is_alive()  # close waited for the producer to return


def test_produce_in_thread_raises_the_producer_s_error() -> None:
    def produce(emit) -> None:
        emit("first")
        raise KeyError("decode failed")

    channel = produce_in_thread(produce, name="t-produce-error")
    assert next(channel) == "first"
    with pytest.raises(KeyError, match="decode failed"):
        next(channel)
    channel.close()  # closing after the end is harmless


def test_merged_sources_each_report_their_end_and_one_failure_does_not_stop_the_other() -> None:
    channel = merge_in_threads([iter(range(5)), Source(fail_at=2)], name="t-merge")
    items: dict[int, list] = {0: [], 1: []}
    ends: dict[int, Ended] = {}
    for index, item in channel:
        if isinstance(item, Ended):
            ends[index] = item
        else:
            items[index].append(item)
    assert items == {0: [0, 1, 2, 3, 4], 1: [0, 1]}
    assert ends[0].error is None and isinstance(ends[1].error, ValueError)


def test_closing_a_merge_closes_every_source() -> None:
    sources = [Source(), Source()]
    channel = merge_in_threads(sources, name="t-merge-close")
    next(channel)
    channel.close()
    for _ in range(200):
        if all(source.closed_in for source in sources):
            break
        threading.Event().wait(0.01)
    assert [source.closed_in for source in sources] == ["t-merge-close-0", "t-merge-close-1"]


def run_in_own_loop(main):
    """asyncio.run in a thread of its own: a test run before this one (Playwright's sync API) may have left an
    event loop running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


def test_an_event_loop_reads_without_blocking_and_closing_from_it_stops_the_source() -> None:
    source = Source()

    async def main() -> tuple[list[int], int]:
        channel = iterate_in_thread(source, name="t-async", loop=asyncio.get_running_loop())
        ticks = 0

        async def tick() -> None:  # the loop stays free while the channel is read
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        got = [await channel.next_async() for _ in range(3)]
        channel.close()
        ticker.cancel()
        return got, ticks

    got, ticks = run_in_own_loop(main)
    assert got == [0, 1, 2] and ticks > 0
    for _ in range(200):
        if source.closed_in:
            break
        threading.Event().wait(0.01)
    assert source.closed_in == "t-async"


def test_an_async_channel_raises_the_error_and_then_stops() -> None:
    async def main() -> list[int]:
        got = []
        channel = iterate_in_thread(Source(fail_at=2), name="t-async-error", loop=asyncio.get_running_loop())
        with pytest.raises(ValueError):
            async for item in channel:
                got.append(item)
        with pytest.raises(StopAsyncIteration):
            await channel.next_async()
        return got

    assert run_in_own_loop(main) == [0, 1]


def test_close_quietly_closes_what_can_be_closed() -> None:
    close_quietly([1, 2, 3])  # nothing to close
    source = Source()
    generator = iter(source)
    next(generator)
    close_quietly(generator)
    assert source.closed_in == threading.current_thread().name

    class Broken:
        def close(self) -> None:
            raise OSError("socket gone")

    with pytest.raises(OSError):
        close_quietly(Broken())
    close_quietly(Broken(), ignore_errors=True)
