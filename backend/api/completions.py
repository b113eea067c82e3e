"""`POST /v1/completions` (`completions_routes`); one plain string prompt streams as the Generate tab's does, and
everything beyond it is answered here: several prompts (one choice each, `index` in order), token-id
prompts, `echo`, `logprobs` (OpenAI's legacy shape: `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`) and
`max_tokens: 0`, as vLLM serves them and lm-evaluation-harness's `local-completions` model sends them.

The prompts' own log-probabilities come from one batched forward pass (backend/services/tokens.py `score`); generated
tokens' from the decode step's per-token choices (the same computation as Generate's probabilities view); all
prompts' generations run at once, so the engine's batcher decodes them together. lm-eval's log-likelihood request
(`echo`, `logprobs: 1`, `max_tokens: 1`, greedy) is answered from the scoring pass alone: the greedy next token is
the argmax at its last position, so no generation is started.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterator, Optional, Union

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.services import generation as service
from backend.services import tokens
from backend.api.auth import ApiAuth
from backend.api.checks import check_local_features, check_model
from backend.api.errors import ApiError, api_error, errors_about
from backend.api.route import api_router
from backend.api.schemas import CompletionRequest
from backend.api.shapes import Completion
from backend.api.streaming import SSE_HEADERS, Pumps, answer, merged, sse_line
from backend.engines.token_level import PromptScores, TokenLogprob
from backend.core.json_types import JSONOutputObject, json_list
from backend.core.registry import Registry
from backend.core.types import Delta, Event, Final, GenerationParams, TokenChoice

NEG_INF = -9999.0  # JSON has no -Infinity; vLLM answers this for a token of probability 0


def completions_routes(registry: Registry, auth: ApiAuth) -> APIRouter:
    router = api_router(auth)

    @router.post("/completions")
    async def text_completions(body: CompletionRequest, request: Request) -> Response:
        completion = Completion("text", body.model, body.include_usage)
        check_model(registry, body.model, "text")
        with errors_about("prompt", body.api_names):
            params = body.params(registry.spec(body.model).default_params())
        await check_local_features(registry, body.model, params, logprobs=False)
        with errors_about("prompt", body.api_names):
            if not body.plain:  # several prompts, token ids, echo, logprobs, max_tokens 0
                return await complete(request, registry, body, params)
            # Starting a stream tokenizes the prompt (and may load the model): off the event loop.
            prompt = str(body.prompt[0])  # plain: one string prompt
            events = await asyncio.to_thread(service.stream_generate, registry, body.model, prompt, params)
        return await answer(request, events, completion, body.stream)

    return router


@dataclass
class Logprobs:
    """OpenAI's legacy logprobs object, built token by token."""

    offset: int = 0
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[Optional[float]] = field(default_factory=list)
    top_logprobs: list[Optional[dict[str, float]]] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)

    def add(self, text: str, logprob: Optional[float], top: Optional[dict[str, float]]) -> None:
        self.tokens.append(text)
        self.token_logprobs.append(logprob)
        self.top_logprobs.append(top)
        self.text_offset.append(self.offset)
        self.offset += len(text)

    def body(self, start: int = 0) -> JSONOutputObject:
        return {"tokens": self.tokens[start:], "token_logprobs": self.token_logprobs[start:],
                "top_logprobs": self.top_logprobs[start:], "text_offset": self.text_offset[start:]}


def finite(value: float) -> float:
    return value if math.isfinite(value) else NEG_INF


@dataclass
class Choice:
    """One prompt's choice: what it echoes, what it generates, and its logprobs so far."""

    index: int
    prompt: Union[str, list[int]]
    ids: Optional[list[int]] = None  # the prompt's tokens, when they are needed
    echo_text: str = ""
    text: str = ""
    logprobs: Optional[Logprobs] = None
    final: Optional[Final] = None
    finish: Optional[str] = None  # when the prompt's scores gave the one token asked for
    prompt_tokens: int = 0


