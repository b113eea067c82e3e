"""`POST /v1/chat/completions`: the route (`chat_routes`), and its answer with `n` > 1 and/or `logprobs` /
`top_logprobs` (OpenAI's chat shape: `choices[i].logprobs.content[j] = {token, logprob, bytes, top_logprobs:
[{token, logprob, bytes}]}`). Tool calling is backend/api/tools.py; one plain choice streams through
backend/api/streaming.py as the Chat tab's stream does.

Each choice is a generation of its own with its own random stream: with a `seed`, choice i samples with
seed + i (so a request is reproducible and its choices differ); without one, each draws a fresh seed. All choices
start at once, so the engine's batcher decodes them together. Token log-probabilities come from the decode step's
per-token choices: the same computation as Generate's probabilities view (backend/engines/token_ops.py).
"""

from __future__ import annotations

import asyncio

import math
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Iterator, Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.services import generation as service
from backend.api import grammar, tools
from backend.api.auth import ApiAuth
from backend.api.checks import check_local_features, check_model
from backend.api.errors import ApiError, api_error, errors_about
from backend.api.route import api_router
from backend.api.schemas import ChatCompletionRequest
from backend.api.shapes import Completion, openai_finish
from backend.api.streaming import SSE_HEADERS, Pumps, answer, merged, sse_line
from backend.core.json_types import JSONOutputObject
from backend.core.registry import Registry
from backend.core.types import Delta, Event, Final, GenerationParams, TokenChoice

NEG_INF = -9999.0  # JSON has no -Infinity; vLLM answers this for a token of probability 0
SEED_LIMIT = 2**63  # GenerationParams' seed range


def chat_routes(registry: Registry, auth: ApiAuth) -> APIRouter:
    router = api_router(auth)

    @router.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        completion = Completion("chat", body.model, body.include_usage)
        check_model(registry, body.model, "chat")
        with errors_about("messages", body.api_names):
            params = body.params(registry.spec(body.model).default_params())
            if body.response_format is not None:  # structured output: decoding follows the schema's grammar
                params = params.with_overrides(grammar=await grammar.schema_grammar(body.response_format))
        await check_local_features(registry, body.model, params, logprobs=body.logprobs)
        if body.uses_tools:  # tools on offer, tool calls or results in the history
            return await tools.complete(request, registry, body, params)
        if not body.plain:  # n > 1, logprobs
            return await complete(request, registry, body, params)
        message, history = body.conversation()
        with errors_about("messages", body.api_names):
            # Validation of the input happens here, before any model is touched.
            # Starting a stream tokenizes and fits the history (and may load the model): off the event loop.
            events = await asyncio.to_thread(service.stream_chat, registry, body.model, message, history, params)
        return await answer(request, events, completion, body.stream)

    return router


def _logprob(probability: float) -> float:
    return math.log(probability) if probability > 0 else NEG_INF


def token_entry(token: TokenChoice, top: int) -> JSONOutputObject:
    """One generated token in OpenAI's chat logprobs shape."""
    return {"token": token.token, "logprob": _logprob(token.probability), "bytes": list(token.token.encode()),
            "top_logprobs": [{"token": alternative.token, "logprob": _logprob(alternative.probability),
                              "bytes": list(alternative.token.encode())} for alternative in token.alternatives[:top]]}


@dataclass
class ChatChoice:
    index: int
    text: str = ""
    content: list[JSONOutputObject] = field(default_factory=list)
    final: Optional[Final] = None


