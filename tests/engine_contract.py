"""The engine contract, as one test class every engine runs (tests/test_engine_contract_local.py for the local
engine, tests/test_remote_engine.py for the remote one against a real `transformers serve`).

A subclass provides the `engine` fixture (a loaded engine for a chat + generate model that, greedy, never emits
EOS early), and may override the hooks at the bottom for things only some engines can observe.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import pytest

from backend.core.types import (
    ContextOverflowError,
    Delta,
    Final,
    GenerationError,
    GenerationParams,
    InvalidInputError,
    Message,
)

GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0)


def drain(stream: Iterator[Any]) -> tuple[list[Delta], Final]:
    events = list(stream)
    assert events, "a stream must yield at least its Final event"
    *deltas, final = events
    assert isinstance(final, Final), f"the last event must be Final, got {type(final).__name__}"
    assert all(isinstance(event, Delta) for event in deltas), "only Delta events may come before Final"
    return deltas, final


def generate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("generate-") and t.is_alive()]


class EngineContract:
    """Behaviour every engine owes its callers."""

    # Whether a row's greedy text is the same alone and batched with others. False only where the engine says why
    # (dynamic int8 quantizes activations per batch, so batch mates shift a row's rounding).
    batch_invariant = True

    # ------------------------------------------------------------------------------------------ hooks

    def tokens_generated_so_far(self, engine: Any) -> Optional[int]:
        """A counter of tokens the model produced (None where the engine cannot observe it)."""
        return None

    @contextmanager
    def failing_generation(self, engine: Any) -> Iterator[None]:
        """Makes the next generation fail inside the model."""
        raise NotImplementedError
        yield

    # -------------------------------------------------------------------------------------- streaming

    def test_deltas_join_into_final_text_chat(self, engine: Any) -> None:
        deltas, final = drain(engine.stream_chat([Message("user", "Hello there")], GREEDY))
        assert len(deltas) >= 2
        assert "".join(d.text for d in deltas) == final.text
        assert final.text

    def test_deltas_join_into_final_text_generate(self, engine: Any) -> None:
        deltas, final = drain(engine.stream_generate("Once upon a time", GREEDY))
        assert "".join(d.text for d in deltas) == final.text

    def test_final_event_carries_counts_and_timings(self, engine: Any) -> None:
        _, final = drain(engine.stream_generate("The weather today", GREEDY))
        stats = final.stats
        assert stats.prompt_tokens > 0
        assert stats.generated_tokens == GREEDY.max_new_tokens
        assert stats.finish_reason == "length"
        assert stats.time_to_first_token_s is not None and 0 < stats.time_to_first_token_s <= stats.total_s
        assert stats.tokens_per_second is not None and stats.tokens_per_second > 0

    def test_greedy_is_deterministic(self, engine: Any) -> None:
        first = drain(engine.stream_generate("Repeat after me", GREEDY))[1].text
        second = drain(engine.stream_generate("Repeat after me", GREEDY))[1].text
        assert first == second

    def test_same_seed_same_sample_and_seed_is_reported(self, engine: Any) -> None:
        params = GenerationParams(max_new_tokens=24, temperature=1.0, top_p=0.95, top_k=50, seed=1234)
        first = drain(engine.stream_generate("Tell me", params))[1]
        second = drain(engine.stream_generate("Tell me", params))[1]
        other = drain(engine.stream_generate("Tell me", params.with_overrides(seed=4321)))[1]
        assert first.text == second.text
        assert first.text != other.text
        assert first.stats.seed == 1234

    def test_stop_sequence_cuts_the_text_and_stops(self, engine: Any) -> None:
        reference = drain(engine.stream_generate("Stop test", GREEDY))[1].text
        stop = reference[len(reference) // 2 : len(reference) // 2 + 3]
        assert len(stop) == 3
        deltas, final = drain(engine.stream_generate("Stop test", GREEDY.with_overrides(stop=[stop])))
        expected = reference[: reference.index(stop)]
        assert final.text == expected
        assert "".join(d.text for d in deltas) == expected
        assert final.stats.finish_reason == "stop"

    # ----------------------------------------------------------------------------------------- cancel

    def test_closing_the_iterator_stops_generation_and_leaves_no_thread(self, engine: Any) -> None:
        stream = engine.stream_generate("A long story", GenerationParams(max_new_tokens=400, temperature=0.0))
        received = 0
        for event in stream:
            received += 1
            if received == 3:
                break
        before_close = self.tokens_generated_so_far(engine)
        stream.close()
        after_close = self.tokens_generated_so_far(engine)
        if before_close is not None:
            # Within two decode steps of the close, however far ahead of the reader the model was.
            assert after_close - before_close <= 2
            time.sleep(0.3)
            assert self.tokens_generated_so_far(engine) == after_close
        assert not generate_threads()

    def test_abandoning_an_unstarted_stream_holds_nothing(self, engine: Any) -> None:
        stream = engine.stream_generate("never read", GREEDY)
        stream.close()
        _, final = drain(engine.stream_generate("read", GREEDY))
        assert final.stats.generated_tokens == GREEDY.max_new_tokens

    def test_error_inside_generation_reaches_the_caller(self, engine: Any) -> None:
        with self.failing_generation(engine):
            with pytest.raises(GenerationError):
                drain(engine.stream_generate("boom", GREEDY))
        assert not generate_threads()
        # ...and the engine still serves afterwards.
        assert drain(engine.stream_generate("fine again", GREEDY))[1].stats.finish_reason == "length"

    # ------------------------------------------------------------------------------------ concurrency

    def test_eight_concurrent_streams_all_finish_with_right_counts(self, engine: Any) -> None:
        prompts = [f"Prompt number {i}" for i in range(8)]
        expected = {p: drain(engine.stream_generate(p, GREEDY))[1].text for p in prompts}

        def run(prompt: str) -> Final:
            return drain(engine.stream_generate(prompt, GREEDY))[1]

        with ThreadPoolExecutor(max_workers=8) as pool:
            finals = list(pool.map(run, prompts))
        for prompt, final in zip(prompts, finals):
            assert final.stats.generated_tokens == GREEDY.max_new_tokens
            assert final.stats.finish_reason == "length"
            if self.batch_invariant:
                assert final.text == expected[prompt]

    # ---------------------------------------------------------------------------------------- context

    def test_single_prompt_longer_than_context_is_a_typed_error(self, engine: Any) -> None:
        with pytest.raises(ContextOverflowError, match="context"):
            engine.stream_generate("word " * 5000, GREEDY)

    def test_long_chat_drops_oldest_turns_keeps_system_and_says_so(self, engine: Any) -> None:
        history = [Message("system", "You are terse.")]
        for i in range(40):
            history += [Message("user", f"question {i} " * 12), Message("assistant", f"answer {i} " * 12)]
        history.append(Message("user", "last question"))
        _, final = drain(engine.stream_chat(history, GREEDY))
        assert final.stats.dropped_turns > 0
        assert final.stats.dropped_turns % 2 == 0  # whole exchanges go
        assert any("dropped" in notice for notice in final.stats.notices)
        assert final.stats.prompt_tokens + final.stats.generated_tokens <= final.stats.max_context

    def test_bad_parameters_are_refused_with_the_field_named(self, engine: Any) -> None:
        with pytest.raises(InvalidInputError, match="temperature"):
            engine.stream_generate("x", GenerationParams(temperature=-1.0))
        with pytest.raises(InvalidInputError, match="max_new_tokens"):
            engine.stream_generate("x", GenerationParams(max_new_tokens=10**9))