class TextCompletion:
    """Plans and answers one request: tokenize and score what needs it, then generate what needs it."""

    def __init__(self, registry: Registry, body: CompletionRequest, params: GenerationParams) -> None:
        self.registry = registry
        self.body = body
        self.model: str = body.model
        self.params = params
        self.choices = [Choice(index, prompt) for index, prompt in enumerate(body.prompt)]
        self.completion = Completion("text", self.model, body.include_usage)
        self.eos_ids: set[int] = set()

    @property
    def scores_prompt(self) -> bool:
        return self.body.echo and self.body.logprobs is not None

    @property
    def from_scores_alone(self) -> bool:
        """lm-eval's log-likelihood request: the prompt's scores also give the one greedy token asked for."""
        return self.scores_prompt and self.body.new_tokens in (0, 1) and self.params.greedy and not self.params.stop

    def prepare(self) -> None:
        """The blocking part before any generation: tokens, echo texts and prompt scores (in a worker thread)."""
        needs_ids = self.body.echo
        for choice in self.choices:
            if isinstance(choice.prompt, list):
                choice.ids = choice.prompt
            elif needs_ids:
                choice.ids = tokens.tokenize(self.registry, self.model, choice.prompt)
            if choice.ids is not None:
                choice.prompt_tokens = len(choice.ids)
            if self.body.echo:
                choice.echo_text = choice.prompt if isinstance(choice.prompt, str) else \
                    tokens.detokenize(self.registry, self.model, choice.ids or [], field="prompt")
        if self.body.logprobs is not None:
            info = tokens.tokenizer_info(self.registry, self.model)
            self.eos_ids = {token for token in json_list(info.get("eos_token_ids")) if isinstance(token, int)}
        if not self.scores_prompt:
            for choice in self.choices:
                if self.body.logprobs is not None:
                    choice.logprobs = Logprobs(offset=len(choice.echo_text))
            return
        scored = tokens.score(self.registry, self.model, [choice.ids or [] for choice in self.choices],
                              self.body.logprobs or 0)
        texts = self._texts(scored)
        for choice, scores in zip(self.choices, scored):
            choice.logprobs = Logprobs()
            for token_id, pick in zip(choice.ids or [], scores.tokens):
                choice.logprobs.add(texts[token_id], finite(pick.logprob) if pick else None,
                                    self._top(pick, texts) if pick else None)
            choice.logprobs.offset = len(choice.echo_text)  # generated tokens count from the echoed text's end
            if self.from_scores_alone and self.body.new_tokens != 0:
                self._take_next(choice, scores.next, texts)

    def _texts(self, scored: list[PromptScores]) -> dict[int, str]:
        wanted: set[int] = set()
        for choice, scores in zip(self.choices, scored):
            wanted.update(choice.ids or [])
            for pick in (*scores.tokens, scores.next):
                if pick is not None:
                    wanted.add(pick.token_id)
                    wanted.update(token for token, _ in pick.top)
        ordered = sorted(wanted)
        return dict(zip(ordered, tokens.token_texts(self.registry, self.model, ordered)))

    def _top(self, pick: TokenLogprob, texts: dict[int, str]) -> dict[str, float]:
        """The top alternatives and the token itself (as vLLM: lm-eval compares the token with the best)."""
        return _keyed([(texts[token], value) for token, value in pick.top] + [(texts[pick.token_id], pick.logprob)])

    def _take_next(self, choice: Choice, pick: TokenLogprob, texts: dict[int, str]) -> None:
        is_eos = pick.token_id in self.eos_ids
        text = "" if is_eos else texts[pick.token_id]  # EOS ends the text, as in generation, and is not shown
        assert choice.logprobs is not None
        choice.logprobs.add(texts[pick.token_id], finite(pick.logprob), self._top(pick, texts))
        choice.text = text
        choice.finish = "stop" if is_eos else "length"

    def streams(self) -> list[Iterator[Event]]:
        """Starts each prompt's generation (all at once: the batcher decodes them together)."""
        if self.from_scores_alone or self.body.new_tokens == 0:
            return []
        started = []
        with errors_about("prompt", self.body.api_names):
            for choice in self.choices:
                if choice.ids is None:
                    started.append(service.stream_generate(self.registry, self.model, str(choice.prompt),
                                                           self.params))
                else:
                    started.append(tokens.stream_generate_ids(self.registry, self.model, choice.ids, self.params))
        return started

    # ----------------------------------------------------------------------------------------- events

    def take(self, choice: Choice, value: object) -> str:
        """Applies one backend event to its choice; returns the new text."""
        if isinstance(value, Final):
            choice.final = value
            if not choice.prompt_tokens:
                choice.prompt_tokens = value.stats.prompt_tokens
            return ""
        if isinstance(value, Delta):
            if choice.logprobs is not None:
                for token in value.choices:
                    choice.logprobs.add(token.token, _logprob(token.probability), _alternatives(token))
            choice.text += value.text
            return value.text
        return ""

    def finish_reason(self, choice: Choice) -> str:
        if choice.final is not None:
            return "length" if choice.final.stats.finish_reason == "length" else "stop"
        return choice.finish or "length"  # max_tokens 0 generates nothing: the length limit ended it

    def generated(self, choice: Choice) -> int:
        if choice.final is not None:
            return choice.final.stats.generated_tokens
        return 1 if choice.finish else 0

    def usage(self) -> dict[str, int]:
        prompt = sum(choice.prompt_tokens for choice in self.choices)
        generated = sum(self.generated(choice) for choice in self.choices)
        return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}

    def response(self) -> JSONOutputObject:
        choices: list[JSONOutputObject] = [{"index": choice.index, "text": choice.echo_text + choice.text,
                    "logprobs": choice.logprobs.body() if choice.logprobs else None,
                    "finish_reason": self.finish_reason(choice)} for choice in self.choices]
        return {"id": self.completion.id, "object": "text_completion", "created": self.completion.created,
                "model": self.model, "system_fingerprint": None, "choices": choices, "usage": self.usage()}

    def chunk(self, choice: Choice, text: str, logprobs_from: Optional[int],
              finish: Optional[str] = None) -> JSONOutputObject:
        logprobs = choice.logprobs.body(logprobs_from) if choice.logprobs and logprobs_from is not None else None
        return {"id": self.completion.id, "object": "text_completion", "created": self.completion.created,
                "model": self.model, "system_fingerprint": None,
                "choices": [{"index": choice.index, "text": text, "logprobs": logprobs, "finish_reason": finish}]}


