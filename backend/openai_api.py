"""The app's own OpenAI-compatible API over its registry: `GET /v1/models`, `GET /v1/models/{id}`,
`POST /v1/chat/completions` (chat models) and `POST /v1/completions` (the legacy text-completion API, for models
with the `generate` task): streaming SSE and plain JSON, OpenAI response shapes with `usage`.

`add_openai_routes(app, registry)` adds the routes to any FastAPI app, Gradio's included, so the API and the UI
share one server and one registry (one copy of each model in memory). Requests go through
`backend.service.stream_chat` / `stream_generate`, so they get the same validation, leases and context handling as
the UI. Both completion routes share one request handler, one parser for the common fields, one streaming pump
and one response builder (`_Completion`, which knows the two shapes).

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 400 for bad input (naming the
field), 401 when the optional token check refuses, 404 for an unknown model, 429 (with Retry-After) when the
model's queue is full, 503 when the model cannot be loaded, 500 when generation fails. A client that disconnects
closes the backend stream, which stops generation.

Extensions beyond OpenAI's fields: `top_k` and `repetition_penalty` in requests, and the workbench's own
statistics (time to first token, tokens/s, notices) under `"workbench"` in the last chunk / the response.
FastAPI is the only web import here; gradio is not needed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Literal, Optional, Union

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend import service
from backend.registry import Registry
from backend.security import decode_basic, redact
from backend.types import (
    BusyError,
    ContextOverflowError,
    Delta,
    Final,
    GenerationError,
    GenerationParams,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedTaskError,
    normalise_stop,
)

# The auth seam: given the bearer token of a request (None when it sends none), say whether it may use the API.
TokenCheck = Callable[[Optional[str]], Union[bool, Awaitable[bool]]]
# The same for HTTP basic auth: (user, password) -> allowed.
BasicCheck = Callable[[str, str], bool]

OWNER = "llm-workbench"
_API_NAMES = {"max_new_tokens": "max_tokens"}  # our parameter names as the API calls them, for error messages
# Each kind of completion request ("chat" or "text"): the model task it needs, and its route (for hints).
_TASKS = {"chat": "chat", "text": "generate"}
_ROUTES = {"chat": "POST /v1/chat/completions", "text": "POST /v1/completions"}
_UNSUPPORTED = {
    "tools": "tool calling is not supported",
    "functions": "function calling is not supported",
    "tool_choice": "tool calling is not supported",
    "function_call": "function calling is not supported",
    "audio": "audio output is not supported",
}


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


def add_openai_routes(
    app: FastAPI,
    registry: Registry,
    *,
    prefix: str = "/v1",
    check_token: Optional[TokenCheck] = None,
    check_basic: Optional[BasicCheck] = None,
) -> None:
    """Adds `{prefix}/models`, `{prefix}/models/{model_id}`, `{prefix}/chat/completions` and
    `{prefix}/completions` to `app`.

    `check_token` is the seam for shared authentication: when given, every request's bearer token is passed to it
    and a False answer gives 401. `check_basic(user, password)` does the same for `Authorization: Basic ...`
    (the UI's users; see backend/security.py). Without either the API is open, like the UI is without `auth`.
    """
    created = int(time.time())

    async def authorise(request: Request) -> None:
        if check_token is None and check_basic is None:
            return
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic " and check_basic is not None:
            credentials = decode_basic(header[6:])
            allowed = credentials is not None and check_basic(*credentials)
        else:
            token = header[7:].strip() if header[:7].lower() == "bearer " else None
            allowed = check_token(token) if check_token is not None else False
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            how = "'Authorization: Bearer <key>'" + (" or HTTP basic auth with a user of the app"
                                                    if check_basic is not None else "")
            raise ApiError(401, f"invalid or missing API key: send it as {how}",
                           kind="authentication_error", code="invalid_api_key")

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

    async def list_models(request: Request) -> Response:
        try:
            await authorise(request)
        except ApiError as error:
            return error.response()
        return JSONResponse({"object": "list", "data": [model_card(spec.id) for spec in registry.specs()]})

    async def get_model(request: Request, model_id: str) -> Response:
        try:
            await authorise(request)
            return JSONResponse(model_card(model_id))
        except ApiError as error:
            return error.response()
        except ModelNotFoundError as error:
            return _api_error(error, param="model").response()

    async def complete(request: Request, kind: _Kind) -> Response:
        """One handler for both completion routes: auth, parse, start, then stream or collect."""
        try:
            await authorise(request)
            body = await _json_body(request)
            parsed = _parse_request(body, registry, kind)
        except ApiError as error:
            return error.response()
        except Exception as error:  # noqa: BLE001 - typed errors map to 4xx/5xx, anything else to a 500
            return _api_error(error).response()
        try:
            # Validation of the input and parameters happens here, before any model is touched.
            events = parsed.start(registry)
        except Exception as error:  # noqa: BLE001
            return _api_error(error, input_field=parsed.input_field).response()
        pump = _Pump(events, asyncio.get_running_loop())
        watcher = asyncio.create_task(_watch_disconnect(request, pump))
        try:
            # The first event decides the status: a load failure is a 503, not an error inside a 200 stream.
            first = await pump.get()
        except BaseException:
            pump.stop()
            watcher.cancel()
            raise
        if first[0] == "error":
            watcher.cancel()
            return _api_error(first[1], input_field=parsed.input_field).response()
        completion = _Completion(parsed, first_event=first)
        if parsed.stream:
            return StreamingResponse(
                _sse(completion, pump, watcher),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            return await _collect(completion, pump)
        finally:
            pump.stop()
            watcher.cancel()

    async def chat_completions(request: Request) -> Response:
        return await complete(request, "chat")

    async def text_completions(request: Request) -> Response:
        return await complete(request, "text")

    app.add_api_route(f"{prefix}/models", list_models, methods=["GET"], include_in_schema=True)
    app.add_api_route(f"{prefix}/models/{{model_id}}", get_model, methods=["GET"])
    app.add_api_route(f"{prefix}/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route(f"{prefix}/completions", text_completions, methods=["POST"])


# ------------------------------------------------------------------------------------------ requests


_Kind = Literal["chat", "text"]


@dataclass
class _Request:
    """One parsed completion request: a chat (`message` after `history`) or a text completion of `prompt`."""

    kind: _Kind
    model: str
    params: GenerationParams
    stream: bool
    include_usage: bool
    message: str = ""
    history: list[dict[str, str]] = field(default_factory=list)
    prompt: str = ""

    @property
    def input_field(self) -> str:
        """The API field that carries the input, for errors about it (too long, empty, ...)."""
        return "messages" if self.kind == "chat" else "prompt"

    def start(self, registry: Registry) -> Iterator[Any]:
        if self.kind == "chat":
            return service.stream_chat(registry, self.model, self.message, self.history, self.params)
        return service.stream_generate(registry, self.model, self.prompt, self.params)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except Exception:  # noqa: BLE001 - any undecodable body is the client's mistake
        raise ApiError(400, "the request body must be JSON (Content-Type: application/json)") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _parse_request(body: dict[str, Any], registry: Registry, kind: _Kind) -> _Request:
    """The fields both completion APIs share (model, sampling, stop, stream, n, ...), then the kind's own input."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: required; give a model id from GET /v1/models", param="model")
    try:
        # ModelNotFoundError (404) / UnsupportedTaskError (400) before anything else.
        registry.spec(model, _TASKS[kind])
    except UnsupportedTaskError as error:
        other = next((other for other, task in _TASKS.items()
                      if other != kind and task in registry.spec(model).tasks), None)
        hint = f"; it can be used with {_ROUTES[other]}" if other else ""
        raise ApiError(400, f"{redact(str(error))}{hint}", param="model", code="unsupported_task") from None
    for name, why in _UNSUPPORTED.items():
        if body.get(name) not in (None, [], "none"):
            raise ApiError(400, f"{name}: {why} by this server", param=name)
    if body.get("n") not in (None, 1):
        raise ApiError(400, "n: only n=1 is supported", param="n")
    logprobs = body.get("logprobs")  # chat: a boolean; text: a number, where even 0 asks for some
    if logprobs is not None and logprobs is not False:
        raise ApiError(400, "logprobs: not supported by this server", param="logprobs")

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream: must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options: must be an object", param="stream_options")
    include_usage = bool(options.get("include_usage", False))

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    overrides = {
        "max_new_tokens": _number(body, "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens",
                                  max_tokens, whole=True),
        "temperature": _number(body, "temperature", body.get("temperature")),
        "top_p": _number(body, "top_p", body.get("top_p")),
        "top_k": _number(body, "top_k", body.get("top_k"), whole=True),
        "repetition_penalty": _number(body, "repetition_penalty", body.get("repetition_penalty")),
        "seed": _number(body, "seed", body.get("seed"), whole=True),
    }
    try:
        overrides["stop"] = normalise_stop(body.get("stop"))
        params = registry.spec(model).default_params().with_overrides(**overrides)
    except InvalidInputError as error:
        text = str(error)
        name = text.split(":", 1)[0]
        api_name = _API_NAMES.get(name, name)
        raise ApiError(400, api_name + text[len(name):], param=api_name) from None

    request = _Request(kind, model, params, stream, include_usage)
    if kind == "chat":
        _parse_chat_input(body, request)
    else:
        _parse_text_input(body, request)
    return request


def _parse_chat_input(body: dict[str, Any], request: _Request) -> None:
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise ApiError(400, "response_format: only {'type': 'text'} is supported", param="response_format")
    request.message, request.history = _parse_messages(body.get("messages"))


def _parse_text_input(body: dict[str, Any], request: _Request) -> None:
    if body.get("echo"):
        raise ApiError(400, "echo: not supported by this server (the completion never includes the prompt)",
                       param="echo")
    if body.get("suffix"):
        raise ApiError(400, "suffix: insertion (text after the completion) is not supported by this server",
                       param="suffix")
    if body.get("best_of") not in (None, 1):
        raise ApiError(400, "best_of: only best_of=1 is supported", param="best_of")
    request.prompt = _parse_prompt(body.get("prompt"))


def _parse_prompt(prompt: Any) -> str:
    """A string, or a list holding exactly one string (OpenAI's batch form, with a batch of one)."""
    if prompt is None:
        raise ApiError(400, "prompt: required; give the text to complete", param="prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise ApiError(400, f"prompt: one prompt per request is supported (a string, or a list of one string); "
                           f"got a list of {len(prompt)}", param="prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt: must be a string (token-id prompts are not supported)", param="prompt")
    return prompt


def _number(body: dict[str, Any], name: str, value: Any, whole: bool = False) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"{name}: must be a {'whole number' if whole else 'number'}, got {value!r}", param=name)
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise ApiError(400, f"{name}: must be a whole number, got {value!r}", param=name)
        return int(value)
    return float(value)


