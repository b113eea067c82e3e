"""Local transformers engine for chat and raw generation, streaming from a worker thread.

How Stop really stops: the consumer's iterator owns a cancel flag that a stopping criterion checks after every
decode step, so closing the iterator ends `model.generate` within one or two steps, and the iterator's
`finally` joins the worker thread, so no generate thread outlives its request.

Why sampling happens in our own logits processor: `torch.manual_seed` is process-global, so two users sampling
at once would disturb each other's seeds. `SeededSampler` draws from a per-request `torch.Generator` and hands
generate a one-hot choice that greedy decoding then takes: same seed, same output, whatever else runs.
"""

from __future__ import annotations

import itertools
import queue
import secrets
import threading
import time
from typing import Any, Iterator, Sequence

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from backend.config import ModelSpec
from backend.engines import loading
from backend.engines.text_stream import IncrementalDecoder, StopMatcher
from backend.types import (
    ContextOverflowError,
    Delta,
    Event,
    Final,
    FinishReason,
    GenerationError,
    GenerationParams,
    GenerationStats,
    LabelScore,
    Message,
    Task,
    TokenAlternative,
    TokenChoice,
    UnsupportedTaskError,
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

_POLL_S = 0.05  # how often a waiting consumer checks that the worker is still alive
_DONE = object()


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
        self._generate_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self.generated_tokens_total = 0  # grows while generating; lets a caller see that Stop stopped
        self.active_generations = 0

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, spec: ModelSpec) -> "LocalGenerativeEngine":
        started = time.perf_counter()
        device = loading.resolve_device(spec)
        dtype = loading.resolve_dtype(spec, device)
        source = loading.model_source(spec)
        kwargs = loading.from_pretrained_kwargs(spec, device, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
            )
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            if "device_map" not in kwargs:
                model.to(device)
            model.eval()
        except Exception as error:
            loading.release_memory(device)
            raise loading.explain_load_failure(spec, error) from error
        return cls(spec, model, tokenizer, device, time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        model = self.model
        return {
            "device": loading.device_of(model) if model is not None else None,
            "dtype": str(model.dtype).removeprefix("torch.") if model is not None else None,
            "parameters": model.num_parameters() if model is not None else None,
            "memory_bytes": loading.memory_footprint(model) if model is not None else None,
            "max_context": self.max_context,
            "load_time_s": self.load_time_s,
            "generated_tokens_total": self.generated_tokens_total,
            "active_generations": self.active_generations,
            "notes": list(self.notes),
        }

    def close(self) -> None:
        # Wait for a running generation to notice its cancel flag before pulling the weights away.
        with self._generate_lock:
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

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The exact text the model sees for a conversation (shown in the UI for transparency)."""
        return self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            chat_template=self.chat_template,
            add_generation_prompt=True,
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
        """Starts generation lazily (on first `next`) so an iterator never started holds nothing."""
        params = params.validated()
        prompt_tokens = int(input_ids.shape[1])
        max_new_tokens = params.max_new_tokens
        notices = []
        if self.max_context is not None and prompt_tokens + max_new_tokens > self.max_context:
            max_new_tokens = self.max_context - prompt_tokens
            notices.append(f"max_new_tokens lowered to {max_new_tokens} to fit the {self.max_context}-token context")
        if dropped_turns:
            notices.insert(0, f"{dropped_turns} oldest message(s) dropped to fit the {self.max_context}-token context")
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        return self._run(input_ids, params, max_new_tokens, seed, prompt_tokens, dropped_turns, notices)

    def _run(
        self,
        input_ids: torch.Tensor,
        params: GenerationParams,
        max_new_tokens: int,
        seed: int,
        prompt_tokens: int,
        dropped_turns: int,
        notices: list[str],
    ) -> Iterator[Event]:
        cancel = threading.Event()
        events: queue.Queue[Any] = queue.Queue()
        sampler = SeededSampler(params, seed, self.tokenizer)
        streamer = _QueueStreamer(self, params, events, cancel, sampler)
        worker = threading.Thread(
            target=self._generate_in_thread,
            args=(input_ids, params, max_new_tokens, sampler, streamer, cancel, events),
            name=f"generate-{self.spec.id}",
            daemon=True,
        )
        started = time.perf_counter()
        first_token_at: float | None = None
        finish: FinishReason = "cancelled"
        worker.start()
        try:
            while True:
                try:
                    item = events.get(timeout=_POLL_S)
                except queue.Empty:
                    if not worker.is_alive() and events.empty():
                        raise GenerationError(f"model '{self.spec.id}': generation ended without a result")
                    continue
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise GenerationError(f"model '{self.spec.id}': generation failed: "
                                          f"{type(item).__name__}: {item}") from item
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                yield item
            tail = streamer.finish()
            if tail.text:
                yield tail
            ended = time.perf_counter()
            generated = streamer.generated_tokens
            if streamer.stop_matcher.stopped or streamer.saw_eos:
                finish = "stop"
            elif generated >= max_new_tokens:
                finish = "length"
            decode_s = ended - first_token_at if first_token_at is not None else None
            yield Final(
                text=streamer.stop_matcher.text,
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
                    seed=None if params.greedy else seed,
                ),
            )
        finally:
            cancel.set()
            worker.join()

    def _generate_in_thread(
        self,
        input_ids: torch.Tensor,
        params: GenerationParams,
        max_new_tokens: int,
        sampler: "SeededSampler",
        streamer: "_QueueStreamer",
        cancel: threading.Event,
        events: queue.Queue[Any],
    ) -> None:
        try:
            # Wait for our turn, but give up at once if the request is cancelled while queued.
            while not self._generate_lock.acquire(timeout=_POLL_S):
                if cancel.is_set():
                    return
            try:
                if cancel.is_set() or self.model is None:
                    return
                with self._counter_lock:
                    self.active_generations += 1
                try:
                    device_ids = input_ids.to(self.model.device)
                    with torch.inference_mode():
                        self.model.generate(
                            input_ids=device_ids,
                            attention_mask=torch.ones_like(device_ids),
                            generation_config=self._generation_config(params, max_new_tokens),
                            logits_processor=LogitsProcessorList([sampler]),
                            stopping_criteria=StoppingCriteriaList([_CancelCriterion(cancel)]),
                            streamer=streamer,
                        )
                finally:
                    with self._counter_lock:
                        self.active_generations -= 1
            finally:
                self._generate_lock.release()
            events.put(_DONE)
        except BaseException as error:  # noqa: BLE001 - every failure must reach the consumer
            events.put(error)

    def _generation_config(self, params: GenerationParams, max_new_tokens: int) -> GenerationConfig:
        # Sampling itself is done by SeededSampler; generate only applies the repetition penalty.
        return GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            repetition_penalty=params.repetition_penalty,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else self.eos_token_ids[0],
            bos_token_id=self.tokenizer.bos_token_id,
        )

    def _count(self) -> None:
        with self._counter_lock:
            self.generated_tokens_total += 1


class SeededSampler(LogitsProcessor):
    """Applies temperature / top-k / top-p and draws from a per-request generator; records alternatives."""

    def __init__(self, params: GenerationParams, seed: int, tokenizer: Any) -> None:
        self.params = params
        self.seed = seed
        self.tokenizer = tokenizer
        self._generator: torch.Generator | None = None
        self.choices: list[TokenChoice] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores[0].float()
        if self.params.greedy:
            probs = torch.softmax(logits, dim=-1)
            chosen = int(torch.argmax(logits))
        else:
            probs = torch.softmax(self._truncate(logits / self.params.temperature), dim=-1)
            chosen = int(torch.multinomial(probs, 1, generator=self._rng(logits.device)))
        if self.params.top_alternatives:
            self._record(probs, chosen)
        forced = torch.full_like(scores, float("-inf"))
        forced[0, chosen] = 0.0
        return forced

    def _rng(self, device: torch.device) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        return self._generator

    def _truncate(self, logits: torch.Tensor) -> torch.Tensor:
        """top-k then top-p (nucleus), as transformers' warpers do; always keeps the most likely token."""
        if self.params.top_k and self.params.top_k < logits.numel():
            threshold = torch.topk(logits, self.params.top_k).values[-1]
            logits = logits.masked_fill(logits < threshold, float("-inf"))
        if self.params.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True)
            cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            remove = cumulative - torch.softmax(sorted_logits, dim=-1) >= self.params.top_p
            remove[0] = False
            logits = logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))
        return logits

    def _record(self, probs: torch.Tensor, chosen: int) -> None:
        top = torch.topk(probs, min(self.params.top_alternatives, probs.numel()))
        decode = self.tokenizer.decode
        self.choices.append(
            TokenChoice(
                token=decode([chosen]),
                probability=float(probs[chosen]),
                alternatives=tuple(
                    TokenAlternative(token=decode([int(i)]), probability=float(p))
                    for p, i in zip(top.values.tolist(), top.indices.tolist())
                ),
            )
        )


