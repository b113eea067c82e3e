"""Local transformers engine for chat and raw generation, streaming through the model's batcher.

How Stop really stops: each request owns a cancel flag that a stopping criterion checks after every decode
step, so closing the iterator ends that request's generation within one or two steps (other requests in the
same batch carry on), and the iterator's `finally` waits until the batch thread has let go of it. The batch
thread itself lives only while there is work.

Concurrent requests share forward passes (backend/engines/batching.py), each with its own parameters and its
own seeded random generator: same seed, same output, whatever else runs.
"""

from __future__ import annotations

import itertools
import queue
import secrets
import threading
import time
from typing import Any, Iterator, Optional, Sequence

import torch
from transformers import AutoModelForCausalLM

from backend.config import ModelSpec
from backend.engines import loading
from backend import zerogpu
from backend.engines.batching import DONE, Batcher, Request
from backend.engines.decode import Decoding
from backend.engines import grammar, token_ops
from backend.engines.token_level import PromptScores
from backend.types import (
    ContextOverflowError,
    Event,
    Final,
    FinishReason,
    GenerationError,
    GenerationParams,
    GenerationStats,
    InvalidInputError,
    LabelScore,
    Message,
    Task,
    UnsupportedTaskError,
    WorkbenchError,
)

# Used when a tokenizer ships no chat template (base models). Documented in the README and flagged in status.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

_POLL_S = 0.05
_LOADS = itertools.count(1)  # how often a waiting consumer checks that its request is still being served


