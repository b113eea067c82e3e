"""Concurrent requests on one llama.cpp context: continuous batching over its sequences (slots).

Every running request owns a slot (a llama.cpp sequence with its own KV cells). One thread runs steps while there is
work: a step is one `llama_decode` holding the next token of every decoding row plus chunks of the prompts of rows
that are still reading theirs (within the batch's token budget, so a long prompt never holds the others up for
more than a step), then each row whose logits came back chooses its token (backend/engines/llama_cpp_sampling.py),
turns it into text and hands it to its consumer. New requests join at the next step, finished ones leave and free
their slot; beyond `slots`, requests wait in order (up to `max_queued`, then BusyError). 16 streams thus decode as
one batch of 16, each step costing little more than one row's (the weights are read once per step).

Stop: closing a row's stream sets its cancel flag, which the thread reads after every step; the row ends there (no
further token) and the close returns once the thread let go of it. The thread ends when nothing is left to run, so
no thread outlives the requests it served. A failed decode fails every row of that step with the error (a
`GenerationError` at each consumer) and the scheduler goes on with the next requests.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections import deque
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from backend.engines.llama_cpp_model import GgufModel
from backend.engines.llama_cpp_sampling import Pick, RowSampler
from backend.engines.runtime import RowResult
from backend.engines.text_stream import StopMatcher
from backend.engines.token_level import TokenLogprob
from backend.core.streams import Channel
from backend.core.types import BusyError, Delta, FinishReason, GenerationError, TokenAlternative, TokenChoice, \
    WorkbenchError


class LlamaRow:
    """One request: its prompt, sampler and limits, its progress in its slot, and the channel its deltas go to."""

    def __init__(self, model: GgufModel, prompt_ids: Sequence[int], sampler: RowSampler, max_new_tokens: int,
                 stop: Sequence[str]) -> None:
        self.model = model
        self.prompt = list(prompt_ids)
        self.sampler = sampler
        self.max_new_tokens = max_new_tokens
        self.events: Channel[Delta] = Channel()
        self.cancel = threading.Event()
        self.released = threading.Event()
        self.slot: Optional[int] = None
        self.position = 0  # tokens of this row in its slot's KV cache
        self.next_token: Optional[int] = None  # chosen, not yet decoded
        self.generated = 0
        self.saw_end = False
        self.done = False
        # llama.cpp's pieces are bytes with no context (unlike a SentencePiece decode), so an incremental UTF-8
        # decoder is the exact stream of text, a character held back until its last byte arrives.
        self.text = codecs.getincrementaldecoder("utf-8")("replace")
        self.stop_matcher = StopMatcher(tuple(stop))
        self.score_top: Optional[int] = None  # a scoring row: logits at every prompt position, no generation
        self.scored: list[TokenLogprob] = []

    @property
    def reading_prompt(self) -> bool:
        return self.position < len(self.prompt)

    def take(self, pick: Pick) -> None:
        """The row's next token (in the scheduler's thread)."""
        model = self.model
        self.generated += 1
        self.sampler.accept(pick.token_id)
        choices = (self._choice(pick),) if self.sampler.params.top_alternatives else ()
        if pick.token_id in model.eog_ids:
            self.saw_end = True
            piece = ""
        else:
            self.next_token = pick.token_id
            piece = self.stop_matcher.feed(self.text.decode(model.piece(pick.token_id)))
        if piece or choices:
            self.events.put(Delta(text=piece, choices=choices))
        if self.saw_end or self.stop_matcher.stopped or self.generated >= self.max_new_tokens:
            self.finish()

    def score(self, position: int, logits: np.ndarray) -> None:
        """A scoring row: what the model gave the prompt's next token at `position` (the greedy token after the
        last); the row ends at its last position."""
        log_probs = np.asarray(logits, dtype=np.float64)
        log_probs = log_probs - np.max(log_probs)
        log_probs -= np.log(np.exp(log_probs).sum())
        following = self.prompt[position + 1] if position + 1 < len(self.prompt) else int(np.argmax(log_probs))
        top: Iterable[int] = np.argsort(-log_probs, kind="stable")[: self.score_top] if self.score_top else []
        self.scored.append(TokenLogprob(following, float(log_probs[following]),
                                        tuple((int(token), float(log_probs[token])) for token in top)))
        if position == len(self.prompt) - 1:
            self.finish()

    def finish(self) -> None:
        if self.done:
            return
        tail = "" if self.stop_matcher.stopped else self.stop_matcher.feed(self.text.decode(b"", final=True))
        tail += self.stop_matcher.flush()
        if tail:
            self.events.put(Delta(text=tail))
        self.events.finish()
        self.done = True

    def fail(self, error: BaseException) -> None:
        self.events.fail(error)
        self.done = True

    def release(self) -> None:
        """The scheduler will never touch this row again; a row that never finished ends with an error."""
        self.done = True
        self.events.fail(WorkbenchError("generation ended without a result"))  # ignored after finish / fail
        self.released.set()

    def result(self) -> RowResult:
        finish: FinishReason = "stop" if self.stop_matcher.stopped or self.saw_end else "length"
        return RowResult(self.stop_matcher.text, self.generated, finish)

    def _choice(self, pick: Pick) -> TokenChoice:
        text = self.model.detokenize
        return TokenChoice(token=text([pick.token_id]), probability=pick.probability,
                           alternatives=tuple(TokenAlternative(token=text([token]), probability=probability)
                                              for token, probability in pick.alternatives))


class LlamaRowStream:
    """A submitted row as its consumer sees it (backend/engines/runtime.py's `RowStream`)."""

    def __init__(self, scheduler: "SlotScheduler", row: LlamaRow) -> None:
        self._scheduler = scheduler
        self._row = row

    def __iter__(self) -> Iterator[Delta]:
        model_id = self._scheduler.model_id
        while True:
            try:
                delta = next(self._row.events)
            except StopIteration:
                return
            except WorkbenchError as error:
                raise GenerationError(f"model '{model_id}': {error}") from error
            except BaseException as error:  # noqa: BLE001 - a failed decode step
                raise GenerationError(f"model '{model_id}': generation failed: {type(error).__name__}: "
                                      f"{error}") from error
            yield delta

    def result(self) -> RowResult:
        return self._row.result()

    def close(self) -> None:
        self._row.cancel.set()
        self._row.events.close()
        self._scheduler.settle(self._row)


class SlotScheduler:
    """Runs the rows of one GgufModel (see the module docstring)."""

    def __init__(self, model: GgufModel, model_id: str, max_queued: int,
                 on_token: Callable[[], None] = lambda: None) -> None:
        self.model = model
        self.model_id = model_id
        self.max_queued = max_queued
        self.on_token = on_token
        self._lock = threading.Lock()
        self._waiting: deque[LlamaRow] = deque()
        self._running: list[LlamaRow] = []
        self._free = list(range(model.slots))
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self.steps_run = 0
        self.largest_step_rows = 0  # the most rows one step decoded together (status, benchmarks)

    def submit(self, row: LlamaRow) -> LlamaRowStream:
        with self._lock:
            if self._closed:
                raise GenerationError(f"model '{self.model_id}' was unloaded; send the request again")
            if len(self._waiting) >= self.max_queued:
                raise BusyError(f"model '{self.model_id}' is busy ({len(self._waiting)} requests waiting); "
                                "try again in a moment")
            self._waiting.append(row)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=f"generate-llama-{self.model_id}",
                                                daemon=True)
                self._thread.start()
        return LlamaRowStream(self, row)

    def settle(self, row: LlamaRow, timeout_s: float = 30.0) -> None:
        """Waits until the thread let go of `row`, and when nothing else runs, until the thread has ended."""
        with self._lock:
            if row in self._waiting:  # never started: it leaves the queue now, not when its turn comes
                self._waiting.remove(row)
                row.release()
        deadline = time.monotonic() + timeout_s
        while not row.released.wait(0.05):
            if time.monotonic() > deadline:
                return
        with self._lock:
            thread = self._thread if not self._running and not self._waiting else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)

    def active(self) -> int:
        with self._lock:
            return len(self._running) + len(self._waiting)

    def close(self) -> None:
        """No more work: cancels what runs and waits for the thread (the model is being unloaded)."""
        with self._lock:
            self._closed = True
            rows = list(self._running) + list(self._waiting)
            thread = self._thread
        for row in rows:
            row.cancel.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # ------------------------------------------------------------------------------- the thread

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._admit()
                if not self._running:
                    self._thread = None
                    return
                running = list(self._running)
            try:
                self._step(running)
            except BaseException as error:  # noqa: BLE001 - every failure reaches every row of the step
                for row in running:
                    if not row.done:
                        row.fail(error)
            self._retire(running)

    def _admit(self) -> None:
        """Waiting rows into free slots, in order; rows cancelled while waiting end here. Lock held."""
        while self._waiting and (self._free or self._waiting[0].cancel.is_set()):
            row = self._waiting.popleft()
            if row.cancel.is_set():
                row.release()
                continue
            row.slot = self._free.pop(0)
            self._running.append(row)

    def _retire(self, rows: list[LlamaRow]) -> None:
        """Rows that ended (or whose consumer left) give back their slot."""
        for row in rows:
            if row.cancel.is_set() or row.done:
                if row.slot is not None:
                    self.model.forget(row.slot)
                with self._lock:
                    self._running.remove(row)
                    if row.slot is not None:
                        self._free.append(row.slot)
                row.release()

    def _step(self, rows: list[LlamaRow]) -> None:
        budget = self.model.batch_tokens
        entries: list[tuple[int, int, int, bool]] = []
        sampled: list[tuple[LlamaRow, int]] = []  # rows that get logits this step, and their entry's index
        live = [row for row in rows if not row.cancel.is_set() and not row.done]
        for row in live:  # decoding rows first: one token each
            if not row.reading_prompt and row.next_token is not None:
                sampled.append((row, len(entries)))
                entries.append((row.next_token, row.position, row.slot, True))  # type: ignore[arg-type]
                row.position += 1
                budget -= 1
        scored: list[tuple[LlamaRow, int, int]] = []  # scoring rows' outputs: (row, entry index, position)
        for row in live:  # then prompts, in arrival order, as far as the budget goes
            if not row.reading_prompt or budget <= 0:
                continue
            chunk = row.prompt[row.position: row.position + budget]
            for offset, token in enumerate(chunk):
                position = row.position + offset
                last = position == len(row.prompt) - 1
                if row.score_top is not None:
                    scored.append((row, len(entries), position))
                elif last:
                    sampled.append((row, len(entries)))
                entries.append((token, position, row.slot, last or row.score_top is not None))  # type: ignore
            row.position += len(chunk)
            budget -= len(chunk)
        if not entries:
            return
        self._decode(entries)
        self.steps_run += 1
        self.largest_step_rows = max(self.largest_step_rows, len(sampled))
        for row, index, position in scored:
            if not row.cancel.is_set():
                row.score(position, self.model.logits(index))
        for row, index in sampled:
            if row.cancel.is_set():
                continue  # its consumer left during the step: no further token
            row.next_token = None
            row.take(row.sampler.choose(self.model.logits(index)))
            self.on_token()

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode (a method, so a test can make it fail as a real decode failure would)."""
        self.model.decode(entries)