class ChatChoices:
    """Starts and assembles the choices of one chat request."""

    def __init__(self, registry: Registry, body: ChatCompletionRequest, params: GenerationParams) -> None:
        self.registry = registry
        self.body = body
        self.params = params
        self.top = body.top_logprobs or 0
        self.choices = [ChatChoice(index) for index in range(body.choices)]
        self.completion = Completion("chat", body.model, body.include_usage)

    def streams(self) -> list[Iterator[Event]]:
        message, history = self.body.conversation()
        started = []
        with errors_about("messages", self.body.api_names):
            for choice in self.choices:
                params = self.params
                if params.seed is not None and choice.index:
                    params = replace(params, seed=(params.seed + choice.index) % SEED_LIMIT)
                started.append(service.stream_chat(self.registry, self.body.model, message, history, params))
        return started

    def take(self, choice: ChatChoice, value: object) -> list[JSONOutputObject]:
        """Applies one backend event; returns its tokens' logprobs entries (when asked for)."""
        if isinstance(value, Final):
            choice.final = value
            return []
        if not isinstance(value, Delta):
            return []
        choice.text += value.text
        entries = [token_entry(token, self.top) for token in value.choices] if self.body.logprobs else []
        choice.content.extend(entries)
        return entries

    def usage(self) -> dict[str, int]:
        finals = [choice.final for choice in self.choices if choice.final is not None]
        prompt = finals[0].stats.prompt_tokens if finals else 0  # one prompt, whatever n
        generated = sum(final.stats.generated_tokens for final in finals)
        return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}

    def response(self) -> JSONOutputObject:
        choices: list[JSONOutputObject] = []
        for choice in self.choices:
            assert choice.final is not None
            choices.append({"index": choice.index, "message": {"role": "assistant", "content": choice.text},
                            "logprobs": {"content": choice.content} if self.body.logprobs else None,
                            "finish_reason": openai_finish(choice.final)})
        return {"id": self.completion.id, "object": "chat.completion", "created": self.completion.created,
                "model": self.body.model, "system_fingerprint": None, "choices": choices, "usage": self.usage()}

    def chunk(self, index: int, delta: dict[str, str], logprobs: Optional[list[JSONOutputObject]] = None,
              finish: Optional[str] = None) -> JSONOutputObject:
        return {"id": self.completion.id, "object": "chat.completion.chunk", "created": self.completion.created,
                "model": self.body.model, "system_fingerprint": None,
                "choices": [{"index": index, "delta": delta,
                             "logprobs": {"content": logprobs} if logprobs is not None else None,
                             "finish_reason": finish}]}


async def complete(request: Request, registry: Registry, body: ChatCompletionRequest,
                   params: GenerationParams) -> Response:
    """Answers a chat request with several choices or logprobs."""
    plan = ChatChoices(registry, body, params)
    pumps = Pumps(request, await asyncio.to_thread(plan.streams))  # each start tokenizes: off the event loop
    if body.stream:
        return StreamingResponse(_stream(plan, pumps), media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        async for index, _, value in merged(pumps.pumps):
            if isinstance(value, Exception):  # kind "error"
                raise api_error(value, input_field="messages", names=body.api_names)
            plan.take(plan.choices[index], value)
    finally:
        pumps.stop()
    if any(choice.final is None for choice in plan.choices):
        raise ApiError(500, "generation ended without a result", kind="server_error")
    return JSONResponse(plan.response())


async def _stream(plan: ChatChoices, pumps: Pumps) -> AsyncIterator[str]:
    try:
        for choice in plan.choices:
            yield sse_line(plan.chunk(choice.index, {"role": "assistant", "content": ""}))
        async for index, _, value in merged(pumps.pumps):
            choice = plan.choices[index]
            if isinstance(value, Exception):  # kind "error"
                yield sse_line(api_error(value, input_field="messages").body())
                return
            entries = plan.take(choice, value)
            if isinstance(value, Final):
                yield sse_line(plan.chunk(index, {}, finish=openai_finish(value)))
            elif isinstance(value, Delta) and (value.text or entries):
                yield sse_line(plan.chunk(index, {"content": value.text} if value.text else {},
                                          entries if plan.body.logprobs else None))
        if plan.completion.include_usage:
            yield sse_line({"id": plan.completion.id, "object": "chat.completion.chunk",
                            "created": plan.completion.created, "model": plan.body.model,
                            "system_fingerprint": None, "choices": [], "usage": plan.usage()})
        yield "data: [DONE]\n\n"
    finally:
        pumps.stop()
