"""Concurrent requests to one local model share forward passes without changing anyone's output."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest

from backend.core.types import BusyError, Final, GenerationParams
from tests.engine_contract import drain, generate_threads

GREEDY = GenerationParams(max_new_tokens=32, temperature=0.0)


@pytest.fixture(scope="module")
def engine(tiny_config) -> Iterator[Any]:
    from backend.engines import create_engine

    loaded = create_engine(tiny_config.spec("tiny-chat"))
    yield loaded
    loaded.close()


def run_together(engine: Any, jobs: list[tuple[str, GenerationParams]]) -> list[Final]:
    """Starts every stream before any is read, so they all queue into one batch."""
    barrier = threading.Barrier(len(jobs))

    def run(job: tuple[str, GenerationParams]) -> Final:
        stream = engine.stream_generate(*job)
        barrier.wait()
        return drain(stream)[1]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_batched_greedy_and_seeded_streams_equal_single_streams(engine: Any) -> None:
    jobs = [(f"prompt {i} " * (1 + i % 4), GREEDY) for i in range(6)]
    jobs += [(f"sampled {i}", GenerationParams(max_new_tokens=20, temperature=0.9, top_p=0.9, seed=i))
             for i in range(4)]
    jobs.append(("penalised", GenerationParams(max_new_tokens=20, temperature=0.0, repetition_penalty=1.3)))
    alone = [drain(engine.stream_generate(*job))[1].text for job in jobs]
    batches_before = engine.batcher.batches_run
    together = run_together(engine, jobs)
    assert [final.text for final in together] == alone
    assert engine.batcher.largest_batch > 1
    assert engine.batcher.batches_run - batches_before < len(jobs)  # they shared forward passes


def test_rows_keep_their_own_max_new_tokens_and_stop_sequences(engine: Any) -> None:
    reference = drain(engine.stream_generate("stop here", GREEDY))[1].text
    stop = reference[10:13]
    jobs = [("short", GREEDY.with_overrides(max_new_tokens=5)), ("long", GREEDY),
            ("stop here", GREEDY.with_overrides(stop=[stop]))]
    short, long, stopped = run_together(engine, jobs)
    assert short.stats.generated_tokens == 5 and short.stats.finish_reason == "length"
    assert long.stats.generated_tokens == 32
    assert stopped.text == reference[: reference.index(stop)] and stopped.stats.finish_reason == "stop"


def test_cancelling_one_request_leaves_the_others_running_to_completion(engine: Any) -> None:
    params = GenerationParams(max_new_tokens=120, temperature=0.0)
    expected = drain(engine.stream_generate("survivor", params))[1].text
    survivors: list[Final] = []
    started = threading.Event()

    def survivor() -> None:
        stream = engine.stream_generate("survivor", params)
        started.set()
        survivors.append(drain(stream)[1])

    threads = [threading.Thread(target=survivor) for _ in range(3)]
    victim = engine.stream_generate("victim", params)
    for thread in threads:
        thread.start()
    started.wait()
    for count, _ in enumerate(victim):
        if count == 4:
            break
    victim.close()  # cancel one row while the batch runs
    for thread in threads:
        thread.join(timeout=120)
    assert [final.stats.generated_tokens for final in survivors] == [120, 120, 120]
    assert all(final.text == expected for final in survivors)
    assert not generate_threads()


def test_a_full_queue_answers_busy_instead_of_waiting_forever(tiny_config) -> None:
    from backend.engines import create_engine

    spec = tiny_config.spec("tiny-chat").model_copy(update={"max_batch_size": 1, "max_queued_requests": 1})
    engine = create_engine(spec)
    try:
        running = engine.stream_generate("first", GenerationParams(max_new_tokens=200, temperature=0.0))
        next(running)  # in the batch now
        queued = engine.stream_generate("second", GREEDY)
        queued_iter = iter(queued)
        waiting = threading.Thread(target=lambda: list(queued_iter))
        waiting.start()
        while engine.batcher.queued() == 0 and waiting.is_alive():
            pass
        with pytest.raises(BusyError, match="busy.*try again"):
            next(engine.stream_generate("third", GREEDY))
        running.close()
        waiting.join(timeout=60)
    finally:
        engine.close()


@pytest.mark.parametrize("late_params", [GREEDY.with_overrides(max_new_tokens=12),
                                         GenerationParams(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=3)])
def test_a_request_arriving_mid_batch_joins_it_and_nobody_s_text_changes(engine: Any,
                                                                        late_params: GenerationParams) -> None:
    """Merging: the running batch stops after a step and goes on together with the newcomer, so the newcomer
    does not wait for the long request to finish, and both texts are what they are alone."""
    long_params = GenerationParams(max_new_tokens=200, temperature=0.8, seed=11)
    long_alone = drain(engine.stream_generate("a long story", long_params))[1].text
    late_alone = drain(engine.stream_generate("late", late_params))[1].text
    batches_before, tokens_before = engine.batcher.batches_run, engine.generated_tokens_total

    running = engine.stream_generate("a long story", long_params)
    pieces = [next(running).text for _ in range(6)]  # the long request is well into its batch
    late = drain(engine.stream_generate("late", late_params))[1]
    # Had the newcomer waited for the running batch, all 200 of the long request's tokens would exist by now.
    assert engine.generated_tokens_total - tokens_before < 100
    for event in running:
        if isinstance(event, Final):
            long_final = event
        else:
            pieces.append(event.text)
    assert late.text == late_alone and late.stats.generated_tokens == 12
    assert long_final.text == long_alone == "".join(pieces) and long_final.stats.generated_tokens == 200
    assert engine.batcher.batches_run - batches_before >= 2
    assert not generate_threads()
