"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, and the one place they are made.

`ApiRoute` is the router's route class: every route built with it (ours, and any other module's router that
uses it) answers any exception with `api_error(...)`'s mapping, so no route repeats a try/except. Request
validation errors (pydantic's, and FastAPI's "body is not JSON") become field-named 400s through
`from_validation`; the request models raise `invalid(...)` for the wording they want.

Public, for other modules that add routes beside these (embeddings, feedback): `ApiError`, `api_error`,
`errors_about`, `invalid`, `ApiRoute`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Coroutine, Iterator, Optional, Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic_core import PydanticCustomError

from backend.security import redact
from backend.types import (
    BusyError,
    ContextOverflowError,
    GenerationError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedTaskError,
)

# Our parameter names as the API calls them, for error messages (`max_tokens` unless the request sent
# `max_completion_tokens`: see `api_names`).
API_NAMES = {"max_new_tokens": "max_tokens"}


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        if self.status == 429:
            headers = {"Retry-After": "1"}  # OpenAI clients wait this long, then retry on their own
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def bad_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> ApiError:
    """A 400 about one field; `message` already starts with the field's name."""
    return ApiError(400, message, param=param, code=code)


def api_error(error: BaseException, param: Optional[str] = None, input_field: str = "messages",
              names: Optional[dict[str, str]] = None) -> ApiError:
    """Maps the backend's typed errors to HTTP statuses and OpenAI error types.

    `input_field` is the request field that carries the text (`messages` or `prompt`), named by errors about it;
    `names` maps the backend's parameter names to the API's (default `API_NAMES`).
    """
    if isinstance(error, ApiError):
        return error
    message = redact(str(error))  # a remote server's error may quote the API key it was sent
    if isinstance(error, ModelNotFoundError):
        return ApiError(404, message, param="model", code="model_not_found")
    if isinstance(error, UnsupportedTaskError):
        return ApiError(400, message, param="model", code="unsupported_task")
    if isinstance(error, ContextOverflowError):
        return ApiError(400, message, param=input_field, code="context_length_exceeded")
    if isinstance(error, InvalidInputError):
        names = names or API_NAMES
        name = message.split(":", 1)[0] if ":" in message else None
        if name in names:  # "max_new_tokens: must be ..." is about the API's max_tokens
            message = names[name] + message[len(name):]
        return ApiError(400, message, param=param or _param_from(name, names, input_field))
    if isinstance(error, BusyError):
        # A full model queue is a "try again shortly", not a server fault: 429 with Retry-After.
        return ApiError(429, message, kind="rate_limit_error", code="model_busy")
    if isinstance(error, ModelLoadError):
        return ApiError(503, message, kind="server_error", code="model_unavailable")
    if isinstance(error, GenerationError):
        return ApiError(500, message, kind="server_error", code="generation_failed")
    return ApiError(500, f"internal error: {type(error).__name__}: {message}", kind="server_error")


def _param_from(name: Optional[str], names: dict[str, str], input_field: str) -> Optional[str]:
    """The API field an InvalidInputError from the service is about ('message' / 'history item 3' → messages)."""
    if not name:
        return None
    if name in ("message", "system_prompt") or name.startswith("history"):
        return "messages"
    if name in ("prompt", "text"):
        return input_field
    return names.get(name, name if " " not in name else None)


@contextmanager
def errors_about(input_field: str, names: Optional[dict[str, str]] = None) -> Iterator[None]:
    """Turns any error raised inside into an ApiError that names `input_field` where the input is at fault."""
    try:
        yield
    except ApiError:
        raise
    except Exception as error:  # noqa: BLE001 - typed errors map to 4xx/5xx, anything else to a 500
        raise api_error(error, input_field=input_field, names=names) from error


def invalid(message: str, suffix: str = "", where: Optional[str] = None,
            param: Optional[str] = None) -> PydanticCustomError:
    """An error for a request model's validator to raise, in our words.

    The answer reads "<where>: <message>" with `param: <param>`; both default to the field's own path
    (`messages[0].role`) plus `suffix` (e.g. `[2]`, for a part of the field)."""
    return PydanticCustomError("workbench", "{message}",
                               {"message": message, "suffix": suffix, "where": where, "param": param})


def from_validation(errors: Sequence[Any]) -> ApiError:
    """The first validation error, as OpenAI's field-named 400."""
    if not errors:
        return bad_request("the request is invalid")
    first = errors[0]
    loc = list(first.get("loc", ()))
    kind = first.get("type")
    if loc[:1] == ["body"]:
        loc = loc[1:]
    if kind == "json_invalid" or (kind == "missing" and not loc):
        return bad_request("the request body must be JSON (Content-Type: application/json)")
    if not loc and kind in ("model_attributes_type", "model_type", "dict_type"):
        return bad_request("the request body must be a JSON object")
    path = field_path(loc)
    if kind == "workbench":
        context = first.get("ctx") or {}
        own = path + (context.get("suffix") or "")
        where = context.get("where") if context.get("where") is not None else own
        param = context.get("param") if context.get("param") is not None else own
        text = context.get("message", "")
        return bad_request(f"{where}: {text}" if where else text, param=param or None)
    return bad_request(f"{path}: {first.get('msg', 'is invalid')}", param=path or None)


def field_path(loc: Sequence[Any]) -> str:
    """('messages', 0, 'role') -> 'messages[0].role'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


class ApiRoute(APIRoute):
    """The route class of the API's routers: one exception handler for every route.

    Works on an app that is already serving (Gradio's, once launched), unlike `app.exception_handler`, whose
    handlers Starlette fixes when it builds the middleware stack on the first request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                try:
                    # FastAPI reads the body before the dependencies: a client that may not use the API hears
                    # that (401) before anything about its body.
                    await self._authorise(request)
                except ApiError as refused:
                    return refused.response()
                return from_validation(error.errors()).response()
            except Exception as error:  # noqa: BLE001 - every failure answers in OpenAI's shape
                return api_error(error).response()

        return handle

    async def _authorise(self, request: Request) -> None:
        from backend.openai_api.auth import ApiAuth  # auth builds on this module

        for depends in self.dependencies:
            if isinstance(depends.dependency, ApiAuth):
                await depends.dependency(request)
