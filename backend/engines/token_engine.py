"""The local engine's token-level methods (backend/engines/token_level.py's `TokenLevelEngine`): tokenize,
detokenize, tokenizer facts, conversations with tools, completions of token ids and prompt scoring. A mixin over
the engine's `runtime` (backend/engines/runtime.py), kept apart so the engine module stays about generation.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

from backend.core.hf_types import decoded_text, rendered_text, vocabulary_size
from backend.engines import token_ops
from backend.engines.budget import check_prompt_fits
from backend.engines.runtime import LocalRuntime
from backend.engines.token_ids import encode_ids
from backend.engines.token_level import PromptScores
from backend.core.types import Event, GenerationParams, InvalidInputError


class TokenLevelMethods:
    """Mixed into LocalGenerativeEngine, which provides `runtime`, `spec`, `max_context`, `_require`, `_stream`."""

    runtime: LocalRuntime

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return encode_ids(self.runtime.tokenizer, text, add_special_tokens)

    def detokenize(self, ids: Sequence[int], field: str = "tokens") -> str:
        return decoded_text(self.runtime.tokenizer, token_ops.check_ids(ids, self.vocabulary_size, field))

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """Each token's own text (for logprobs: `tokens` and the keys of `top_logprobs`)."""
        tokenizer = self.runtime.tokenizer
        return [decoded_text(tokenizer, [token]) for token in ids]

    def render_messages(self, messages: list[dict[str, Any]], tools: Optional[list[dict[str, Any]]] = None,
                        add_generation_prompt: bool = True) -> str:
        """A conversation (with tool calls and tool results) and the tools on offer, as the template renders it."""
        return rendered_text(self.runtime.tokenizer.apply_chat_template(
            messages, tools=list(tools or []) or None, chat_template=self.runtime.chat_template,
            add_generation_prompt=add_generation_prompt, tokenize=False))

    def tokenizer_info(self) -> dict[str, Any]:
        runtime = self.runtime
        return {**token_ops.tokenizer_info(runtime.tokenizer, runtime.max_context, runtime.chat_template),
                "eos_token_ids": list(runtime.eos_token_ids)}

    @property
    def vocabulary_size(self) -> int:
        return vocabulary_size(self.runtime.model)

    def stream_tokens(self, prompt_ids: Sequence[int], params: GenerationParams) -> Iterator[Event]:
        """A raw completion of token ids exactly as given (no BOS added): the API's token-id prompts."""
        self._require("generate")  # type: ignore[attr-defined]
        ids = token_ops.check_ids(prompt_ids, self.vocabulary_size, "prompt")
        if not ids:
            raise InvalidInputError("prompt: has no tokens; give at least one token id", field="prompt")
        check_prompt_fits(len(ids), max_context=self.runtime.max_context, model_id=self.runtime.model_id,
                          what="prompt")
        return self._stream(ids, params, dropped_turns=0)  # type: ignore[attr-defined]

    def score_tokens(self, rows: Sequence[Sequence[int]], top: int) -> list[PromptScores]:
        self._require("generate")  # type: ignore[attr-defined]
        return token_ops.score_prompts(self.runtime, [token_ops.check_ids(row, self.vocabulary_size, "prompt")
                                                      for row in rows], top)
