"""Batching concurrent requests to one local model into shared forward passes.

Requests queue up; a batch thread takes every queued request (up to `max_batch_size`), left-pads them and runs
one `model.generate` for all. Each row keeps its own parameters: sampling happens per row in `RowSampler`
(its own seeded generator, temperature, top-k/top-p, repetition penalty), and `RowsDone` ends a row when its
request is cancelled, hits a stop sequence or reaches its own max_new_tokens. A finished row gets its final
event at once; the others keep going. Requests that arrive while a batch runs form the next batch.

Why not transformers' continuous batching manager: its sampling parameters are per manager, not per request,
and on CPU its paged attention measured slower than a padded batch (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from backend.engines.text_stream import IncrementalDecoder, StopMatcher
from backend.types import BusyError, Delta, GenerationParams, TokenAlternative, TokenChoice, WorkbenchError
from backend.zerogpu import gpu_function

if TYPE_CHECKING:
    from backend.engines.local import LocalGenerativeEngine

DONE = object()  # queued after a request's last delta


class Request:
    """One generation request: its parameters, its per-row state in a batch, and its event queue."""

    def __init__(self, engine: "LocalGenerativeEngine", prompt_ids: list[int], params: GenerationParams,
                 max_new_tokens: int, seed: int) -> None:
        self.engine = engine
        self.prompt_ids = prompt_ids
        self.params = params
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.events: queue.Queue[Any] = queue.Queue()
        self.cancel = threading.Event()  # set by the consumer (Stop, closed tab) or by a stop sequence
        self.released = threading.Event()  # set once the batch thread will never touch this request again
        self.decoder = IncrementalDecoder(engine.tokenizer)
        self.stop_matcher = StopMatcher(params.stop)
        self.generated_tokens = 0
        self.saw_eos = False
        self.done = False
        self.batch: list[Request] = []  # the batch this request runs in, once it is taken off the queue
        self.batch_thread: Optional[threading.Thread] = None
        self._generator: Optional[torch.Generator] = None
        self._choices: list[TokenChoice] = []

    # ------------------------------------------------------------------- called in the batch thread

    def accept(self, token_id: int) -> None:
        """Takes the next token of this row."""
        if self.done:
            return  # finished rows keep receiving padding until the whole batch ends
        if self.cancel.is_set() and not self.stop_matcher.stopped:
            self.release()  # the consumer is gone: nothing more to deliver
            return
        self.generated_tokens += 1
        self.engine.count_generated_token()
        if token_id in self.engine.eos_token_ids:
            self.saw_eos = True
        else:
            self._emit(self.stop_matcher.feed(self.decoder.push(token_id)))
        if self.saw_eos or self.stop_matcher.stopped or self.generated_tokens >= self.max_new_tokens:
            self.finish()

    def finish(self) -> None:
        if self.done:
            return
        tail = "" if self.stop_matcher.stopped else self.stop_matcher.feed(self.decoder.flush())
        self._emit(tail + self.stop_matcher.flush())
        self.events.put(DONE)
        self.release()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.events.put(error)
        self.release()

    def release(self) -> None:
        self.done = True
        self.released.set()

    def choose(self, logits: torch.Tensor, history: torch.Tensor) -> int:
        """Picks this row's next token from its logits, with its own parameters and random generator."""
        params = self.params
        if params.repetition_penalty != 1.0 and history.numel():
            seen = history.unique()
            picked = logits[seen]
            logits = logits.clone()
            logits[seen] = torch.where(picked > 0, picked / params.repetition_penalty,
                                       picked * params.repetition_penalty)
        if params.greedy:
            chosen = int(torch.argmax(logits))
            probs = torch.softmax(logits, dim=-1) if params.top_alternatives else None
        else:
            probs = torch.softmax(_truncate(logits / params.temperature, params), dim=-1)
            chosen = int(torch.multinomial(probs, 1, generator=self._rng(logits.device)))
        if params.top_alternatives and probs is not None:
            self._record(probs, chosen)
        return chosen

    def _rng(self, device: torch.device) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        return self._generator

    def _record(self, probs: torch.Tensor, chosen: int) -> None:
        top = torch.topk(probs, min(self.params.top_alternatives, probs.numel()))
        decode = self.engine.tokenizer.decode
        self._choices.append(TokenChoice(
            token=decode([chosen]),
            probability=float(probs[chosen]),
            alternatives=tuple(TokenAlternative(token=decode([int(i)]), probability=float(p))
                               for p, i in zip(top.values.tolist(), top.indices.tolist())),
        ))

    def _emit(self, piece: str) -> None:
        choices, self._choices = tuple(self._choices), []
        if piece or choices:
            self.events.put(Delta(text=piece, choices=choices))


# On CUDA the first forward passes in a new thread pay a per-thread warm-up (measured on an H200: ~3 s, bf16
# decoding at 23 tok/s instead of 440 for the whole first generate), so there a batch thread stays alive this
# long after its work, to take the next batch itself. On CPU there is no such cost and a thread ends with its
# batch, so none outlives the requests it served.
CUDA_THREAD_LINGER_S = 120.0


