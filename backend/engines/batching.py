"""Batching concurrent requests to one local model into shared forward passes.

Requests queue up; a batch thread takes every queued request (up to `max_batch_size`) and decodes them together
in one GPU step (backend/engines/decode.py: plain values in, one token per row per step out). Each row keeps its
own parameters and seed. This side turns tokens into text: a row ends when its request is cancelled, hits a stop
sequence or reaches its own max_new_tokens; it gets its final event at once and the others keep going.

Requests that arrive while a batch runs are merged in: when requests wait and the batch has room, the running
batch stops after its current step, and its unfinished rows go on in the next batch together with the newcomers,
their tokens so far appended to their prompts (one prefill recomputes their cache; sampling continues with each
row's own next random draw, so the text is what it would have been). Without that, a request arriving just after
a batch started waited for the whole batch: 16 users arriving together ran as a batch of 1, then one of 15.

The batcher is the `Scheduler` of backend/engines/runtime.py: it is built from a `LocalRuntime` (tokenizer,
decoding, lock, token counter, limits), never from the engine. Why not transformers' continuous batching
(`generate_batch` / its manager): see "Continuous batching" in docs/BENCHMARKS.md for the measurement.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, Optional, Sequence

import torch

from backend.core.hf_types import decoded_text
from backend.engines.decode import Choice, RowPlan, Step, decode_batch, decode_steps_function
from backend.engines.runtime import LocalRuntime, RowResult
from backend.engines.text_stream import IncrementalDecoder, StopMatcher
from backend.core.streams import Channel
from backend.core.types import (BusyError, Delta, FinishReason, GenerationError, TokenAlternative, TokenChoice,
                           WorkbenchError)
from backend.engines.zerogpu import gpu_function


class Request:
    """One generation request: its plan, its per-row state in a batch, and the channel its deltas go to."""

    def __init__(self, runtime: LocalRuntime, plan: RowPlan, stop: Sequence[str]) -> None:
        self.runtime = runtime
        self.max_new_tokens = plan.max_new_tokens
        self.plan = plan
        self.events: Channel[Delta] = Channel()  # deltas, then the end: finished, failed or released unfinished
        self.cancel = threading.Event()  # set by the consumer (Stop, closed tab) or by a stop sequence
        self.released = threading.Event()  # set once the batch thread will never touch this request again
        self.decoder = IncrementalDecoder(runtime.tokenizer)
        self.stop_matcher = StopMatcher(tuple(stop))
        self.generated_tokens = 0
        self.generated_ids: list[int] = []  # since this row's current plan began (see suspend)
        self.saw_eos = False
        self.done = False
        self.batch: list[Request] = []  # the batch this request runs in, once it is taken off the queue
        self.batch_thread: Optional[threading.Thread] = None
        self._stop_flags: Optional[torch.Tensor] = None  # the GPU step's flags of the batch, and this row's index
        self._row = 0
        self._choices: list[TokenChoice] = []

    # ------------------------------------------------------------------- called in the batch thread

    def attach(self, stop_flags: torch.Tensor, row: int) -> None:
        self._stop_flags, self._row = stop_flags, row

    def accept(self, token_id: int, choice: Optional[Choice] = None) -> None:
        """Takes the next token of this row."""
        if self.done:
            return  # finished rows keep receiving padding until the whole batch ends
        if self.cancel.is_set() and not self.stop_matcher.stopped:
            self.release()  # the consumer is gone: nothing more to deliver
            return
        self.generated_tokens += 1
        self.generated_ids.append(token_id)
        self.runtime.tokens.add()
        if choice is not None:
            self._record(choice)
        if token_id in self.runtime.eos_token_ids:
            self.saw_eos = True
        else:
            self._emit(self.stop_matcher.feed(self.decoder.push(token_id)))
        if self.saw_eos or self.stop_matcher.stopped or self.generated_tokens >= self.max_new_tokens:
            self.finish()

    def suspend(self) -> None:
        """Leaves its batch unfinished, to go on in the next one (see Batcher: merging)."""
        self.plan, self.generated_ids = self.plan.resumed(self.generated_ids), []
        self._stop_flags = None

    def finish(self) -> None:
        if self.done:
            return
        tail = "" if self.stop_matcher.stopped else self.stop_matcher.feed(self.decoder.flush())
        self._emit(tail + self.stop_matcher.flush())
        self.events.finish()
        self.release()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.events.fail(error)
        self.release()

    def release(self) -> None:
        """Ends this row: the GPU step stops decoding it at the next step. A row released before it finished
        (its consumer had gone) ends its channel with an error, so nothing can wait on it for ever."""
        self.done = True
        if self._stop_flags is not None:
            self._stop_flags[self._row] = True
        self.events.fail(WorkbenchError("generation ended without a result"))  # ignored after finish / fail
        self.released.set()

    def result(self) -> RowResult:
        finish: FinishReason = "stop" if self.stop_matcher.stopped or self.saw_eos else "length"
        return RowResult(self.stop_matcher.text, self.generated_tokens, finish)

    def _record(self, choice: Choice) -> None:
        tokenizer = self.runtime.tokenizer
        self._choices.append(TokenChoice(
            token=decoded_text(tokenizer, [choice.token_id]),
            probability=choice.probability,
            alternatives=tuple(TokenAlternative(token=decoded_text(tokenizer, [token_id]), probability=probability)
                               for token_id, probability in choice.alternatives),
        ))

    def _emit(self, piece: str) -> None:
        choices, self._choices = tuple(self._choices), []
        if piece or choices:
            self.events.put(Delta(text=piece, choices=choices))


# A batch runs at least this many steps before it is merged with waiting requests (each merge costs one prefill
# of its rows), and rows with fewer tokens than this left are let finish instead.
MERGE_AFTER_STEPS = 4

# On CUDA the first forward passes in a new thread pay a per-thread warm-up (measured on an H200: ~3 s, bf16
# decoding at 23 tok/s instead of 440 for the whole first generate), so there a batch thread stays alive this
# long after its work, to take the next batch itself. On CPU there is no such cost and a thread ends with its
# batch, so none outlives the requests it served.
CUDA_THREAD_LINGER_S = 120.0


class BatchedRow:
    """A submitted row as its consumer sees it (the `RowStream` of backend/engines/runtime.py): its deltas,
    errors as GenerationError naming the model, then `result()`. Closing cancels the row and waits until the
    batch thread has let go of it."""

    def __init__(self, batcher: "Batcher", request: Request) -> None:
        self._batcher = batcher
        self._request = request

    def __iter__(self) -> Iterator[Delta]:
        model_id = self._request.runtime.model_id
        events = self._request.events
        while True:
            try:
                delta = next(events)
            except StopIteration:
                return
            except WorkbenchError as error:
                raise GenerationError(f"model '{model_id}': {error}") from error
            except BaseException as error:  # noqa: BLE001 - a failed forward pass, a GPU refused by ZeroGPU
                raise GenerationError(f"model '{model_id}': generation failed: {type(error).__name__}: "
                                      f"{error}") from error
            yield delta

    def result(self) -> RowResult:
        return self._request.result()

    def close(self) -> None:
        # Stop this row (the batch thread drops it at the next step) and wait until it has let go.
        self._request.cancel.set()
        self._request.events.close()
        self._batcher.settle(self._request)


class Batcher:
    """The `Scheduler` of one local model: owns its queue. On CPU each batch runs in its own thread, which ends
    with the batch: queued requests go to a fresh successor thread, so a finished batch's thread can be joined
    without waiting for work that arrived later. On CUDA one warm thread serves batch after batch (see
    CUDA_THREAD_LINGER_S)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.max_batch_size = runtime.limits.max_batch_size
        self.max_queued = runtime.limits.max_queued
        self.linger_s = CUDA_THREAD_LINGER_S if str(runtime.device).startswith("cuda") else 0.0
        self._pending: list[Request] = []
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._running: Optional[threading.Thread] = None
        self._closed = False
        self.batches_run = 0
        self.largest_batch = 0
        # ZeroGPU: the GPU step runs in spaces' forked worker, holding the GPU for at most gpu_duration_s per
        # batch, as a generator of steps. Elsewhere `spaces.GPU` is a pass-through (or `spaces` is not installed)
        # and the batch thread runs the step itself, with a callback: no extra thread, no queue hop per token.
        steps = decode_steps_function()
        on_gpu = gpu_function(steps, duration=runtime.limits.gpu_duration_s)
        self.steps_on_gpu: Optional[Callable[..., Iterator[Step]]] = None if on_gpu is steps else on_gpu

    def submit(self, plan: RowPlan, stop: Sequence[str]) -> BatchedRow:
        """Queues one row; its deltas come from the returned stream (see BatchedRow)."""
        request = Request(self.runtime, plan, stop)
        self.enqueue(request)
        return BatchedRow(self, request)

    def enqueue(self, request: Request) -> None:
        with self._lock:
            if len(self._pending) >= self.max_queued:
                raise BusyError(f"model '{self.runtime.model_id}' is busy ({len(self._pending)} requests waiting); "
                                "try again in a moment")
            self._pending.append(request)
            if self._running is None:
                self._start_next_batch()
            else:
                self._work.notify()  # a lingering thread takes it

    def queued(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Ends a lingering thread (the model is being unloaded)."""
        with self._lock:
            self._closed = True
            self._work.notify_all()
            thread = self._running
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def settle(self, request: Request) -> None:
        """Called by a consumer whose request ended: waits until the batch thread has let go of it, and
        when it was the last live row of its batch (and threads end with their batch), until that thread
        has ended."""
        wait_released(request)
        batch_thread = request.batch_thread
        if not self.linger_s and batch_thread is not None and batch_thread is not threading.current_thread() \
                and all(r.released.is_set() for r in request.batch):
            batch_thread.join(timeout=30)

    def _take_batch(self) -> list[Request]:
        """The next batch off the queue (cancelled requests dropped). Call with the lock held."""
        for request in [r for r in self._pending if r.cancel.is_set()]:
            request.release()  # cancelled while queued: never started
        self._pending = [r for r in self._pending if not r.cancel.is_set()]
        batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size:]
        if batch:
            self.batches_run += 1
            self.largest_batch = max(self.largest_batch, len(batch))
        return batch

    def _start_next_batch(self) -> None:
        """Starts a thread for the next batch, if there is one. Call with the lock held."""
        batch = self._take_batch()
        if not batch:
            self._running = None
            return
        thread = threading.Thread(target=self._serve, args=(batch,), name=f"generate-{self.runtime.model_id}",
                                  daemon=True)
        for request in batch:
            request.batch, request.batch_thread = batch, thread
        self._running = thread
        thread.start()

    def _serve(self, batch: list[Request]) -> None:
        while batch:
            self._run(batch)
            with self._lock:
                if not self.linger_s:
                    self._start_next_batch()  # a successor thread; this one ends with its batch
                    return
                batch = self._take_batch()
                if not batch and not self._closed:
                    self._work.wait(self.linger_s)
                    batch = [] if self._closed else self._take_batch()
                if not batch:
                    self._running = None
                    return
                for request in batch:
                    request.batch, request.batch_thread = batch, threading.current_thread()

    def decode_rows(self, rows: list[RowPlan], cancel: threading.Event) -> Optional[list[list[int]]]:
        """Decodes `rows` as one batch, outside the request queue (evaluation), each to its EOS or its own
        max_new_tokens: the token ids per row (EOS included), or None when `cancel` was set meanwhile. Runs the
        same GPU step as chat, so it runs under `spaces.GPU` on ZeroGPU too."""
        eos = set(self.runtime.eos_token_ids)
        stop_flags = torch.zeros(len(rows), dtype=torch.bool)
        tokens: list[list[int]] = [[] for _ in rows]
        finished = [False] * len(rows)

        def collect(step: Step) -> None:
            for row, token_id in enumerate(step.token_ids):
                if not finished[row]:
                    tokens[row].append(token_id)
                    finished[row] = token_id in eos or len(tokens[row]) >= rows[row].max_new_tokens
            if cancel.is_set():
                stop_flags.fill_(True)

        self._decode(rows, stop_flags, collect, lambda: all(finished) or cancel.is_set())
        return None if cancel.is_set() else tokens

    def _decode(self, rows: list[RowPlan], stop_flags: torch.Tensor, on_step: Callable[[Step], None],
                all_done: Callable[[], bool]) -> None:
        """The GPU step under the generate lock: in this thread, or on ZeroGPU as a stream from spaces' worker
        (closed as soon as `all_done`, which ends the worker's batch early)."""
        runtime = self.runtime
        with runtime.lock:
            if runtime.model is None:
                raise WorkbenchError(f"model '{runtime.model_id}' was unloaded")
            if self.steps_on_gpu is None:
                decode_batch(runtime.model, runtime.decoding, rows, stop_flags, on_step)
                return
            steps = self.steps_on_gpu(runtime.model_key, runtime.decoding, rows, stop_flags)
            try:
                for step in steps:
                    on_step(step)
                    if all_done():
                        break
            finally:
                steps.close()  # type: ignore[attr-defined]  # a generator

    def _should_merge(self, batch: list[Request], steps_run: int) -> bool:
        """Requests wait, the batch has room, and its rows have enough left to be worth a prefill. Not on
        ZeroGPU, where every batch is a separate GPU call of limited duration."""
        if self.steps_on_gpu is not None or steps_run < MERGE_AFTER_STEPS or not self._pending:
            return False
        live = [request for request in batch if not request.done]
        return len(live) < self.max_batch_size and any(
            request.max_new_tokens - request.generated_tokens > MERGE_AFTER_STEPS for request in live)

    def _run(self, batch: list[Request]) -> None:
        stop_flags = torch.zeros(len(batch), dtype=torch.bool)  # set by a row's release(), read by the step
        for row, request in enumerate(batch):
            request.attach(stop_flags, row)
        rows = [request.plan for request in batch]

        steps_run = 0
        merging = False

        def route(step: Step) -> None:
            nonlocal steps_run, merging
            choices = step.choices or (None,) * len(batch)
            for request, token_id, choice in zip(batch, step.token_ids, choices):
                request.accept(token_id, choice)
            for request in batch:
                if request.cancel.is_set() and not request.done:
                    request.release()  # cancelled between steps: end its row now
            steps_run += 1
            if not merging and self._should_merge(batch, steps_run):
                merging = True
                stop_flags.fill_(True)  # this step was the batch's last; its live rows go on in the next

        try:
            self._decode(rows, stop_flags, route, lambda: all(request.done for request in batch))
            live = [request for request in batch if not request.done]
            if merging and live:
                for request in live:
                    request.suspend()
                with self._lock:
                    self._pending[:0] = live  # ahead of the newcomers
                return
            for request in batch:
                request.finish()  # rows that ended with the batch (e.g. the model's own length limit)
        except BaseException as error:  # noqa: BLE001 - every failure must reach every waiting consumer
            for request in batch:  # (a GPU refused by ZeroGPU, a failed forward pass, an unloaded model)
                request.fail(error)


def wait_released(request: Request, poll_s: float = 0.05, timeout_s: float = 30.0) -> None:
    """Waits until the batch thread has let go of `request` (it stops touching it within a decode step)."""
    deadline = time.monotonic() + timeout_s
    while not request.released.wait(poll_s):
        if time.monotonic() > deadline:
            return
