"""What a local engine offers at the level of tokens (the OpenAI API's `logprobs`, `echo`, token-id prompts,
`/tokenize`): plain values and a protocol, no torch, so the service and the API can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol, Sequence, runtime_checkable

from backend.core.types import Event, GenerationParams, InvalidInputError


@dataclass(frozen=True)
class TokenLogprob:
    """A token, its log-probability under the model, and the most likely tokens at its position (id, logprob),
    most likely first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class PromptScores:
    """A scored prompt: each token's log-probability given the tokens before it (`None` for the first, which has
    no context), and the model's greedy next token after the whole prompt."""

    tokens: tuple[Optional[TokenLogprob], ...]
    next: TokenLogprob


def check_ids(ids: Sequence[object], vocabulary: int, field: str) -> list[int]:
    """Token ids from a client: whole numbers within the model's vocabulary."""
    clean = []
    for index, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocabulary:
            raise InvalidInputError(f"{field}: token {index} is {token!r}, not a token id of this model "
                                    f"(0 to {vocabulary - 1})", field=field)
        clean.append(int(token))
    return clean



@runtime_checkable
class TokenLevelEngine(Protocol):
    """A local engine with its tokenizer and weights at hand."""

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def detokenize(self, ids: Sequence[int], field: str = "tokens") -> str: ...

    def token_texts(self, ids: Sequence[int]) -> list[str]: ...

    def tokenizer_info(self) -> dict[str, Any]: ...

    def render_messages(self, messages: list[dict[str, Any]], tools: Optional[list[dict[str, Any]]] = None,
                        add_generation_prompt: bool = True) -> str: ...

    def stream_tokens(self, prompt_ids: Sequence[int], params: GenerationParams) -> Iterator[Event]: ...

    def score_tokens(self, rows: Sequence[Sequence[int]], top: int) -> list[PromptScores]: ...
