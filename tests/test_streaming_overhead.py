"""What keeps streaming cheap for the server: the shared update budget (each stream updates less often as more
stream at once, and nothing is lost) and no failed matplotlib import per update."""

from __future__ import annotations

import importlib.util
import sys
from typing import Iterator

import pytest

from backend.api.streaming import coalesced
from backend.core.types import Delta, Event, Final, GenerationStats, TokenChoice
import ui
from backend.core import update_rate
from ui.compare.tab import interleave
from ui.common.components import throttled
from backend.core.update_rate import Throttle, UpdateBudget


def pieces(count: int) -> Iterator[Event]:
    for _ in range(count):
        yield Delta("x")
    yield Final("x" * count, GenerationStats(prompt_tokens=1, generated_tokens=count, time_to_first_token_s=0.01,
                                             tokens_per_second=100.0, total_s=0.1, finish_reason="length"))


class Clock:
    """A hand-moved time.monotonic for backend.core.update_rate."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(update_rate.time, "monotonic", fake)
    return fake


def test_the_interval_grows_with_the_streams_running_so_the_total_rate_stays_bounded() -> None:
    budget = UpdateBudget(fastest_s=0.05, total_per_s=80)
    assert budget.interval() == 0.05
    with budget.streaming(), budget.streaming(), budget.streaming(), budget.streaming():
        assert budget.streams == 4 and budget.interval() == 0.05  # a few streams: the fastest rate
        streams = [budget.streaming() for _ in range(12)]
        for stream in streams:
            stream.__enter__()
        assert budget.streams == 16 and budget.interval() == pytest.approx(0.2)  # 16 x 5/s = 80/s
        for stream in streams:
            stream.__exit__(None, None, None)
    assert budget.streams == 0 and budget.interval() == 0.05


def test_a_throttle_follows_the_budget_at_each_update(clock: Clock) -> None:
    budget = UpdateBudget(fastest_s=0.0625, total_per_s=64)  # binary fractions: exact sums of clock steps
    throttle = Throttle(budget=budget)
    assert throttle.due()  # the first token shows at once
    clock.now += 0.0625
    assert throttle.due()
    streams = [budget.streaming() for _ in range(16)]
    for stream in streams:
        stream.__enter__()
    clock.now += 0.0625
    assert not throttle.due()  # 16 streams: every 0.25 s
    clock.now += 0.125
    assert not throttle.due()
    clock.now += 0.0625
    assert throttle.due()
    for stream in streams:
        stream.__exit__(None, None, None)
    clock.now += 0.0625
    assert throttle.due()  # alone again: back to the fastest rate


def test_a_fixed_interval_ignores_the_budget(clock: Clock) -> None:
    budget = UpdateBudget(fastest_s=0.0625, total_per_s=1)
    with budget.streaming(), budget.streaming():
        throttle = Throttle(0.015625, budget)
        assert throttle.due()
        clock.now += 0.015625
        assert throttle.due()


def test_throttled_counts_its_stream_while_it_runs_and_not_after_it_ends_or_closes() -> None:
    budget = UpdateBudget()
    finished = throttled(pieces(3), budget=budget)
    assert next(finished).text == "x" and budget.streams == 1
    *_, last = finished
    assert last.text == "xxx" and last.stats is not None and budget.streams == 0

    closed = throttled(pieces(3), budget=budget)
    next(closed)
    assert budget.streams == 1
    closed.close()  # Stop, a closed tab
    assert budget.streams == 0


def test_throttled_under_a_crowded_budget_still_delivers_every_token_and_the_end() -> None:
    budget = UpdateBudget(fastest_s=0.05, total_per_s=0.001)  # one update every ~1000 s per stream
    states = list(throttled(pieces(500), budget=budget))
    assert len(states) == 2  # the first token at once, then the end
    assert states[-1].text == "x" * 500 and states[-1].stats is not None


def test_compare_counts_as_one_stream_of_the_app_budget() -> None:
    merged = interleave([pieces(3), pieces(3)], interval=0.0)
    before = update_rate.UPDATE_BUDGET.streams
    next(merged)
    assert update_rate.UPDATE_BUDGET.streams == before + 1
    *_, (side_a, side_b) = merged
    assert side_a.text == side_b.text == "xxx"
    assert update_rate.UPDATE_BUDGET.streams == before


def ticking(clock: Clock, step_s: float, texts: str) -> Iterator[Event]:
    """One delta per character, each with its token choice, `step_s` apart on `clock`; then the Final."""
    for text in texts:
        clock.now += step_s
        yield Delta(text, (TokenChoice(text, 0.5, ()),))
    yield Final(texts, GenerationStats(prompt_tokens=1, generated_tokens=len(texts), time_to_first_token_s=0.01,
                                       tokens_per_second=100.0, total_s=0.1, finish_reason="length"))


def test_an_api_stream_alone_gets_every_delta_as_its_own_chunk(clock: Clock) -> None:
    budget = UpdateBudget(fastest_s=0.0625, total_per_s=64)  # the UI's floor (0.0625 s) does not apply to the API
    events = list(coalesced(ticking(clock, 0.015625, "abcdef"), budget))  # a token every 1/64 s
    assert [event.text for event in events[:-1]] == list("abcdef") and isinstance(events[-1], Final)


def test_api_deltas_under_load_join_in_order_with_their_choices_and_nothing_is_lost(clock: Clock) -> None:
    budget = UpdateBudget(fastest_s=0.0, total_per_s=64)
    others = [budget.streaming() for _ in range(15)]
    for other in others:
        other.__enter__()
    try:  # 16 streams: a chunk every 0.25 s each; a token every 0.0625 s
        events = list(coalesced(ticking(clock, 0.0625, "abcdefghij"), budget))
    finally:
        for other in others:
            other.__exit__(None, None, None)
    deltas = [event for event in events if isinstance(event, Delta)]
    # The first at once, then every 0.25 s, and what is held before the end.
    assert [delta.text for delta in deltas] == ["a", "bcde", "fghi", "j"]
    assert [choice.token for delta in deltas for choice in delta.choices] == list("abcdefghij")
    assert isinstance(events[-1], Final) and events.index(events[-1]) == len(deltas)
    assert budget.streams == 0


def test_closing_an_api_stream_closes_its_source_and_leaves_the_budget(clock: Clock) -> None:
    budget = UpdateBudget(fastest_s=0.0, total_per_s=64)
    closed = []

    def source() -> Iterator[Event]:
        try:
            yield from ticking(clock, 0.0625, "abc")
        finally:
            closed.append(True)  # what stops the model

    stream = coalesced(source(), budget)
    assert next(stream).text == "a" and budget.streams == 1
    stream.close()  # Stop, a client gone
    assert closed == [True] and budget.streams == 0


def test_an_absent_matplotlib_fails_to_import_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    ui.skip_absent_matplotlib()
    assert "matplotlib" in sys.modules and sys.modules["matplotlib"] is None
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401


def test_an_installed_matplotlib_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())
    ui.skip_absent_matplotlib()
    assert "matplotlib" not in sys.modules


@pytest.mark.full
def test_the_launched_queue_looks_for_jobs_every_5_ms_instead_of_every_1() -> None:
    import gradio as gr

    from tests.conftest import free_port  # this worker's own ports under pytest-xdist

    with gr.Blocks() as demo:
        gr.Markdown("queue polling")
    ui.launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    try:
        assert demo._queue.sleep_when_free == ui.QUEUE_POLL_S == 0.005  # Gradio's own default: 0.001
        assert demo._queue.progress_update_sleep_when_free == ui.PROGRESS_POLL_S
    finally:
        demo.close()