def _parse_messages(messages: Any) -> tuple[str, list[dict[str, str]]]:
    """(the last user message, everything before it) from OpenAI-style messages."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: required; give a non-empty list of {'role', 'content'} objects",
                       param="messages")
    parsed = []
    for index, item in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}: must be an object with 'role' and 'content'", param=where)
        role = item.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"{where}.role: must be 'system', 'user' or 'assistant', not {role!r}",
                           param=f"{where}.role")
        parsed.append({"role": role, "content": _text_content(item.get("content"), f"{where}.content")})
    if parsed[-1]["role"] != "user":
        raise ApiError(400, f"messages[{len(parsed) - 1}]: the last message must come from the user",
                       param="messages")
    return parsed[-1]["content"], parsed[:-1]


def _text_content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ApiError(400, f"{where}[{index}]: only text parts are supported, got {kind!r}",
                               param=f"{where}[{index}]")
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError(400, f"{where}: must be a string or a list of text parts", param=where)


def _api_error(error: BaseException, param: Optional[str] = None, input_field: str = "messages") -> ApiError:
    """Maps the backend's typed errors to HTTP statuses and OpenAI error types.

    `input_field` is the request field that carries the text (`messages` or `prompt`), named by errors about it.
    """
    message = redact(str(error))  # a remote server's error may quote the API key it was sent
    if isinstance(error, ApiError):
        return error
    if isinstance(error, ModelNotFoundError):
        return ApiError(404, message, param="model", code="model_not_found")
    if isinstance(error, UnsupportedTaskError):
        return ApiError(400, message, param="model", code="unsupported_task")
    if isinstance(error, ContextOverflowError):
        return ApiError(400, message, param=input_field, code="context_length_exceeded")
    if isinstance(error, InvalidInputError):
        name = message.split(":", 1)[0] if ":" in message else None
        return ApiError(400, message, param=param or _param_from(name))
    if isinstance(error, BusyError):
        # A full model queue is a "try again shortly", not a server fault: 429 with Retry-After.
        return ApiError(429, message, kind="rate_limit_error", code="model_busy")
    if isinstance(error, ModelLoadError):
        return ApiError(503, message, kind="server_error", code="model_unavailable")
    if isinstance(error, GenerationError):
        return ApiError(500, message, kind="server_error", code="generation_failed")
    return ApiError(500, f"internal error: {type(error).__name__}: {message}", kind="server_error")


def _param_from(name: Optional[str]) -> Optional[str]:
    """The API field an InvalidInputError from the service is about ('message' / 'history item 3' → messages)."""
    if not name:
        return None
    if name == "message" or name.startswith("history") or name == "system_prompt":
        return "messages"
    return _API_NAMES.get(name, name if " " not in name else None)


# ------------------------------------------------------------------------------------------ streaming


class _Pump:
    """Runs the blocking event iterator in its own thread and hands events to the event loop.

    Closing happens in that same thread (a generator cannot be closed while another thread runs it): `stop()`
    sets a flag the thread checks after each event, so generation stops within one event of a disconnect.
    """

    def __init__(self, events: Iterator[Any], loop: asyncio.AbstractEventLoop) -> None:
        self._events = events
        self._loop = loop
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="openai-api-stream", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    async def get(self) -> tuple[str, Any]:
        return await self._queue.get()

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            self._stop.set()  # the event loop is gone: nobody is listening any more

    def _run(self) -> None:
        try:
            for event in self._events:
                if self._stop.is_set():
                    break
                self._put(("event", event))
                if self._stop.is_set():
                    break
        except BaseException as error:  # noqa: BLE001 - every failure must reach the response
            self._put(("error", error))
        finally:
            close = getattr(self._events, "close", None)
            if close is not None:
                try:
                    close()  # stops the model and ends the registry lease
                except Exception:  # noqa: BLE001 - already reporting, or nobody left to report to
                    pass
            self._put(("end", None))


async def _watch_disconnect(request: Request, pump: _Pump) -> None:
    """Stops the backend stream as soon as the client goes away (also while it waits for the first token)."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                pump.stop()
                return
    except Exception:  # noqa: BLE001 - a receive channel that is closed means the request is over
        return


