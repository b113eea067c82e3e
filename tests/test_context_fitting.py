"""Fitting a chat history into the context (backend/engines/budget.py), with the tiny chat model's own tokenizer
and template: the same cut as dropping one exchange at a time, linear work in the length of the history, and
no more work once the request's consumer has gone."""

from __future__ import annotations

import random
import threading
from typing import Any, Iterator

import pytest

from backend.engines.budget import fit_chat
from backend.core.streams import iterate_in_thread
from backend.core.types import GenerationError, Message

CONTEXT = 512  # the tiny models' max_context
REPLY = 32


@pytest.fixture(scope="module")
def runtime(tiny_config) -> Iterator[Any]:
    from backend.engines.local import LocalGenerativeEngine

    engine = LocalGenerativeEngine.load(tiny_config.spec("tiny-chat"))
    yield engine.runtime
    engine.close()


def history(turns: int, seed: int = 0, system: bool = True) -> list[Message]:
    rng = random.Random(seed)
    words = "the printing press spread news and ideas across europe within decades".split()
    chat = [Message("system", "You are terse.")] if system else []
    for index in range(turns):
        role = "user" if index % 2 == 0 else "assistant"
        chat.append(Message(role, " ".join(rng.choice(words) for _ in range(rng.randrange(1, 30)))))
    return chat


def one_exchange_at_a_time(runtime: Any, messages: list[Message]) -> tuple[list[Message], int]:
    """The reference: what the engines did before (re-measure after every dropped exchange)."""
    system = [m for m in messages if m.role == "system"][:1] if messages[0].role == "system" else []
    turns = messages[len(system):]
    dropped = 0
    while len(runtime.encode_chat(system + turns)) + REPLY > CONTEXT and len(turns) > 1:
        cut = 1
        while cut < len(turns) - 1 and turns[cut].role != "user":
            cut += 1
        dropped += cut
        turns = turns[cut:]
    return system + turns, dropped


class Counting:
    """The runtime's measuring functions, counting calls and the characters handed to the tokenizer."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.calls = 0
        self.characters = 0

    def measure(self, chat: list[Message]) -> tuple[int, list[int]]:
        self.calls += 1
        self.characters += len(self.runtime.render_chat(chat))
        ids = self.runtime.encode_chat(chat)
        return len(ids), ids

    def count_message(self, message: Message) -> int:
        self.calls += 1
        self.characters += len(message.content)
        return self.runtime.count_tokens(message.content)

    def fit(self, messages: list[Message], **kwargs: Any):
        return fit_chat(messages, measure=self.measure, count_message=self.count_message, max_context=CONTEXT,
                        max_new_tokens=REPLY, **kwargs)


@pytest.mark.parametrize("turns,seed,system", [(1, 0, True), (3, 1, False), (40, 2, True), (81, 3, True),
                                               (120, 4, False), (7, 5, True)])
def test_the_cut_is_the_one_dropping_an_exchange_at_a_time_gives(runtime: Any, turns: int, seed: int,
                                                                  system: bool) -> None:
    messages = history(turns, seed, system)
    fitted = Counting(runtime).fit(messages)
    kept, dropped = one_exchange_at_a_time(runtime, messages)
    assert (fitted.messages, fitted.dropped) == (kept, dropped)
    assert fitted.measured == runtime.encode_chat(kept) and fitted.prompt_tokens == len(fitted.measured)


def test_fitting_work_grows_linearly_with_the_history(runtime: Any) -> None:
    work = {}
    for turns in (50, 100, 200, 400):
        counting = Counting(runtime)
        fitted = counting.fit(history(turns, seed=turns))
        assert fitted.dropped > 0
        work[turns] = counting
        # each message tokenised once, the whole history once, and a few measurements around the cut
        assert counting.calls <= turns + 1 + 1 + 6, (turns, counting.calls)
    # Eight times the history: about eight times the characters tokenised (it was ~64x: quadratic).
    assert work[400].characters / work[50].characters < 10
    assert work[400].calls / work[50].calls < 9


def test_fitting_never_tokenises_more_than_about_a_context_of_the_history(runtime: Any) -> None:
    """Only the newest messages, up to the context, are tokenised: a 4,000-turn history costs what a 400-turn
    one does (tokenising the whole history once kept ~490 MB after a 4 MB one, through the server)."""
    work = {}
    for turns in (400, 4_000):
        counting = Counting(runtime)
        measured_sizes: list[int] = []
        measure = counting.measure

        def recording(chat: list[Message], measure: Any = measure, sizes: list[int] = measured_sizes) -> Any:
            sizes.append(len(chat))
            return measure(chat)

        counting.measure = recording  # type: ignore[method-assign]
        messages = history(turns, seed=7)
        fitted = counting.fit(messages)
        kept, dropped = one_exchange_at_a_time(runtime, messages) if turns == 400 else (None, None)
        if kept is not None:
            assert (fitted.messages, fitted.dropped) == (kept, dropped)
        assert max(measured_sizes) < 4 * len(fitted.messages) + 4, (turns, measured_sizes, len(fitted.messages))
        work[turns] = counting.characters
    assert work[4_000] < 1.5 * work[400], work


def test_fitting_stops_when_the_request_is_cancelled(runtime: Any) -> None:
    counting = Counting(runtime)
    calls_when_cancelled = []

    def cancelled() -> bool:
        if counting.calls >= 10:
            calls_when_cancelled.append(counting.calls)
            return True
        return False

    with pytest.raises(GenerationError, match="cancelled"):
        counting.fit(history(400), cancelled=cancelled)
    assert counting.calls == 10  # nothing tokenised after the cancel was seen


def test_a_closed_stream_bridge_stops_the_fitting_in_its_pump_thread(runtime: Any) -> None:
    """The request's consumer (an API client, a closed tab) goes away while the engine is still fitting: the
    fitting runs in the bridge's pump thread and sees `consumer_gone()` there."""
    counting = Counting(runtime)
    fitting = threading.Event()
    leave = threading.Event()
    measure = counting.measure

    def slow_measure(chat: list[Message]) -> tuple[int, list[int]]:
        fitting.set()
        leave.wait(5)  # the consumer leaves during the first measurement
        return measure(chat)

    counting.measure = slow_measure  # type: ignore[method-assign]

    def request() -> Iterator[str]:
        counting.fit(history(400))
        yield "reply"

    channel = iterate_in_thread(request(), name="fit-cancel")
    assert fitting.wait(5)
    channel.close()
    leave.set()
    with pytest.raises(GenerationError, match="cancelled"):
        next(channel)
    assert counting.calls == 1  # the history's first measurement only: no per-message tokenising followed
