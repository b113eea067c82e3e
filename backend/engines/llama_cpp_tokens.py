"""The llama.cpp engine's token-level methods (backend/engines/token_level.py's `TokenLevelEngine`): tokenize,
detokenize, tokenizer facts, conversations with tools, completions of token ids and prompt scoring. What the
OpenAI API's `/tokenize`, `logit_bias` checks, tool calling, token-id prompts and `echo` + `logprobs` stand on.

Scoring runs through the engine's scheduler as rows that ask for logits at every prompt position and generate
nothing, so it shares decode steps with chat and never races a generation on the context.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence

from backend.engines.budget import check_prompt_fits
from backend.engines.llama_cpp_model import GgufModel
from backend.engines.llama_cpp_sampling import RowSampler
from backend.engines.llama_cpp_scheduler import LlamaRow, SlotScheduler
from backend.engines.token_level import PromptScores, check_ids
from backend.core.types import ContextOverflowError, Event, GenerationError, GenerationParams, InvalidInputError

MAX_TOP = 20  # OpenAI's and vLLM's limit for top_logprobs


class LlamaTokenMethods:
    """Mixed into LlamaCppEngine, which provides `_model`, `scheduler`, `spec`, `max_context`, `chat_template`,
    `_require` and `_stream`."""

    scheduler: SlotScheduler
    chat_template: str
    max_context: Optional[int]
    _model: Callable[[], GgufModel]

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._model().tokenize(text, add_special=add_special_tokens)

    def detokenize(self, ids: Sequence[int]) -> str:
        model = self._model()
        return model.detokenize(check_ids(ids, model.n_vocab, "tokens"))

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """Each token's own text (special tokens as written, e.g. '<|im_end|>'), for logprobs."""
        model = self._model()
        return [model.special_text(int(token)) for token in ids]

    def tokenizer_info(self) -> dict[str, Any]:
        model = self._model()
        pad = model.metadata.get("tokenizer.ggml.padding_token_id")
        return {
            "tokenizer_class": f"llama.cpp {model.metadata.get('tokenizer.ggml.model', '')} vocabulary".strip(),
            "eos_token": model.special_text(model.eos_id),
            "bos_token": model.special_text(model.bos_id) if model.bos_id >= 0 else None,
            "pad_token": model.special_text(int(pad)) if pad is not None else None,
            "unk_token": None,
            "chat_template": self.chat_template,
            "model_max_length": self.max_context,
            "vocab_size": model.n_vocab,
            "add_bos_token": model.adds_bos,
            "eos_token_ids": list(model.eog_ids),
        }

    def stream_tokens(self, prompt_ids: Sequence[int], params: GenerationParams) -> Iterator[Event]:
        """A raw completion of token ids exactly as given (no BOS added): the API's token-id prompts."""
        self._require("generate")  # type: ignore[attr-defined]
        ids = check_ids(prompt_ids, self._model().n_vocab, "prompt")
        if not ids:
            raise InvalidInputError("prompt: has no tokens; give at least one token id", field="prompt")
        check_prompt_fits(len(ids), max_context=self.max_context, model_id=self.spec.id,  # type: ignore
                          what="prompt")
        return self._stream(ids, params, dropped_turns=0)  # type: ignore[attr-defined]

    def score_tokens(self, rows: Sequence[Sequence[int]], top: int) -> list[PromptScores]:
        """Every prompt token's log-probability and the greedy next token, for each row (scored together)."""
        self._require("generate")  # type: ignore[attr-defined]
        model = self._model()
        prompts = [check_ids(row, model.n_vocab, "prompt") for row in rows]
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise InvalidInputError(f"prompt: prompt {index} has no tokens; give at least one", field="prompt")
            if self.max_context is not None and len(prompt) > self.max_context:
                raise ContextOverflowError(f"the prompt {index} is {len(prompt)} tokens, but model "
                                           f"'{self.spec.id}' has a context of {self.max_context} tokens; shorten "  # type: ignore
                                           "it", field="prompt")
        greedy = GenerationParams(max_new_tokens=1, temperature=0.0)
        scoring = []
        for prompt in prompts:
            row = LlamaRow(model, prompt, RowSampler(greedy, 0, ()), max_new_tokens=1, stop=())
            row.score_top = max(0, min(int(top), MAX_TOP))
            scoring.append(row)
        streams = [self.scheduler.submit(row) for row in scoring]
        try:
            for stream in streams:
                for _ in stream:  # a scoring row streams nothing; this waits for its end (or raises its error)
                    pass
        finally:
            for stream in streams:
                stream.close()
        results = []
        for row in scoring:
            if len(row.scored) != len(row.prompt):
                raise GenerationError(f"model '{self.spec.id}': scoring ended early")  # type: ignore[attr-defined]
            results.append(PromptScores(tokens=(None, *row.scored[:-1]), next=row.scored[-1]))
        return results

    def render_messages(self, messages: list[dict[str, Any]], tools: Optional[list[dict[str, Any]]] = None,
                        add_generation_prompt: bool = True) -> str:
        """A conversation (with tool calls and tool results) and the tools on offer, as the template renders it."""
        from transformers.utils.chat_template_utils import render_jinja_template  # jinja2 only; no torch

        model = self._model()
        rendered, _ = render_jinja_template(  # type: ignore[str-unpack]  # annotated -> str, returns a pair
            conversations=[messages], tools=tools or None, chat_template=self.chat_template,  # type: ignore[arg-type]
            add_generation_prompt=add_generation_prompt, bos_token=model.special_text(model.bos_id),
            eos_token=model.special_text(model.eos_id))
        return rendered[0]
