"""The routes: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`, `POST /v1/completions`,
and vLLM's tokenizer routes at the root (backend/openai_api/tokenizer.py).

`add_openai_routes(app, registry, ...)` mounts them on any FastAPI app, Gradio's included, so the API and the UI
share one server and one registry (one copy of each model in memory). Requests go through
`backend.service.stream_chat` / `stream_generate`, so they get the same validation, leases and context handling
as the UI.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from backend import service, tokens
from backend.openai_api import chat, completions, tools
from backend.openai_api.auth import ApiAuth, BasicCheck, TokenCheck
from backend.openai_api.errors import ApiError, ApiRoute, errors_about
from backend.openai_api.responses import Completion, Kind
from backend.openai_api.schemas import ChatCompletionRequest, CompletionRequest
from backend.openai_api.streaming import answer
from backend.openai_api.tokenizer import tokenizer_router
from backend.registry import Registry
from backend.security import redact
from backend.types import GenerationParams, UnsupportedTaskError

OWNER = "llm-workbench"
# Each kind of completion request: the model task it needs, and its route (for hints).
TASKS: dict[Kind, str] = {"chat": "chat", "text": "generate"}
ROUTES: dict[Kind, str] = {"chat": "POST /v1/chat/completions", "text": "POST /v1/completions"}

# A module that adds routes beside these (embeddings, feedback) gives a factory: (registry, auth) -> APIRouter,
# made with `api_router(auth)`; `add_openai_routes(..., extra_routers=[factory])` mounts it under the same prefix.
RouterFactory = Callable[[Registry, ApiAuth], APIRouter]


def add_openai_routes(
    app: FastAPI,
    registry: Registry,
    *,
    prefix: str = "/v1",
    check_token: Optional[TokenCheck] = None,
    check_basic: Optional[BasicCheck] = None,
    extra_routers: Sequence[RouterFactory] = (),
) -> ApiAuth:
    """Adds `{prefix}/models`, `{prefix}/models/{model_id}`, `{prefix}/chat/completions` and
    `{prefix}/completions` (and the routes of `extra_routers`) to `app`; returns the auth dependency they share.

    `check_token` is the seam for shared authentication: when given, every request's bearer token is passed to it
    and a False answer gives 401. `check_basic(user, password)` does the same for `Authorization: Basic ...`
    (the UI's users; see backend/security.py). Without either the API is open, like the UI is without `auth`.
    """
    auth = ApiAuth(check_token, check_basic)
    for router in [openai_router(registry, auth), *(factory(registry, auth) for factory in extra_routers)]:
        app.include_router(router, prefix=prefix)
    app.include_router(tokenizer_router(registry, auth))  # at the root, where vLLM serves them
    return auth


def api_router(auth: ApiAuth) -> APIRouter:
    """An empty router for API routes: OpenAI-shaped errors from every route (ApiRoute), `auth` before each.
    The auth dependency sits on the routes themselves (not on `include_router`), where ApiRoute can see it."""
    return APIRouter(route_class=ApiRoute, dependencies=[Depends(auth)])


def openai_router(registry: Registry, auth: ApiAuth) -> APIRouter:
    """The API's own routes over `registry`, behind `auth`, without a prefix."""
    router = api_router(auth)
    created = int(time.time())

    def model_card(model_id: str) -> dict[str, Any]:
        spec = registry.spec(model_id)
        return {
            "id": spec.id,
            "object": "model",
            "created": created,
            "owned_by": OWNER,
            # Extensions, so a client can tell what each entry does without the UI.
            "name": spec.display_name,
            "tasks": list(spec.tasks),
            "backend": spec.backend,
            "state": registry.status_of(spec.id).state,
            "max_context": spec.max_context,
        }

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(spec.id) for spec in registry.specs()]}

    @router.get("/models/{model_id}")
    async def get_model(model_id: str) -> dict[str, Any]:
        return model_card(model_id)

    @router.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        completion = Completion("chat", body.model, body.include_usage)
        check_model(registry, body.model, "chat")
        with errors_about("messages", body.api_names):
            params = body.params(registry.spec(body.model).default_params())
        await check_local_features(registry, body.model, params, logprobs=body.logprobs)
        if body.uses_tools:  # tools on offer, tool calls or results in the history
            return await tools.complete(request, registry, body, params)
        if not body.plain:  # n > 1, logprobs
            return await chat.complete(request, registry, body, params)
        message, history = body.conversation()
        with errors_about("messages", body.api_names):
            # Validation of the input happens here, before any model is touched.
            events = service.stream_chat(registry, body.model, message, history, params)
        return await answer(request, events, completion, body.stream)

    @router.post("/completions")
    async def text_completions(body: CompletionRequest, request: Request) -> Response:
        completion = Completion("text", body.model, body.include_usage)
        check_model(registry, body.model, "text")
        with errors_about("prompt", body.api_names):
            params = body.params(registry.spec(body.model).default_params())
        await check_local_features(registry, body.model, params, logprobs=False)
        with errors_about("prompt", body.api_names):
            if not body.plain:  # several prompts, token ids, echo, logprobs, max_tokens 0
                return await completions.complete(request, registry, body, params)
            events = service.stream_generate(registry, body.model, body.prompt[0], params)
        return await answer(request, events, completion, body.stream)

    return router


async def check_local_features(registry: Registry, model: str, params: GenerationParams, logprobs: bool) -> None:
    """Fields only a model loaded in this app can honour are refused by name for a remote one (never ignored;
    the penalties and logit_bias go through to the remote server); logit_bias token ids must be the model's."""
    if registry.spec(model).backend != "transformers":
        used = [name for name, on in (("logprobs", logprobs), ("response_format", params.grammar is not None)) if on]
        if used:
            raise ApiError(400, f"{used[0]}: not available for model '{model}', which runs on a remote server "
                           "(only models loaded in this app support it)", param=used[0])
        return
    if params.logit_bias:
        with errors_about("prompt"):
            vocabulary = (await asyncio.to_thread(tokens.tokenizer_info, registry, model))["vocab_size"]
        outside = [token for token, _ in params.logit_bias if token >= vocabulary]
        if outside:
            raise ApiError(400, f"logit_bias: token id {outside[0]} is not in model '{model}''s vocabulary "
                           f"(0 to {vocabulary - 1})", param="logit_bias")


def check_model(registry: Registry, model: str, kind: Kind) -> None:
    """Unknown model: 404 (ModelNotFoundError); a model without the task: 400 naming the route that serves it."""
    try:
        registry.spec(model, TASKS[kind])  # type: ignore[arg-type]
    except UnsupportedTaskError as error:
        other = next((other for other, task in TASKS.items()
                      if other != kind and task in registry.spec(model).tasks), None)
        hint = f"; it can be used with {ROUTES[other]}" if other else ""
        raise ApiError(400, f"{redact(str(error))}{hint}", param="model", code="unsupported_task") from None
