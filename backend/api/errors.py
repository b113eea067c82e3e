"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, and the one place they are made.

`api_error(error)` maps any exception to an `ApiError`: the backend's typed errors by their class (status, type)
and their `field` (the API's `param`); anything else is a 500. `backend/api/route.py`'s `ApiRoute` calls it for
every route, so no route repeats a try/except. Request validation errors (pydantic's) become field-named 400s
through `from_validation`; the request models raise `invalid(...)` for the wording they want.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional, Sequence

from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError

from backend.core.error_codes import refuse_as
from backend.core.json_types import JSONObject
from backend.guard.security import redact
from backend.core.types import (
    BusyError,
    ContextOverflowError,
    GenerationError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedTaskError,
    WorkbenchError,
)

# Our parameter names as the API calls them, for error messages (`max_tokens` unless the request sent
# `max_completion_tokens`: see `api_names`).
API_NAMES = {"max_new_tokens": "max_tokens"}
# Backend fields that are the request's input text, whatever the route calls it (`messages`, `prompt`, `input`).
_INPUT_FIELDS = frozenset({"message", "messages", "system_prompt", "prompt", "text", "history"})


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None,
                 headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> JSONObject:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        if self.status == 429:
            headers.setdefault("Retry-After", "1")  # OpenAI clients wait this long, then retry on their own
        return JSONResponse(self.body(), status_code=self.status, headers=headers or None)


def bad_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> ApiError:
    """A 400 about one field; `message` already starts with the field's name."""
    return ApiError(400, message, param=param, code=code)


def api_error(error: BaseException, param: Optional[str] = None, input_field: str = "messages",
              names: Optional[dict[str, str]] = None) -> ApiError:
    """Maps the backend's typed errors to HTTP statuses and OpenAI error types; `param` is the error's `field`.

    `input_field` is the request field that carries the text (`messages`, `prompt` or `input`), named by errors
    about it; `names` maps the backend's parameter names to the API's (default `API_NAMES`).
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
        if error.code and error.field in names:  # "max_new_tokens: must be ..." is about max_tokens: said again
            message = redact(refuse_as(error.code, error.field, error.params, shown=names[error.field]).args[0])
        return ApiError(400, message, param=param or api_param(error.field, input_field, names))
    if isinstance(error, BusyError):
        # A full model queue is a "try again shortly", not a server fault: 429 with Retry-After.
        return ApiError(429, message, kind="rate_limit_error", code="model_busy")
    if isinstance(error, ModelLoadError):
        return ApiError(503, message, kind="server_error", code="model_unavailable")
    if isinstance(error, GenerationError):
        return ApiError(500, message, kind="server_error", code="generation_failed")
    if isinstance(error, WorkbenchError):
        return ApiError(500, message, kind="server_error")
    return ApiError(500, f"internal error: {type(error).__name__}: {message}", kind="server_error")


def api_param(field: Optional[str], input_field: str, names: Mapping[str, str] = API_NAMES) -> Optional[str]:
    """The API's `param` for a backend error's `field`: the input's fields ('message', 'history[3]', 'prompt')
    are the route's `input_field`; parameters take their API names (max_new_tokens -> max_tokens)."""
    if not field:
        return None
    if re.split(r"[\[. ]", field, maxsplit=1)[0] in _INPUT_FIELDS:
        return input_field
    return names.get(field, field if " " not in field else None)


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


def from_validation(errors: Sequence[Mapping[str, object]]) -> ApiError:
    """The first validation error (pydantic's error details), as OpenAI's field-named 400."""
    if not errors:
        return bad_request("the request is invalid")
    first = errors[0]
    where_found = first.get("loc", ())
    loc = list(where_found) if isinstance(where_found, (list, tuple)) else []
    kind = first.get("type")
    if loc[:1] in (["body"], ["query"], ["path"]):  # where FastAPI found it; the field's name is enough
        loc = loc[1:]
    if kind == "json_invalid" or (kind == "missing" and not loc):
        return bad_request("the request body must be JSON (Content-Type: application/json)")
    if not loc and kind in ("model_attributes_type", "model_type", "dict_type"):
        return bad_request("the request body must be a JSON object")
    path = field_path(loc)
    if kind == "workbench":
        ctx = first.get("ctx")
        context = ctx if isinstance(ctx, dict) else {}  # what `invalid(...)` put there: text or None
        own = path + (_text(context.get("suffix")) or "")
        where = _text(context.get("where"), own)
        param = _text(context.get("param"), own)
        text = _text(context.get("message")) or ""
        return bad_request(f"{where}: {text}" if where else text, param=param or None)
    return bad_request(f"{path}: {first.get('msg', 'is invalid')}", param=path or None)


def _text(value: object, otherwise: Optional[str] = None) -> Optional[str]:
    """A context value of `invalid(...)` (text, or None for "not given": then `otherwise`)."""
    return value if isinstance(value, str) else otherwise


def field_path(loc: Sequence[object]) -> str:
    """('messages', 0, 'role') -> 'messages[0].role'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
