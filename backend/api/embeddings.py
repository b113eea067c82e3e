"""OpenAI-compatible `POST /v1/embeddings` for the registry's `embed` models.

Request: `model`, `input` (a string or a list of strings), `encoding_format` (`float`, or `base64`: little-endian
float32 bytes, what the `openai` client asks for by default), `dimensions` (accepted only when it equals the
model's own size: these models cannot shorten their vectors), `user` (ignored). Response: OpenAI's shape, with
`usage.prompt_tokens` / `total_tokens` counted by the model's tokenizer. Errors, auth and the login throttle are
the API's (backend/api/route.py).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Optional, Union

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from backend.api.auth import ApiAuth
from backend.api.errors import ApiError, errors_about, invalid
from backend.api.route import api_router, json_response
from backend.core.json_types import JSONOutput
from backend.core.registry import Registry
from backend.tasks import service


def _dimensions(value: object) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise invalid("must be a positive whole number")
    return value


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True, protected_namespaces=())

    # Each checked (and given its type) by its validator below, the default included: a missing one is named.
    model: str = Field(None, validate_default=True)
    input: list[str] = Field(None, validate_default=True)
    encoding_format: str = Field(None, validate_default=True)
    dimensions: Annotated[Optional[int], BeforeValidator(_dimensions)] = None

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise invalid("required; the id of an embed model (GET /v1/models lists them)")
        return value

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: object) -> list[str]:
        if isinstance(value, list) and value and (all(isinstance(item, int) for item in value)
                                                  or all(isinstance(item, list) for item in value)):
            raise invalid("token arrays are not supported; send a string or a list of strings")
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
            raise invalid("must be a string or a list of strings")
        return value

    @field_validator("encoding_format", mode="before")
    @classmethod
    def _encoding(cls, value: object) -> str:
        if value in (None, ""):
            return "float"
        if value not in ("float", "base64"):
            raise invalid(f"'float' or 'base64', got {value!r}")
        return value


def embeddings_routes(registry: Registry, auth: ApiAuth) -> APIRouter:
    router = api_router(auth)

    @router.post("/embeddings")
    async def embeddings(body: EmbeddingRequest) -> Response:
        registry.spec(body.model, "embed")  # 404 unknown, 400 not an embed model
        with errors_about("input"):
            service.check_texts("input", body.input)  # before the model loads
            result = await asyncio.to_thread(service.embed_texts, registry, body.model, body.input)
        if body.dimensions is not None and body.dimensions != result.dimensions:
            raise ApiError(400, f"dimensions: model '{body.model}' returns {result.dimensions}-dimensional vectors "
                           f"and cannot shorten them; omit 'dimensions' or pass {result.dimensions}",
                           param="dimensions", code="unsupported_dimensions")
        data: list[JSONOutput] = [
            {"object": "embedding", "index": index, "embedding": _encode(vector, body.encoding_format)}
            for index, vector in enumerate(result.vectors)]
        used = sum(result.tokens)
        return await json_response({"object": "list", "data": data, "model": body.model,  # encoded off the loop
                                    "usage": {"prompt_tokens": used, "total_tokens": used}})

    return router


def _encode(vector: list[float], encoding: str) -> Union[str, list[float]]:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector
