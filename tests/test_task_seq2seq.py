"""Summaries and translations stream through the shared decode path: the chat path's StopMatcher (a stop sequence
split across deltas never leaks), each request's own seeded draws (never torch's global generator), and the
model's lock. On the tiny T5 (random weights; greedy it never picks EOS)."""

from __future__ import annotations

import threading

import torch

from backend.engines.text_stream import StopMatcher
from backend.core.registry import Registry
from backend.tasks import service
from backend.core.types import Delta, Final, GenerationParams

GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0)
TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away."


def drain(events: object) -> tuple[list[Delta], Final]:
    *deltas, final = list(events)  # type: ignore[call-overload]
    assert isinstance(final, Final) and all(isinstance(d, Delta) for d in deltas)
    return deltas, final


def test_the_shared_stop_matcher_holds_back_a_split_stop_sequence() -> None:
    """The case the old seq2seq loop got wrong: "abcE" then "ND" with stop "END" must give "abc", not "abcE"."""
    matcher = StopMatcher(["END"])
    shown = matcher.feed("abcE") + matcher.feed("ND")
    assert shown == "abc" and matcher.text == "abc" and matcher.stopped


def test_a_stop_sequence_split_across_deltas_never_reaches_the_stream(shared_registry: Registry) -> None:
    reference, whole = drain(service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize", TEXT, GREEDY))
    pieces = [d.text for d in reference]
    # A stop sequence that starts at the end of one delta and ends in the next one.
    split = next(k for k in range(1, len(pieces) - 1) if pieces[k] and pieces[k + 1])
    stop = pieces[split][-1:] + pieces[split + 1][:2]
    expected = whole.text[: whole.text.index(stop)]
    deltas, final = drain(service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize", TEXT,
                                                   GREEDY.with_overrides(stop=[stop])))
    assert "".join(d.text for d in deltas) == final.text == expected
    assert stop not in final.text and final.stats.finish_reason == "stop"
    assert final.stats.generated_tokens < GREEDY.max_new_tokens  # generation ended at the stop, not the limit


def test_sampling_uses_the_request_seed_never_the_global_generator(shared_registry: Registry) -> None:
    params = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=1234)
    torch.manual_seed(99)
    before = torch.random.get_rng_state()
    first = drain(service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize", TEXT, params))[1]
    assert torch.equal(torch.random.get_rng_state(), before)  # the process-global generator was not touched
    second = drain(service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize", TEXT, params))[1]
    other = drain(service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize", TEXT,
                                           params.with_overrides(seed=4321)))[1]
    assert first.text == second.text != other.text and first.stats.seed == 1234
    # The same seed gives the same text when other sampled streams run at the same time.
    results: dict[int, str] = {}

    def run(seed: int) -> None:
        events = service.stream_text_task(shared_registry, "tiny-seq2seq", "summarize", TEXT,
                                          params.with_overrides(seed=seed))
        results[seed] = drain(events)[1].text

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1234, 4321, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results[1234] == first.text and results[4321] == other.text
    # A file run draws from the same per-row streams: its first row equals the stream's text.
    batch = service.run_task(shared_registry, "tiny-seq2seq", "summarize", [TEXT, "Another text."], params=params)
    assert batch[0] == first.text.strip()


def test_a_stream_generates_under_the_model_lock_and_closing_releases_it(registry: Registry) -> None:
    stream = service.stream_text_task(registry, "tiny-seq2seq", "summarize", TEXT,
                                      GenerationParams(max_new_tokens=400, temperature=0.0))
    next(stream)
    with registry.lease("tiny-seq2seq", "summarize") as engine:
        assert engine.lock.locked()  # type: ignore[attr-defined]  # the generating thread holds the model
        stream.close()  # ends generate within a step and waits for its thread
        assert not engine.lock.locked()  # type: ignore[attr-defined]
        assert not [t for t in threading.enumerate() if t.name == "seq2seq-generate" and t.is_alive()]
    assert registry.status_of("tiny-seq2seq").active_requests == 0
