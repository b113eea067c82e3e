"""vLLM's tokenizer routes, at the server's root: `POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info`.

Clients that count tokens use them (lm-evaluation-harness's `local-completions` checks `/tokenizer_info` and
`/tokenize` to tokenize with the server's own tokenizer when the model id is not a Hub repo). `model` names a
registry model; it may be left out when the registry has exactly one local language model (vLLM serves one).
"""

from __future__ import annotations

import asyncio
from typing import Optional

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.services import tokens
from backend.api.auth import ApiAuth
from backend.api.errors import ApiError, errors_about, invalid
from backend.api.messages import ChatMessage
from backend.api.route import api_router, json_response
from backend.api.schemas import Flag
from backend.core.registry import Registry


class _ModelField(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=(), validate_default=True)

    model: Optional[str] = None


class TokenizeRequest(_ModelField):
    prompt: Optional[str] = None
    messages: Optional[list[ChatMessage]] = None
    add_special_tokens: Optional[Flag] = None  # default: True for a prompt, False for messages (as vLLM)
    add_generation_prompt: Flag = True

    @field_validator("prompt", mode="before")
    @classmethod
    def _text(cls, value: object) -> Optional[str]:
        if value is None or isinstance(value, str):
            return value
        raise invalid("must be a string")


class DetokenizeRequest(_ModelField):
    tokens: list[int] = Field(None, validate_default=True)  # None: refused by `_ids` as missing

    @field_validator("tokens", mode="before")
    @classmethod
    def _ids(cls, value: object) -> list[int]:
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise invalid("required; give a list of token ids (whole numbers)")
        return value


def default_model(registry: Registry, model: Optional[str]) -> str:
    """`model`, or the registry's only local language model."""
    if model:
        registry.spec(model)  # unknown: 404
        return model
    local = [spec.id for spec in registry.specs()
             if spec.backend == "transformers" and {"chat", "generate"} & set(spec.tasks)]
    if len(local) == 1:
        return local[0]
    raise ApiError(400, f"model: required; this server has {len(local)} local language models "
                   f"({', '.join(local) or 'none'}): name one", param="model")


def tokenizer_routes(registry: Registry, auth: ApiAuth) -> APIRouter:
    """The three routes, mounted at the server's root (not under /v1), behind the API's auth and throttle."""
    router = api_router(auth)

    # json_response: the body is encoded in a worker thread (a plain dict would go through FastAPI's
    # jsonable_encoder, pure Python on the event loop: 7 s for the ids of a 4 MB conversation; a JSONResponse
    # encodes on the loop too: 0.22 CPU-s for those 1.8 million ids).
    @router.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> Response:
        model = default_model(registry, body.model)
        if (body.prompt is None) == (body.messages is None):
            raise ApiError(400, "prompt: give either 'prompt' (text) or 'messages' (a chat)", param="prompt")
        if body.messages is not None:
            messages = [{"role": m.role, "content": m.content} for m in body.messages]
            with errors_about("messages"):
                ids = await asyncio.to_thread(tokens.tokenize_chat, registry, model, messages,
                                              body.add_generation_prompt, bool(body.add_special_tokens))
        else:
            special = True if body.add_special_tokens is None else body.add_special_tokens
            with errors_about("prompt"):
                ids = await asyncio.to_thread(tokens.tokenize, registry, model, body.prompt or "", special)
        return await json_response({"count": len(ids), "max_model_len": registry.status_of(model).max_context,
                                    "tokens": ids})

    @router.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> JSONResponse:
        model = default_model(registry, body.model)
        with errors_about("tokens"):  # an id outside the vocabulary names the field
            text = await asyncio.to_thread(tokens.detokenize, registry, model, body.tokens)
        return JSONResponse({"prompt": text})

    @router.get("/tokenizer_info")
    async def tokenizer_info(model: Optional[str] = None) -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(tokens.tokenizer_info, registry, default_model(registry, model)))

    return router
