"""OpenAI-compatible `POST /v1/embeddings` for the registry's `embed` models, beside the chat routes.

Request: `model`, `input` (a string or a list of strings), `encoding_format` (`float`, or `base64`: little-endian
float32 bytes, what the `openai` client asks for by default), `dimensions` (accepted only when it equals the
model's own size: these models cannot shorten their vectors), `user` (ignored). Response: OpenAI's shape, with
`usage.prompt_tokens` / `total_tokens` counted by the model's tokenizer. Errors use OpenAI's shape and statuses
(400 naming the field, 401, 404 unknown model, 429 busy, 503 cannot load) through backend.openai_api's ApiError.
The same auth checks as /v1/chat/completions are passed in by app.py.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from typing import Any, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from backend.openai_api import ApiError, BasicCheck, TokenCheck
from backend.registry import Registry
from backend.security import decode_basic, redact
from backend.tasks import service
from backend.types import (
    BusyError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedTaskError,
    WorkbenchError,
)

MAX_BODY_BYTES = 8 * 1024 * 1024


def add_embeddings_route(app: FastAPI, registry: Registry, *, prefix: str = "/v1",
                         check_token: Optional[TokenCheck] = None, check_basic: Optional[BasicCheck] = None) -> None:
    """Adds `POST {prefix}/embeddings` to `app`."""

    async def authorise(request: Request) -> None:
        if check_token is None and check_basic is None:
            return
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic " and check_basic is not None:
            credentials = decode_basic(header[6:])
            allowed: Any = credentials is not None and check_basic(*credentials)
        else:
            token = header[7:].strip() if header[:7].lower() == "bearer " else None
            allowed = check_token(token) if check_token is not None else False
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            raise ApiError(401, "invalid or missing API key: send it as 'Authorization: Bearer <key>'",
                           kind="authentication_error", code="invalid_api_key")

    async def embeddings(request: Request) -> Response:
        try:
            await authorise(request)
            body = await _json_body(request)
            model, texts, encoding, dimensions = _parse(body, registry)
            result = await asyncio.to_thread(service.embed_texts, registry, model, texts)
            if dimensions is not None and dimensions != result.dimensions:
                raise ApiError(400, f"dimensions: model '{model}' returns {result.dimensions}-dimensional vectors "
                               "and cannot shorten them; omit 'dimensions' or pass "
                               f"{result.dimensions}", param="dimensions", code="unsupported_dimensions")
        except ApiError as error:
            return error.response()
        except Exception as error:  # noqa: BLE001 - typed errors map to 4xx/5xx, anything else to a 500
            return _error(error).response()
        data = [{"object": "embedding", "index": index, "embedding": _encode(vector, encoding)}
                for index, vector in enumerate(result.vectors)]
        tokens = sum(result.tokens)
        return JSONResponse({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    app.add_api_route(f"{prefix}/embeddings", embeddings, methods=["POST"])


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES // 1024**2} MB", code="request_too_large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _parse(body: dict[str, Any], registry: Registry) -> tuple[str, list[str], str, Optional[int]]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: required; the id of an embed model (GET /v1/models lists them)", param="model")
    registry.spec(model, "embed")
    texts = body.get("input")
    if isinstance(texts, list) and texts and all(isinstance(item, int) for item in texts) or (
            isinstance(texts, list) and texts and all(isinstance(item, list) for item in texts)):
        raise ApiError(400, "input: token arrays are not supported; send a string or a list of strings",
                       param="input")
    if not isinstance(texts, (str, list)) or (isinstance(texts, list) and not all(isinstance(t, str) for t in texts)):
        raise ApiError(400, "input: must be a string or a list of strings", param="input")
    encoding = body.get("encoding_format", "float") or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(400, f"encoding_format: 'float' or 'base64', got {encoding!r}", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise ApiError(400, "dimensions: must be a positive whole number", param="dimensions")
    service.check_texts("input", texts)  # before the model loads
    return model, ([texts] if isinstance(texts, str) else texts), encoding, dimensions


def _encode(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def _error(error: BaseException) -> ApiError:
    message = redact(str(error))
    if isinstance(error, ModelNotFoundError):
        return ApiError(404, message, param="model", code="model_not_found")
    if isinstance(error, UnsupportedTaskError):
        return ApiError(400, message, param="model", code="unsupported_task")
    if isinstance(error, InvalidInputError):
        name = message.split(":", 1)[0].split("[", 1)[0] if ":" in message else None
        return ApiError(400, message, param=name if name in ("input", "model", "batch_size") else "input")
    if isinstance(error, BusyError):
        return ApiError(429, message, kind="rate_limit_error", code="model_busy")
    if isinstance(error, ModelLoadError):
        return ApiError(503, message, kind="server_error", code="model_unavailable")
    if isinstance(error, WorkbenchError):
        return ApiError(500, message, kind="server_error")
    return ApiError(500, f"internal error: {type(error).__name__}: {message}", kind="server_error")
