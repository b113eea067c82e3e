"""The seam of a local causal LM: what its scheduler, evaluation and label scoring may use, and nothing more.

`LocalRuntime` is made by the local engine's load (backend/engines/local.py) and holds the loaded model's
working parts: its key in the resident table (GPU functions find the model by it, see backend/engines/zerogpu.py),
tokenizer, decoding settings, the lock every forward pass on these weights takes, the device, the counter of
generated tokens and the limits from models.yaml. Its tokenizer calls take one of `TOKENIZING_SLOTS` (see
`tokenizing_slot`). A `Scheduler` (today's `Batcher`,
backend/engines/batching.py) is built from a runtime, never from the engine, and serves two kinds of work:
a chat / generate row submitted as a `RowPlan` (its stream of deltas, then its `RowResult`), and rows decoded
together for evaluation. Engines that run in this process expose both through `RunsLocally`; evaluation
(backend/evaluation/inference.py) and label scoring (backend/engines/label_scoring.py) check for that protocol
and use only what it names.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, decoded_text, rendered_text
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Protocol, Sequence, runtime_checkable

from backend.core.config import ModelSpec
from backend.core.streams import consumer_gone
from backend.engines.cpu_threads import usable_cores
from backend.engines.decode import Decoding, RowPlan
from backend.engines.token_ids import count_ids, encode_ids
from backend.core.types import Delta, FinishReason, GenerationError, Message


# How many tokenizer calls of local models run at once in this process: one core is left to the event loop.
# The tokenizers' encode releases the GIL but takes a core. A 64-prompt completions request (3.8 MB of text) had
# its 64 stream threads all tokenizing at once: the event loop, which starts those threads (`Thread.start` waits
# until the new thread has run), and the thread serving GET /config waited behind them in the CPU's run queue;
# starting the 64 held the loop 7.6-10 s (for 15 ms of its CPU) and /config took 4-8 s (docs/RELIABILITY.md).
TOKENIZING_SLOTS = max(1, usable_cores() - 1)
_SLOTS = threading.BoundedSemaphore(TOKENIZING_SLOTS)


@contextmanager
def tokenizing_slot() -> Iterator[None]:
    """Holds one of `TOKENIZING_SLOTS` while tokenizing. In a pump thread whose consumer has gone meanwhile (the
    request failed or ended while this waited for its turn) it raises instead: nobody wants those tokens."""
    with _SLOTS:
        if consumer_gone():
            raise GenerationError("the request was cancelled while its prompt waited to be tokenized")
        yield


class TokenCounter:
    """Tokens generated so far by one loaded model (grows while generating: lets a caller see that Stop
    stopped). Thread-safe: every batch thread adds to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0

    def add(self, count: int = 1) -> None:
        with self._lock:
            self._total += count

    @property
    def total(self) -> int:
        return self._total


@dataclass(frozen=True)
class Limits:
    """What models.yaml and the model's config allow: context, batch and queue sizes, ZeroGPU duration."""

    max_context: Optional[int]
    max_batch_size: int
    max_queued: int
    gpu_duration_s: Optional[int]


class LocalRuntime:
    """A loaded causal LM's working parts (see the module docstring). `model` and `tokenizer` become None once
    `release` ran (the model was unloaded); users check `loaded` under `lock`."""

    def __init__(self, spec: ModelSpec, model_key: str, model: HFModel, tokenizer: HFTokenizer, decoding: Decoding,
                 device: str, chat_template: str, limits: Limits) -> None:
        self.model_id = spec.id
        self.model_key = model_key
        self.model = model
        self.tokenizer = tokenizer
        self.decoding = decoding
        self.device = device
        self.chat_template = chat_template
        self.limits = limits
        # Held while the model runs a forward pass or a batch: chat batches, evaluation and label scoring take it,
        # and unloading takes it before the weights go, so nothing races a generation.
        self.lock = threading.Lock()
        self.tokens = TokenCounter()

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def max_context(self) -> Optional[int]:
        return self.limits.max_context

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.decoding.eos_token_ids

    @property
    def pad_token_id(self) -> int:
        return self.decoding.pad_token_id

    @property
    def start_token_id(self) -> int:
        """What an empty prompt starts from: BOS, else the first EOS."""
        bos = self.tokenizer.bos_token_id
        return int(bos) if bos is not None else self.decoding.eos_token_ids[0]

    def require_loaded(self, doing: str) -> None:
        """Call with `lock` held: a clear error when the model was unloaded meanwhile."""
        if self.model is None:
            raise GenerationError(f"model '{self.model_id}' was unloaded {doing}")

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The exact text the model sees for a conversation (its chat template, with the generation prompt)."""
        return rendered_text(self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            chat_template=self.chat_template, add_generation_prompt=True, tokenize=False))

    def encode_chat(self, messages: Sequence[Message]) -> list[int]:
        # The template already wrote any BOS it wants; adding special tokens again would double it.
        text = self.render_chat(messages)
        with tokenizing_slot():
            return encode_ids(self.tokenizer, text, add_special_tokens=False)

    def encode_prompt(self, prompt: str) -> list[int]:
        """A raw prompt's ids with the tokenizer's special tokens; an empty one still gets a first token."""
        with tokenizing_slot():
            ids = encode_ids(self.tokenizer, prompt)
        return ids or [self.start_token_id]

    def count_tokens(self, text: str) -> int:
        with tokenizing_slot():
            return count_ids(self.tokenizer, text, add_special_tokens=False)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Generated ids as text, up to the first EOS (special tokens dropped)."""
        eos = set(self.decoding.eos_token_ids)
        end = next((position for position, token in enumerate(token_ids) if token in eos), len(token_ids))
        return decoded_text(self.tokenizer, token_ids[:end], skip_special_tokens=True)


@dataclass(frozen=True)
class RowResult:
    """How a submitted row ended: its whole text (stop sequence cut off), token count and why it ended."""

    text: str
    generated_tokens: int
    finish_reason: FinishReason


class RowStream(Protocol):
    """One submitted row: iterate for its deltas; `result()` once they are exhausted; `close()` cancels the
    row (it ends within a decode step) and returns once the scheduler has let go of it."""

    def __iter__(self) -> Iterator[Delta]: ...

    def result(self) -> RowResult: ...

    def close(self) -> None: ...


class Scheduler(Protocol):
    """Runs a local model's rows: chat / generate rows one at a time as they come, evaluation rows together."""

    def submit(self, plan: RowPlan, stop: Sequence[str]) -> RowStream:
        """Queues one row; raises BusyError when the queue is full."""
        ...

    def decode_rows(self, rows: list[RowPlan], cancel: threading.Event) -> Optional[list[list[int]]]:
        """Decodes `rows` as one batch, each to its EOS or max_new_tokens: token ids per row, or None when
        `cancel` was set meanwhile."""
        ...

    def close(self) -> None:
        """No more work: ends the scheduler's threads (the model is being unloaded)."""
        ...


@runtime_checkable
class RunsLocally(Protocol):
    """An engine whose causal LM runs in this process (the local generative engine)."""

    runtime: LocalRuntime
    scheduler: Scheduler