class _CancelCriterion(StoppingCriteria):
    """Ends generate at the next step once the request is cancelled (Stop, closed tab, stop sequence)."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)


class _QueueStreamer(BaseStreamer):
    """Receives token ids from generate (in the worker thread) and queues text deltas for the consumer."""

    def __init__(
        self,
        engine: LocalGenerativeEngine,
        params: GenerationParams,
        events: queue.Queue[Any],
        cancel: threading.Event,
        sampler: SeededSampler,
    ) -> None:
        self.engine = engine
        self.events = events
        self.cancel = cancel
        self.sampler = sampler
        self.decoder = IncrementalDecoder(engine.tokenizer)
        self.stop_matcher = StopMatcher(params.stop)
        self.generated_tokens = 0
        self.saw_eos = False
        self._prompt_seen = False
        self._choices_sent = 0

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate first hands over the prompt itself
            self._prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            self.generated_tokens += 1
            self.engine._count()
            if token_id in self.engine.eos_token_ids:
                self.saw_eos = True
                continue
            piece = self.stop_matcher.feed(self.decoder.push(token_id))
            if self.stop_matcher.stopped:
                self.cancel.set()  # the stop sequence is in: stop the model, not just the display
            self._emit(piece)

    def end(self) -> None:
        pass  # the worker signals completion itself, after generate has returned

    def finish(self) -> Delta:
        """Text held back at the end (partial characters, partial stop-sequence matches)."""
        piece = "" if self.stop_matcher.stopped else self.stop_matcher.feed(self.decoder.flush())
        piece += self.stop_matcher.flush()
        return Delta(text=piece, choices=self._new_choices())

    def _emit(self, piece: str) -> None:
        choices = self._new_choices()
        if piece or choices:
            self.events.put(Delta(text=piece, choices=choices))

    def _new_choices(self) -> tuple[TokenChoice, ...]:
        fresh = self.sampler.choices[self._choices_sent:]
        self._choices_sent += len(fresh)
        return tuple(fresh)


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
