"""`runtime: llama_cpp`: a GGUF chat / generate model run by llama.cpp (llama-cpp-python), behind the engine contract.

Why: on a CPU, llama.cpp runs a quantized GGUF about 3x faster than transformers runs the same weights dequantized to
float32 (docs/BENCHMARKS.md, bench/llama_cpp.py). The pieces:

- backend/engines/llama_cpp_source.py: where the .gguf file is (a local path, or a Hub repo's `gguf_file`) and when
  this runtime is chosen (a GGUF chat / generate entry on the CPU, llama-cpp-python installed);
- backend/engines/llama_cpp_model.py: the model, its context of `max_batch_size` sequences (slots) of `max_context`
  tokens each, tokens and one decode step, through the C bindings;
- backend/engines/llama_cpp_scheduler.py: continuous batching over the slots (concurrent streams decode together);
- backend/engines/llama_cpp_sampling.py: each row's token choice (greedy, seeded sampling, penalties, logit_bias,
  the grammar of `response_format`) and the probabilities the API's logprobs report.

This module does what is per request, like backend/engines/local.py: the chat template (the entry's, else the GGUF's
own `tokenizer.chat_template`, rendered as transformers renders templates), fitting the chat to the context
(backend/engines/budget.py), the stop sequences (the shared StopMatcher) and the `Final` event.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject
from backend.engines.base import require_task
from backend.engines.budget import check_prompt_fits, fit_chat, reply_budget
from backend.engines.generation import FALLBACK_CHAT_TEMPLATE, row_events
from backend.engines.llama_cpp_model import GgufModel, physical_cores
from backend.engines.llama_cpp_sampling import RowSampler
from backend.engines.llama_cpp_scheduler import LlamaRow, SlotScheduler
from backend.engines.llama_cpp_source import gguf_path, require_llama_cpp
from backend.engines.llama_cpp_tokens import LlamaTokenMethods
from backend.core.types import Event, GenerationParams, LabelScore, Message, ModelLoadError, Task, UnsupportedTaskError

if TYPE_CHECKING:
    from llguidance import LLMatcher, LLTokenizer

# Without a max_context in models.yaml, each slot gets at most this much of the model's trained context: every slot's
# KV cache is allocated at load (SmolLM2-135M: 23 KB per token, so 16 slots x 2048 tokens = 0.75 GB).
DEFAULT_CONTEXT = 2048

class LlamaCppEngine(LlamaTokenMethods):
    """A GGUF model in this process on llama.cpp. Any number of requests at once: up to max_batch_size decode
    together, the rest wait in order (up to max_queued_requests). Token-level methods (tokenize, scoring, token-id
    prompts: the OpenAI API's `TokenLevelEngine`) come from backend/engines/llama_cpp_tokens.py."""

    def __init__(self, spec: ModelSpec, model: GgufModel, load_time_s: float) -> None:
        self.spec = spec
        self.tasks: frozenset[Task] = frozenset(spec.tasks)
        self.model: Optional[GgufModel] = model
        self.load_time_s = load_time_s
        self.max_context: Optional[int] = model.context
        self.notes: list[str] = [f"llama.cpp on the CPU: {model.threads} threads, {model.slots} sequences of "
                                 f"{model.context} tokens ({model.description()}, {model.path.name})"]
        self.chat_template = spec.chat_template or model.chat_template or ""
        if not self.chat_template:
            self.chat_template = FALLBACK_CHAT_TEMPLATE
            self.notes.append("no chat template in the GGUF file: using the plain 'User:/Assistant:' fallback")
        self._generated = 0
        self._count_lock = threading.Lock()
        self._grammar_tokenizer: Optional[LLTokenizer] = None  # built on the first constrained request
        self._grammar_lock = threading.Lock()
        self.scheduler = SlotScheduler(model, spec.id, spec.max_queued_requests, on_token=self._count_token)

    # ------------------------------------------------------------------------------------------ loading

    @classmethod
    def load(cls, spec: ModelSpec) -> "LlamaCppEngine":
        require_llama_cpp(spec)
        started = time.perf_counter()
        path = gguf_path(spec, offline=_offline(spec))
        context = spec.max_context or DEFAULT_CONTEXT
        try:
            model = GgufModel(path, slots=spec.max_batch_size, context=context, threads=physical_cores())
        except ModelLoadError as error:
            raise ModelLoadError(f"model '{spec.id}': {error}", field=error.field, params=error.params) from error
        return cls(spec, model, time.perf_counter() - started)

    def describe(self) -> JSONObject:
        model = self.model
        return {
            "device": "cpu (llama.cpp)",
            "dtype": _file_type(model) if model else None,
            "parameters": model.parameters() if model else None,
            "memory_bytes": model.memory_bytes() if model else None,
            "max_context": self.max_context,
            "load_time_s": self.load_time_s,
            "generated_tokens_total": self.generated_tokens_total,
            "active_generations": self.scheduler.active(),
            "notes": list(self.notes),
            "runtime": "llama_cpp",
        }

    def close(self) -> None:
        """Stops what runs, then frees the weights and the KV cache."""
        self.scheduler.close()
        model, self.model = self.model, None
        if model is not None:
            model.close()

    @property
    def generated_tokens_total(self) -> int:
        return self._generated

    def _count_token(self) -> None:
        with self._count_lock:
            self._generated += 1

    # ------------------------------------------------------------------------------------------- public

    def count_tokens(self, text: str) -> int:
        return len(self._model().tokenize(text, add_special=False))

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise UnsupportedTaskError(f"model '{self.spec.id}' generates text; classification needs a classifier")

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The exact text the model sees for a conversation (its chat template, with the generation prompt)."""
        return self.render_messages([{"role": m.role, "content": m.content} for m in messages])

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Event]:
        self._require("chat")
        params = params.validated()
        model = self._model()

        def measure(chat: list[Message]) -> tuple[int, list[int]]:
            # The template writes any BOS it wants; adding special tokens again would double it.
            ids = model.tokenize(self.render_chat(chat), add_special=False)
            return len(ids), ids

        fitted = fit_chat(messages, measure=measure, count_message=lambda message: self.count_tokens(message.content),
                          max_context=self.max_context, max_new_tokens=params.max_new_tokens)
        check_prompt_fits(fitted.prompt_tokens, max_context=self.max_context, model_id=self.spec.id, what="message")
        return self._stream(fitted.measured, params, dropped_turns=fitted.dropped)

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Event]:
        self._require("generate")
        params = params.validated()
        model = self._model()
        ids = model.tokenize(prompt, add_special=model.adds_bos) or [model.bos_id]
        check_prompt_fits(len(ids), max_context=self.max_context, model_id=self.spec.id, what="prompt")
        return self._stream(ids, params, dropped_turns=0)

    # --------------------------------------------------------------------------------------- internals

    def _model(self) -> GgufModel:
        if self.model is None:
            raise ModelLoadError(f"model '{self.spec.id}' was unloaded; send the request again to load it")
        return self.model

    def _require(self, task: Task) -> None:
        require_task(self, task)

    def _stream(self, prompt_ids: list[int], params: GenerationParams, dropped_turns: int) -> Iterator[Event]:
        """Checks everything up front (errors surface at the call), then streams lazily on first `next`."""
        params = params.validated()
        model = self._model()
        max_new_tokens, notices = reply_budget(len(prompt_ids), params.max_new_tokens, max_context=self.max_context,
                                               dropped_turns=dropped_turns)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        matcher = self._matcher(params.grammar) if params.grammar is not None else None
        sampler = RowSampler(params, seed, prompt_ids, matcher=matcher, eog_ids=model.eog_ids)
        row = LlamaRow(model, prompt_ids, sampler, max_new_tokens, params.stop)
        return self._consume(row, dropped_turns, notices, None if params.greedy else seed)

    def _consume(self, row: LlamaRow, dropped_turns: int, notices: list[str],
                 seed: Optional[int]) -> Iterator[Event]:
        # A generator: the row is submitted on the first `next`, as the engine contract's streams are lazy.
        yield from row_events(self.scheduler.submit(row), prompt_tokens=len(row.prompt), max_context=self.max_context,
                              dropped_turns=dropped_turns, notices=notices, seed=seed)

    def _matcher(self, grammar: str) -> LLMatcher:
        """An llguidance matcher of `grammar` over this model's vocabulary (the vocabulary's view is built once)."""
        import llguidance
        from llguidance.llamacpp import lltokenizer_from_vocab

        model = self._model()
        with self._grammar_lock:
            if self._grammar_tokenizer is None:
                self._grammar_tokenizer = lltokenizer_from_vocab(model.vocab, eos_token=model.eos_id)
        return llguidance.LLMatcher(self._grammar_tokenizer, grammar)


def _file_type(model: GgufModel) -> str:
    """The weights' quantization as llama.cpp names it in the model's description (e.g. 'Q4_1')."""
    return model.description().split()[-1]


def _offline(spec: ModelSpec) -> bool:
    """For a Hub repo: True when the Hub cannot be reached, so only the cache may be used (backend/core/hub.py)."""
    if spec.local_path() is not None:
        return False
    from backend.core.hub import HUB

    return not HUB.reachable()[0]
