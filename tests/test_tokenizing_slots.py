"""A local model's tokenizer calls take one of `TOKENIZING_SLOTS` (backend/engines/runtime.py): 64 long prompts
tokenizing at once crowded the CPU's run queue and stalled the event loop for seconds (docs/RELIABILITY.md), so
no more run at once than the slots allow, and a prompt whose request has gone while it waited is not tokenized.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest

from backend.core.streams import iterate_in_thread
from backend.core.types import GenerationError, Message
from backend.engines import runtime as runtime_module

TEXT = "the printing press spread news and ideas across europe within decades. "


@pytest.fixture(scope="module")
def runtime(tiny_config) -> Iterator[Any]:
    from backend.engines.local import LocalGenerativeEngine

    engine = LocalGenerativeEngine.load(tiny_config.spec("tiny-chat"))
    yield engine.runtime
    engine.close()


class Watched:
    """The runtime's tokenizer, its calls counted and stretched so that overlapping ones are seen."""

    def __init__(self, tokenizer: Any, hold_s: float = 0.05) -> None:
        self._tokenizer = tokenizer
        self._hold_s = hold_s
        self._lock = threading.Lock()
        self.running = self.peak = self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(self._hold_s)
            return self._tokenizer(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


@pytest.fixture
def watched(runtime: Any) -> Iterator[Watched]:
    original = runtime.tokenizer
    runtime.tokenizer = Watched(original)
    yield runtime.tokenizer
    runtime.tokenizer = original


def test_no_more_tokenizer_calls_run_at_once_than_the_slots(runtime: Any, watched: Watched,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime_module.TOKENIZING_SLOTS >= 1
    monkeypatch.setattr(runtime_module, "_SLOTS", threading.BoundedSemaphore(2))
    expected = {"prompt": runtime.encode_prompt(TEXT), "chat": runtime.encode_chat([Message("user", TEXT)]),
                "count": runtime.count_tokens(TEXT)}
    watched.calls = watched.peak = 0
    calls = [("prompt", lambda: runtime.encode_prompt(TEXT)),
             ("chat", lambda: runtime.encode_chat([Message("user", TEXT)])),
             ("count", lambda: runtime.count_tokens(TEXT))] * 4
    results: list[tuple[str, Any]] = []
    threads = [threading.Thread(target=lambda kind=kind, call=call: results.append((kind, call())))
               for kind, call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted((kind, expected[kind]) for kind, _ in calls)  # every call answered right
    assert watched.calls == 12 and watched.peak == 2  # 12 threads at once, 2 slots: never more than 2 inside


def test_a_prompt_whose_request_went_away_while_it_waited_is_not_tokenized(runtime: Any, watched: Watched,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream's pump thread waits for a slot (held here); its consumer closes the channel meanwhile (the request
    failed on another prompt, or its client left): once the slot is free, the thread gives up untokenized."""
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(runtime_module, "_SLOTS", slots)
    started = threading.Event()

    def request() -> Iterator[list[int]]:
        started.set()
        yield runtime.encode_prompt(TEXT * 800)

    slots.acquire()
    try:
        channel = iterate_in_thread(request(), name="tokenize-cancel")
        assert started.wait(10)
        time.sleep(0.1)  # the pump thread now waits for the slot
        channel.close()
    finally:
        slots.release()
    with pytest.raises(GenerationError, match="cancelled"):
        next(channel)  # the pump thread's end: the error it gave up with
    assert watched.calls == 0