class _Completion:
    """Builds OpenAI-shaped chunks and responses for one request, in the chat or the text-completion shape."""

    def __init__(self, request: _Request, first_event: tuple[str, Any]) -> None:
        self.request = request
        self.is_chat = request.kind == "chat"
        self.id = f"{'chatcmpl' if self.is_chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.pending: list[tuple[str, Any]] = [first_event]

    def _envelope(self, kind: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.request.model,
                "system_fingerprint": None, "choices": choices, **extra}

    def opening(self) -> Optional[dict[str, Any]]:
        """The chunk before any text (chat: the assistant role); text completions have none."""
        return self.chunk("", role=True) if self.is_chat else None

    def chunk(self, text: str, finish: Optional[str] = None, role: bool = False, **extra: Any) -> dict[str, Any]:
        """A streamed piece of text (empty with `finish`: the closing chunk)."""
        if not self.is_chat:
            return self._envelope("text_completion", [{"index": 0, "text": text, "logprobs": None,
                                                       "finish_reason": finish}], **extra)
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": text}
        elif text:
            delta = {"content": text}
        return self._envelope("chat.completion.chunk", [{"index": 0, "delta": delta, "logprobs": None,
                                                         "finish_reason": finish}], **extra)

    def usage_chunk(self, final: Final) -> dict[str, Any]:
        """stream_options.include_usage: one last chunk with no choices and the token counts."""
        kind = "chat.completion.chunk" if self.is_chat else "text_completion"
        return self._envelope(kind, [], usage=self.usage(final))

    @staticmethod
    def usage(final: Final) -> dict[str, int]:
        prompt, generated = final.stats.prompt_tokens, final.stats.generated_tokens
        return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}

    def response(self, final: Final) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if self.is_chat:
            choice["message"] = {"role": "assistant", "content": final.text}
        else:
            choice["text"] = final.text
        choice.update(logprobs=None, finish_reason=_openai_finish(final))
        return self._envelope("chat.completion" if self.is_chat else "text_completion", [choice],
                              usage=self.usage(final), workbench=final.stats.to_dict())