def _logprob(probability: float) -> float:
    return math.log(probability) if probability > 0 else NEG_INF


def _alternatives(token: TokenChoice) -> dict[str, float]:
    return _keyed([(alternative.token, _logprob(alternative.probability)) for alternative in token.alternatives]
                  + [(token.token, _logprob(token.probability))])


def _keyed(pairs: list[tuple[str, float]]) -> dict[str, float]:
    """Top logprobs keyed by token text, most likely first; two tokens with the same text (partial UTF-8 bytes
    both read '\ufffd') keep the likelier value."""
    top: dict[str, float] = {}
    for text, value in pairs:
        top.setdefault(text, finite(value))
    return top


async def complete(request: Request, registry: Registry, body: CompletionRequest,
                   params: GenerationParams) -> Response:
    """Answers a completions request that is not the plain one-string case."""
    plan = TextCompletion(registry, body, params)
    with errors_about("prompt", body.api_names):
        await asyncio.to_thread(plan.prepare)
    # The streams are lazy: each prompt is tokenized in its pump's thread, at most TOKENIZING_SLOTS at a time
    # (backend/engines/runtime.py): 64 prompts of 60,000 characters tokenizing at once held the loop 7-10 s.
    pumps = Pumps(request, await asyncio.to_thread(plan.streams))
    if body.stream:
        return StreamingResponse(_stream(plan, pumps), media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        async for index, _, value in merged(pumps.pumps):
            if isinstance(value, Exception):  # kind "error"
                raise api_error(value, input_field="prompt", names=body.api_names)
            plan.take(plan.choices[index], value)
        if pumps.pumps and any(choice.final is None for choice in plan.choices):
            raise ApiError(500, "generation ended without a result", kind="server_error")
    finally:
        pumps.stop()
    return JSONResponse(plan.response())


async def _stream(plan: TextCompletion, pumps: Pumps) -> AsyncIterator[str]:
    """Each choice's echo (with the prompt's logprobs) first, then every choice's pieces as they come, tagged
    with its index; each choice's closing chunk; usage; [DONE]."""
    generating = bool(pumps.pumps)
    try:
        for choice in plan.choices:
            if plan.body.echo or not generating:
                text = choice.echo_text + ("" if generating else choice.text)
                yield sse_line(plan.chunk(choice, text, 0 if choice.logprobs else None,
                                          None if generating else plan.finish_reason(choice)))
        async for index, _, value in merged(pumps.pumps):
            choice = plan.choices[index]
            if isinstance(value, Exception):  # kind "error"
                yield sse_line(api_error(value, input_field="prompt").body())
                return
            seen = len(choice.logprobs.tokens) if choice.logprobs else None
            text = plan.take(choice, value)
            if isinstance(value, Final):
                yield sse_line(plan.chunk(choice, "", None, plan.finish_reason(choice)))
            elif text or (choice.logprobs and seen is not None and len(choice.logprobs.tokens) > seen):
                yield sse_line(plan.chunk(choice, text, seen))
        if plan.body.include_usage:
            yield sse_line({"id": plan.completion.id, "object": "text_completion", "created": plan.completion.created,
                            "model": plan.model, "system_fingerprint": None, "choices": [], "usage": plan.usage()})
        yield "data: [DONE]\n\n"
    finally:
        pumps.stop()