class LocalGenerativeEngine:
    """A causal LM loaded in this process; one generation at a time per model (a lock), any number waiting."""

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, device: str, load_time_s: float) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_time_s = load_time_s
        self.notes: list[str] = []
        self.chat_template = spec.chat_template or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            self.chat_template = FALLBACK_CHAT_TEMPLATE
            self.notes.append("no chat template in the tokenizer: using the plain 'User:/Assistant:' fallback")
        self.max_context = _max_context(spec, model, tokenizer)
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.decoding = Decoding(tuple(self.eos_token_ids), self.pad_token_id, tokenizer.bos_token_id)
        # GPU functions find the model by this key (a ZeroGPU worker, forked from this process, has it too);
        # unique per load, as two registries (or a reload) may hold the same model id.
        self.resident_key = f"{spec.id}#{next(_LOADS)}"
        zerogpu.make_resident(self.resident_key, model)
        # Held while the model runs a batch; other users of the weights (label scoring, evaluation, unload)
        # take it too, so nothing races a generation.
        self.generate_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self.generated_tokens_total = 0  # grows while generating; lets a caller see that Stop stopped
        self.batcher = Batcher(self, max_batch_size=spec.max_batch_size, max_queued=spec.max_queued_requests)

    @property
    def _generate_lock(self) -> threading.Lock:  # older name, kept for callers written against it
        return self.generate_lock

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalGenerativeEngine":
        return cls(spec, *loading.load_pretrained(spec, AutoModelForCausalLM))

    def describe(self) -> dict[str, Any]:
        return {**loading.describe_model(self.model, self.max_context, self.load_time_s),
                "generated_tokens_total": self.generated_tokens_total, "notes": list(self.notes)}

    def close(self) -> None:
        # Wait for a running generation to notice its cancel flag before pulling the weights away.
        self.batcher.close()
        with self.generate_lock:
            zerogpu.evict_resident(self.resident_key, self.model)
            grammar.forget(self.model)
            self.model = None
            self.tokenizer = None
        loading.release_memory(self.device)

    # ------------------------------------------------------------------------------------------- public

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' generates text; classification needs a classifier")

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        self._require("chat")
        input_ids, dropped = self._fit_chat(list(messages), params)
        return self._stream(input_ids, params, dropped_turns=dropped)

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        self._require("generate")
        input_ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        if input_ids.shape[1] == 0:
            # An empty prompt still needs a first token to condition on.
            start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.eos_token_ids[0]
            input_ids = torch.tensor([[start]])
        self._check_prompt_fits(input_ids.shape[1], what="prompt")
        return self._stream(input_ids, params, dropped_turns=0)

    def render_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The exact text the model sees for a conversation (shown in the UI for transparency)."""
        return self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            chat_template=self.chat_template,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )

    # --------------------------------------------------------------------------------------- internals

    def _require(self, task: Task) -> None:
        if task not in self.tasks:
            raise UnsupportedTaskError(f"model '{self.spec.id}' is not set up for '{task}' (its tasks: "
                                       f"{', '.join(self.spec.tasks)})")

    def _tokenize_chat(self, messages: Sequence[Message]) -> torch.Tensor:
        text = self.render_chat(messages)
        # The template already wrote any BOS it wants; adding special tokens again would double it.
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def _fit_chat(self, messages: list[Message], params: GenerationParams) -> tuple[torch.Tensor, int]:
        """Drops the oldest turns (never the system prompt, never the last message) until the chat fits."""
        system = [m for m in itertools.takewhile(lambda m: m.role == "system", messages)]
        turns = messages[len(system):]
        dropped = 0
        while True:
            input_ids = self._tokenize_chat(system + turns)
            fits = self.max_context is None or input_ids.shape[1] + params.max_new_tokens <= self.max_context
            if fits or len(turns) <= 1:
                break
            # Drop a whole exchange so the conversation still starts with a user turn.
            cut = 1
            while cut < len(turns) - 1 and turns[cut].role != "user":
                cut += 1
            dropped += cut
            turns = turns[cut:]
        self._check_prompt_fits(input_ids.shape[1], what="message")
        return input_ids, dropped

    def _check_prompt_fits(self, prompt_tokens: int, what: str) -> None:
        if self.max_context is not None and prompt_tokens >= self.max_context:
            raise ContextOverflowError(
                f"the {what} is {prompt_tokens} tokens, but model '{self.spec.id}' has a context of "
                f"{self.max_context} tokens (with room needed for the reply); shorten it"
            )

    def _stream(self, input_ids: torch.Tensor, params: GenerationParams, dropped_turns: int) -> Iterator[Event]:
        """Checks everything up front (errors surface at the call), then streams lazily on first `next`."""
        params = params.validated()
        prompt_tokens = int(input_ids.shape[1])
        max_new_tokens = params.max_new_tokens
        notices = []
        if dropped_turns:
            notices.append(f"{dropped_turns} oldest message(s) dropped to fit the {self.max_context}-token context")
        if self.max_context is not None and prompt_tokens + max_new_tokens > self.max_context:
            max_new_tokens = self.max_context - prompt_tokens
            notices.append(f"max_new_tokens lowered to {max_new_tokens} to fit the {self.max_context}-token context")
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        if params.grammar is not None:  # structured output: the decode step needs the tokenizer's grammar view
            grammar.register(self.model, self.tokenizer, self.eos_token_ids)
        request = Request(self, input_ids[0].tolist(), params, max_new_tokens, seed)
        return self._consume(request, prompt_tokens, dropped_turns, notices)

    def _consume(self, request: Request, prompt_tokens: int, dropped_turns: int,
                 notices: list[str]) -> Iterator[Event]:
        started = time.perf_counter()
        first_token_at: float | None = None
        self.batcher.submit(request)
        try:
            while True:
                try:
                    item = request.events.get(timeout=_POLL_S)
                except queue.Empty:
                    if request.released.is_set() and request.events.empty():
                        raise GenerationError(f"model '{self.spec.id}': generation ended without a result")
                    continue
                if item is DONE:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, WorkbenchError):
                        raise GenerationError(f"model '{self.spec.id}': {item}") from item
                    raise GenerationError(f"model '{self.spec.id}': generation failed: "
                                          f"{type(item).__name__}: {item}") from item
                if first_token_at is None and item.text:
                    first_token_at = time.perf_counter()
                yield item
            ended = time.perf_counter()
            generated = request.generated_tokens
            finish: FinishReason = "length"
            if request.stop_matcher.stopped or request.saw_eos:
                finish = "stop"
            decode_s = ended - first_token_at if first_token_at is not None else None
            yield Final(
                text=request.stop_matcher.text,
                stats=GenerationStats(
                    prompt_tokens=prompt_tokens,
                    generated_tokens=generated,
                    time_to_first_token_s=(first_token_at - started) if first_token_at else None,
                    tokens_per_second=(generated - 1) / decode_s if decode_s and generated > 1 else None,
                    total_s=ended - started,
                    finish_reason=finish,
                    dropped_turns=dropped_turns,
                    max_context=self.max_context,
                    notices=tuple(notices),
                    seed=None if request.params.greedy else request.seed,
                ),
            )
        finally:
            # Stop this row (the batch thread drops it at the next step) and wait until it has let go.
            request.cancel.set()
            self.batcher.settle(request)

    # ----------------------------------------------------------------- tokens (backend/engines/token_level.py)

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ops.check_ids(ids, self.vocabulary_size, "tokens"))

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """Each token's own text (for logprobs: `tokens` and the keys of `top_logprobs`)."""
        return [self.tokenizer.decode([token]) for token in ids]

    def render_messages(self, messages: list[dict[str, Any]], tools: Optional[list[dict[str, Any]]] = None) -> str:
        """A conversation with tool calls / tool results, and the tools on offer, as the template renders it."""
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=self.chat_template,
                                                  add_generation_prompt=True, tokenize=False)

    def tokenizer_info(self) -> dict[str, Any]:
        return {**token_ops.tokenizer_info(self.tokenizer, self.max_context, self.chat_template),
                "eos_token_ids": list(self.eos_token_ids)}

    @property
    def vocabulary_size(self) -> int:
        return int(self.model.get_input_embeddings().num_embeddings)

    def stream_tokens(self, prompt_ids: Sequence[int], params: GenerationParams) -> Iterator[Event]:
        """A raw completion of token ids exactly as given (no BOS added): the API's token-id prompts."""
        self._require("generate")
        ids = token_ops.check_ids(prompt_ids, self.vocabulary_size, "prompt")
        if not ids:
            raise InvalidInputError("prompt: has no tokens; give at least one token id")
        self._check_prompt_fits(len(ids), what="prompt")
        return self._stream(torch.tensor([ids]), params, dropped_turns=0)

    def score_tokens(self, rows: Sequence[Sequence[int]], top: int) -> list[PromptScores]:
        self._require("generate")
        return token_ops.score_prompts(self, [token_ops.check_ids(row, self.vocabulary_size, "prompt")
                                              for row in rows], top)

    def count_generated_token(self) -> None:
        with self._counter_lock:
            self.generated_tokens_total += 1


def _max_context(spec: ModelSpec, model: Any, tokenizer: Any) -> int | None:
    if spec.max_context:
        return spec.max_context
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 1_000_000 else None


def _eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return [int(i) for i in ids]