def _openai_finish(final: Final) -> str:
    return "length" if final.stats.finish_reason == "length" else "stop"


def _sse_line(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _sse(completion: _Completion, pump: _Pump, watcher: "asyncio.Task[None]"):  # noqa: ANN202
    """The event stream; its `finally` runs on disconnect (Starlette cancels it) and stops the backend stream."""
    input_field = completion.request.input_field
    try:
        opening = completion.opening()
        if opening is not None:
            yield _sse_line(opening)
        while True:
            kind, value = completion.pending.pop(0) if completion.pending else await pump.get()
            if kind == "end":
                break
            if kind == "error":
                yield _sse_line(_api_error(value, input_field=input_field).body())
                return
            if isinstance(value, Delta):
                if value.text:
                    yield _sse_line(completion.chunk(value.text))
            elif isinstance(value, Final):
                yield _sse_line(completion.chunk("", _openai_finish(value), workbench=value.stats.to_dict()))
                if completion.request.include_usage:
                    yield _sse_line(completion.usage_chunk(value))
        yield "data: [DONE]\n\n"
    finally:
        pump.stop()
        watcher.cancel()


async def _collect(completion: _Completion, pump: _Pump) -> Response:
    final: Optional[Final] = None
    while True:
        kind, value = completion.pending.pop(0) if completion.pending else await pump.get()
        if kind == "end":
            break
        if kind == "error":
            return _api_error(value, input_field=completion.request.input_field).response()
        if isinstance(value, Final):
            final = value
    if final is None:  # the client went away, or the stream ended without its Final
        return ApiError(500, "generation ended without a result", kind="server_error").response()
    return JSONResponse(completion.response(final))
