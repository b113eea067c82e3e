"""Token-level requests to a registry model: tokenize / detokenize, tokenizer facts, prompt scoring
(log-probabilities of given tokens) and completions of token-id prompts. What the OpenAI API's `/tokenize`,
`/detokenize`, `/tokenizer_info`, `echo` + `logprobs` and token-id prompts stand on.

Only models loaded in this process have tokens at hand (`TokenLevelEngine`); a remote entry gets a clear
UnsupportedTaskError naming it. Each call holds a registry lease while it runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from backend.services import generation as service
from backend.engines.token_level import PromptScores, TokenLevelEngine
from backend.core.json_types import JSONObject
from backend.core.registry import Registry
from backend.core.types import Event, GenerationParams, Message, Task, UnsupportedTaskError

MAX_TOKENIZE_CHARS = service.MAX_MESSAGE_CHARS


@contextmanager
def token_engine(registry: Registry, model_id: str, task: Optional[Task] = None) -> Iterator[TokenLevelEngine]:
    with registry.lease(model_id, task) as engine:
        yield _token_level(engine, model_id)


def _token_level(engine: object, model_id: str) -> TokenLevelEngine:
    if not isinstance(engine, TokenLevelEngine):
        raise UnsupportedTaskError(f"model '{model_id}' is not loaded in this app (a remote server or a classifier): "
                                   "token-level requests (token ids, echo with logprobs, /tokenize) need a local "
                                   "causal language model")
    return engine


def tokenize(registry: Registry, model_id: str, text: str, add_special_tokens: bool = True) -> list[int]:
    # /detokenize gives the ids' text faithfully, a NUL included: /tokenize takes that text back.
    service.check_text("prompt", text, allow_empty=True, allow_nul=True)
    with token_engine(registry, model_id) as engine:
        return engine.tokenize(text, add_special_tokens)


def tokenize_chat(registry: Registry, model_id: str, messages: Sequence[dict[str, str]],
                  add_generation_prompt: bool = True, add_special_tokens: bool = False) -> list[int]:
    """The tokens of a conversation as the model's chat template renders it."""
    chat = [Message.from_dict(item, index) for index, item in enumerate(messages)]
    with token_engine(registry, model_id) as engine:
        text = engine.render_messages([{"role": m.role, "content": m.content} for m in chat],
                                      add_generation_prompt=add_generation_prompt)
        return engine.tokenize(text, add_special_tokens)


def render_messages(registry: Registry, model_id: str, messages: list[JSONObject],
                    tools: Optional[list[JSONObject]]) -> tuple[list[int], Optional[str]]:
    """(the prompt's tokens, the chat template) for a conversation with tools / tool calls / tool results."""
    with token_engine(registry, model_id, "chat") as engine:
        template = engine.tokenizer_info().get("chat_template")
        text = engine.render_messages(messages, tools)
        return engine.tokenize(text, add_special_tokens=False), template if isinstance(template, str) else None


def detokenize(registry: Registry, model_id: str, ids: Sequence[int], field: str = "tokens") -> str:
    """The text of `ids`; an id outside the vocabulary is an InvalidInputError about `field` (the request field
    that sent them: `tokens` on /detokenize, `prompt` for an echoed token-id prompt)."""
    with token_engine(registry, model_id) as engine:
        return engine.detokenize(ids, field)


def token_texts(registry: Registry, model_id: str, ids: Sequence[int]) -> list[str]:
    with token_engine(registry, model_id) as engine:
        return engine.token_texts(ids)


def tokenizer_info(registry: Registry, model_id: str) -> JSONObject:
    with token_engine(registry, model_id) as engine:
        return engine.tokenizer_info()


def score(registry: Registry, model_id: str, rows: Sequence[Sequence[int]], top: int) -> list[PromptScores]:
    """Each row's token log-probabilities (batched forward passes) and its greedy next token."""
    with token_engine(registry, model_id, "generate") as engine:
        return engine.score_tokens(rows, top)


def stream_generate_ids(registry: Registry, model_id: str, prompt_ids: Sequence[int],
                        params: Optional[GenerationParams] = None) -> Iterator[Event]:
    """Streams a raw completion of token ids exactly as given (no BOS added), like service.stream_generate."""
    spec = registry.spec(model_id, "generate")
    params = (params or spec.default_params()).validated()
    return service.stream_leased(registry, model_id, "generate",
                                 lambda engine: _token_level(engine, model_id).stream_tokens(prompt_ids, params))
