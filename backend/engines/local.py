"""Local transformers engine for chat and raw generation, streaming through the model's scheduler.

Loading makes a `LocalRuntime` (backend/engines/runtime.py: the model's key, tokenizer, decoding settings, lock,
token counter and limits) and a `Batcher` built from it, the `Scheduler` that every chat and generate request
goes through. Concurrent requests share forward passes (backend/engines/batching.py), each with its own
parameters and its own seeded random generator: same seed, same output, whatever else runs.

How Stop really stops: each request owns a cancel flag that the batch thread checks after every decode step, so
closing the iterator ends that request's generation within one or two steps (other requests in the same batch
carry on), and the iterator's `finally` waits until the batch thread has let go of it. The batch thread itself
lives only while there is work.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, UNLOADED_MODEL, UNLOADED_TOKENIZER
import itertools
import secrets
import threading
from typing import Iterator, Sequence

from transformers import AutoModelForCausalLM

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject
from backend.engines import loading
from backend.engines import zerogpu
from backend.engines.batching import Batcher
from backend.engines.base import require_task
from backend.engines.budget import check_prompt_fits, fit_chat, reply_budget
from backend.engines import grammar
from backend.engines.decode import Decoding, RowPlan
from backend.engines.generation import FALLBACK_CHAT_TEMPLATE, row_events
from backend.engines.runtime import Limits, LocalRuntime
from backend.engines.token_engine import TokenLevelMethods
from backend.core.types import (
    Event,
    GenerationParams,
    LabelScore,
    Message,
    Task,
    UnsupportedTaskError,
)

_LOADS = itertools.count(1)  # numbers each load: part of the model's key in the resident table


class LocalGenerativeEngine(TokenLevelMethods):
    """A causal LM loaded in this process. Any number of requests at once: they share batched forward passes
    (the batcher), up to max_batch_size rows, with up to max_queued_requests waiting."""

    def __init__(self, spec: ModelSpec, model: HFModel, tokenizer: HFTokenizer, device: str,
                 load_time_s: float) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.load_time_s = load_time_s
        self.notes: list[str] = []
        chat_template = spec.chat_template or getattr(tokenizer, "chat_template", None)
        if not chat_template:
            chat_template = FALLBACK_CHAT_TEMPLATE
            self.notes.append("no chat template in the tokenizer: using the plain 'User:/Assistant:' fallback")
        self.max_context = _max_context(spec, model, tokenizer)
        eos_token_ids = _eos_token_ids(model, tokenizer)
        pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_token_ids[0]
        # GPU functions find the model by this key (a ZeroGPU worker, forked from this process, has it too);
        # unique per load, as two registries (or a reload) may hold the same model id.
        model_key = f"{spec.id}#{next(_LOADS)}"
        zerogpu.make_resident(model_key, model)
        self.runtime = LocalRuntime(
            spec, model_key, model, tokenizer, Decoding(tuple(eos_token_ids), pad_token_id, tokenizer.bos_token_id),
            device, chat_template,
            Limits(self.max_context, spec.max_batch_size, spec.max_queued_requests, spec.gpu_duration_s))
        self.batcher = Batcher(self.runtime)
        self.scheduler = self.batcher  # the Scheduler protocol (backend/engines/runtime.py) it implements

    # Read-only views of the runtime, for status and tests.
    @property
    def model(self) -> HFModel:
        return self.runtime.model

    @property
    def tokenizer(self) -> HFTokenizer:
        return self.runtime.tokenizer

    @property
    def generate_lock(self) -> threading.Lock:
        return self.runtime.lock

    @property
    def generated_tokens_total(self) -> int:
        return self.runtime.tokens.total

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalGenerativeEngine":
        return cls(spec, *loading.load_pretrained(spec, AutoModelForCausalLM))

    def describe(self) -> JSONObject:
        return {**loading.describe_model(self.runtime.model, self.max_context, self.load_time_s),
                "generated_tokens_total": self.generated_tokens_total, "notes": list(self.notes)}

    def close(self) -> None:
        # Wait for a running generation to notice its cancel flag before pulling the weights away.
        self.batcher.close()
        runtime = self.runtime
        with runtime.lock:
            zerogpu.evict_resident(runtime.model_key, runtime.model)
            grammar.forget(runtime.model)
            runtime.model = UNLOADED_MODEL
            runtime.tokenizer = UNLOADED_TOKENIZER
        loading.release_memory(runtime.device)

    # ------------------------------------------------------------------------------------------- public

    def count_tokens(self, text: str) -> int:
        return self.runtime.count_tokens(text)

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' generates text; classification needs a classifier")

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        self._require("chat")
        runtime = self.runtime
        fitted = fit_chat(messages, measure=lambda chat: _ids_of(runtime.encode_chat(chat)),
                          count_message=lambda message: runtime.count_tokens(message.content),
                          max_context=self.max_context, max_new_tokens=params.max_new_tokens)
        check_prompt_fits(fitted.prompt_tokens, max_context=self.max_context, model_id=self.spec.id,
                          what="message")
        return self._stream(fitted.measured, params, dropped_turns=fitted.dropped)

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        self._require("generate")
        input_ids = self.runtime.encode_prompt(prompt)
        check_prompt_fits(len(input_ids), max_context=self.max_context, model_id=self.spec.id, what="prompt")
        return self._stream(input_ids, params, dropped_turns=0)

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The exact text the model sees for a conversation (shown in the UI for transparency)."""
        return self.runtime.render_chat(messages)

    # --------------------------------------------------------------------------------------- internals

    def _require(self, task: Task) -> None:
        require_task(self, task)

    def _stream(self, input_ids: list[int], params: GenerationParams, dropped_turns: int) -> Iterator[Event]:
        """Checks everything up front (errors surface at the call), then streams lazily on first `next`."""
        params = params.validated()
        max_new_tokens, notices = reply_budget(len(input_ids), params.max_new_tokens, max_context=self.max_context,
                                               dropped_turns=dropped_turns)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        if params.grammar is not None:  # structured output: the decode step needs the tokenizer's grammar view
            grammar.register(self.runtime.model, self.runtime.tokenizer, self.runtime.eos_token_ids)
        plan = RowPlan.of(input_ids, params, max_new_tokens, seed)
        return self._consume(plan, params.stop, dropped_turns, notices)

    def _consume(self, plan: RowPlan, stop: Sequence[str], dropped_turns: int,
                 notices: list[str]) -> Iterator[Event]:
        # A generator: the row is submitted on the first `next`, as the engine contract's streams are lazy.
        yield from row_events(self.scheduler.submit(plan, stop), prompt_tokens=len(plan.prompt_ids),
                              max_context=self.max_context, dropped_turns=dropped_turns, notices=notices,
                              seed=None if plan.greedy else plan.seed)


def _ids_of(ids: list[int]) -> tuple[int, list[int]]:
    return len(ids), ids


def _max_context(spec: ModelSpec, model: HFModel, tokenizer: HFTokenizer) -> int | None:
    if spec.max_context:
        return spec.max_context
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 1_000_000 else None


def _eos_token_ids(model: HFModel, tokenizer: HFTokenizer) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [int(i) for i in ids]