class Batcher:
    """Owns the queue of one model. On CPU each batch runs in its own thread, which ends with the batch:
    queued requests go to a fresh successor thread, so a finished batch's thread can be joined without waiting
    for work that arrived later. On CUDA one warm thread serves batch after batch (see CUDA_THREAD_LINGER_S)."""

    def __init__(self, engine: "LocalGenerativeEngine", max_batch_size: int, max_queued: int) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_queued = max_queued
        self.linger_s = CUDA_THREAD_LINGER_S if str(engine.device).startswith("cuda") else 0.0
        self._pending: list[Request] = []
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._running: Optional[threading.Thread] = None
        self._closed = False
        self.batches_run = 0
        self.largest_batch = 0
        # ZeroGPU: the one function that runs the model holds the GPU for at most gpu_duration_s per batch;
        # where the `spaces` package is not installed this is `_run` itself (backend/zerogpu.py).
        self._run_on_device = gpu_function(self._run, duration=engine.spec.gpu_duration_s)

    def submit(self, request: Request) -> None:
        with self._lock:
            if len(self._pending) >= self.max_queued:
                raise BusyError(f"model '{self.engine.spec.id}' is busy ({len(self._pending)} requests waiting); "
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
        thread = threading.Thread(target=self._serve, args=(batch,), name=f"generate-{self.engine.spec.id}",
                                  daemon=True)
        for request in batch:
            request.batch, request.batch_thread = batch, thread
        self._running = thread
        thread.start()

    def _serve(self, batch: list[Request]) -> None:
        while batch:
            try:
                self._run_on_device(batch)
            except BaseException as error:  # noqa: BLE001 - the GPU wrapper itself failed (e.g. ZeroGPU quota):
                for request in batch:  # every waiting consumer gets the error instead of waiting forever
                    request.fail(error)
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

    def _run(self, batch: list[Request]) -> None:
        engine = self.engine
        try:
            with engine.generate_lock, torch.inference_mode():
                model = engine.model
                if model is None:
                    raise WorkbenchError(f"model '{engine.spec.id}' was unloaded")
                input_ids, attention_mask = _left_pad(batch, engine.pad_token_id)
                input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
                model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=engine.generation_config(max(r.max_new_tokens for r in batch)),
                    logits_processor=LogitsProcessorList([RowSampler(batch, attention_mask)]),
                    stopping_criteria=StoppingCriteriaList([RowsDone(batch)]),
                    streamer=_RowStreamer(batch),
                )
            for request in batch:
                request.finish()  # rows that ended with the batch (e.g. the model's own length limit)
        except BaseException as error:  # noqa: BLE001 - every failure must reach every waiting consumer
            for request in batch:
                request.fail(error)


def _left_pad(batch: list[Request], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding keeps every row's last prompt token at the same position, where generation starts."""
    width = max(len(r.prompt_ids) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, request in enumerate(batch):
        ids[row, width - len(request.prompt_ids):] = torch.tensor(request.prompt_ids)
        mask[row, width - len(request.prompt_ids):] = 1
    return ids, mask


def _truncate(logits: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """top-k then top-p (nucleus), as transformers' warpers do; always keeps the most likely token."""
    if params.top_k and params.top_k < logits.numel():
        threshold = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        remove = probs.cumsum(dim=-1) - probs >= params.top_p
        remove[0] = False
        logits = logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    return logits


class RowSampler(LogitsProcessor):
    """Lets each row's request choose its token, then hands generate a one-hot choice it takes greedily."""

    def __init__(self, batch: list[Request], attention_mask: torch.Tensor) -> None:
        self.batch = batch
        self.prompt_start = (attention_mask == 0).sum(dim=1).tolist()  # padding to skip in each row

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        forced = torch.full_like(scores, float("-inf"))
        logits = scores.float()
        for row, request in enumerate(self.batch):
            if request.done:
                forced[row, 0] = 0.0  # ignored: generate pads finished rows
                continue
            forced[row, request.choose(logits[row], input_ids[row, self.prompt_start[row]:])] = 0.0
        return forced


class RowsDone(StoppingCriteria):
    """Per row: finished (EOS, stop sequence, own max_new_tokens) or cancelled. Checked after every step."""

    def __init__(self, batch: list[Request]) -> None:
        self.batch = batch

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.tensor([r.done or r.cancel.is_set() for r in self.batch], device=input_ids.device)


class _RowStreamer(BaseStreamer):
    """Routes each step's tokens (one per row) to the row's request."""

    def __init__(self, batch: list[Request]) -> None:
        self.batch = batch
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate first hands over the prompts themselves
            self._prompt_seen = True
            return
        for request, token_id in zip(self.batch, value.reshape(-1).tolist()):
            request.accept(token_id)

    def end(self) -> None:
        pass


def wait_released(request: Request, poll_s: float = 0.05, timeout_s: float = 30.0) -> None:
    """Waits until the batch thread has let go of `request` (it stops touching it within a decode step)."""
    deadline = time.monotonic() + timeout_s
    while not request.released.wait(poll_s):
        if time.monotonic() > deadline:
            return
