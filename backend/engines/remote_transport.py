"""How the remote engine talks HTTP to an OpenAI-compatible server: the client, the reachability check, opening
a stream, and every failure as a typed error that names the entry, the URL and what to check.

Reachability (`check_endpoint`): GET {base_url}/models, which also tells the model list and (vLLM) the context
length; when that fails, GET {root}/health on a fresh connection. A server can answer the model list with an
error and then drop the kept-alive connection it came on (a `transformers serve` without a Hugging Face cache
folder answers 500 and the next request on that connection fails with ReadError), so the second check never
reuses it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Optional

import httpx

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject
from backend.core.types import ContextOverflowError, GenerationError, InvalidInputError, ModelLoadError, WorkbenchError

PROBE_TIMEOUT_S = 3.0  # reachability checks (load, Models tab) must answer quickly
CONNECT_TIMEOUT_S = 10.0  # connecting never waits longer than this, whatever timeout_s says
ATTEMPTS = 2  # one retry, and only before the first token
RETRY_BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 5.0  # a 429 asking to wait longer than this is reported instead of waited for
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
ERROR_BODY_LIMIT = 2000

_CONTEXT_ERROR = re.compile(
    r"context length|context window|maximum context|max_model_len|too many tokens|input is too long|"
    r"prompt is too long|inputs` tokens \+ `max_new_tokens`|must be <= \d+",
    re.IGNORECASE,
)



def api_key_for(spec: ModelSpec) -> Optional[str]:
    """The API key from the environment variable named by `api_key_env` (None when the entry names none)."""
    if not spec.api_key_env:
        return None
    key = os.environ.get(spec.api_key_env, "").strip()
    if not key:
        raise ModelLoadError(
            f"model '{spec.id}': the environment variable {spec.api_key_env} (api_key_env in models.yaml) is not set "
            f"or empty; export it with the API key for {spec.base_url} before starting the app"
        )
    return key


@dataclass
class Endpoint:
    """What the reachability check learnt: listed models, context length, a detail line, notes."""

    models: list[str] = field(default_factory=list)
    max_context: Optional[int] = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)


class Unreachable(Exception):
    """The server did not answer the reachability check; the message says what to check."""


class Retryable(Exception):
    """A failure worth one more attempt if nothing reached the caller yet (wait_s None: do not retry)."""

    def __init__(self, error: WorkbenchError, wait_s: Optional[float]) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_s = wait_s


def make_client(spec: ModelSpec, api_key: Optional[str], timeout_s: float) -> httpx.Client:
    headers = dict(spec.headers)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    # read: the longest silence tolerated between two chunks; connect: how long an absent server can stall us.
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S))
    # trust_env=False: a proxy set for the Hub must not capture requests to a server on the local network.
    return httpx.Client(headers=headers, timeout=timeout, trust_env=False, follow_redirects=True)


def _service_root(base_url: str) -> str:
    """Where /health lives: the base URL without its trailing /v1."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def check_endpoint(client: httpx.Client, spec: ModelSpec, timeout_s: float) -> Endpoint:
    """Whether the server answers (see the module docstring); raises Unreachable with what to check."""
    base = spec.base_url.rstrip("/")  # type: ignore[union-attr]
    models_url = f"{base}/models"
    try:
        # Connection: close, so the client's pool never keeps a connection the server broke after an error.
        answer = client.get(models_url, timeout=timeout_s, headers={"Connection": "close"})
    except httpx.HTTPError as error:
        raise Unreachable(str(transport_failure(error, models_url, spec).error)) from None
    if answer.status_code in (401, 403):
        raise Unreachable(str(status_error(answer.status_code, error_message(answer.text), models_url, spec, True)))
    if answer.status_code == 200:
        return _read_model_list(answer, models_url, spec)
    health_url = f"{_service_root(base)}/health"
    try:
        with httpx.Client(headers=client.headers, timeout=timeout_s, trust_env=False,
                          follow_redirects=True) as fresh:  # a fresh connection: see the module docstring
            health = fresh.get(health_url)
    except httpx.HTTPError as error:
        raise Unreachable(f"GET {models_url} answered HTTP {answer.status_code} and GET {health_url} failed "
                           f"({type(error).__name__}); check base_url (it usually ends in /v1)") from None
    if health.status_code == 200:
        return Endpoint(
            detail=f"reachable: {health_url} is healthy (GET {models_url} answered HTTP {answer.status_code})",
            notes=[f"GET {models_url} answered HTTP {answer.status_code}; reachability checked with {health_url}"],
        )
    raise Unreachable(
        f"GET {models_url} answered HTTP {answer.status_code} and GET {health_url} answered HTTP "
        f"{health.status_code}: is {spec.base_url} an OpenAI-compatible server? check base_url (it usually ends "
        f"in /v1)"
    )


def _read_model_list(answer: httpx.Response, models_url: str, spec: ModelSpec) -> Endpoint:
    try:
        entries = answer.json().get("data") or []
        listed = {str(entry.get("id")): entry for entry in entries if isinstance(entry, dict)}
    except (ValueError, AttributeError):
        return Endpoint(detail=f"reachable: {models_url} answered", notes=[f"{models_url} sent no model list"])
    wanted = spec.remote_model
    entry = listed.get(wanted)
    context = entry.get("max_model_len") if entry else None  # vLLM says how long its context is
    notes = []
    if listed and entry is None:
        shown = ", ".join(sorted(listed)[:5]) + (" ..." if len(listed) > 5 else "")
        notes.append(f"the server does not list model '{wanted}' (it lists: {shown}); if requests fail with "
                     f"HTTP 404, set 'model' in models.yaml to one of those")
    detail = f"reachable: {models_url} lists {len(listed)} model(s)" + (
        f", including '{wanted}'" if entry is not None else "")
    return Endpoint(models=list(listed), max_context=context if isinstance(context, int) and context > 0 else None,
                     detail=detail, notes=notes)


def read_limited(response: httpx.Response) -> str:
    body = b""
    for part in response.iter_bytes():
        body += part
        if len(body) >= ERROR_BODY_LIMIT:
            break
    return body[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace")


def error_message(body: object) -> str:
    """The human part of an error body: OpenAI/vLLM {"error": {"message"}}, TGI {"error": "..."}, FastAPI {"detail"}."""
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except ValueError:
            return text.strip()[:300]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                return str(value.get("message") or value)[:300]
            if isinstance(value, list):  # FastAPI validation errors
                return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                                 for item in value)[:300]
            if value:
                return str(value)[:300]
    return str(body)[:300]


def status_error(status: int, message: str, where: str, spec: ModelSpec, loading: bool) -> WorkbenchError:
    """A typed error for an HTTP status, with what to check."""
    said = f": {message}" if message else ""
    fail = ModelLoadError if loading else GenerationError
    if status in (401, 403):
        if spec.api_key_env:
            hint = f"check that {spec.api_key_env} (api_key_env) holds a valid key for this server"
        else:
            hint = "the server wants an API key: put it in an environment variable and name it in api_key_env"
        return fail(f"{where}: HTTP {status}, the server refused our credentials{said}; {hint}")
    if status == 404:
        return fail(f"{where}: HTTP 404 Not Found{said}; check base_url (usually ending in /v1) and 'model' "
                    f"('{spec.remote_model}' must be a name the server serves: see GET {spec.base_url}/models)")
    if status == 429:
        return fail(f"{where}: HTTP 429, rate limited by the server{said}; wait a moment and try again")
    if status in (400, 413, 422):
        if _CONTEXT_ERROR.search(message):
            return ContextOverflowError(f"{where}: the server says the input is too long{said}")
        if loading:
            return ModelLoadError(f"{where}: HTTP {status}{said}")
        return InvalidInputError(f"{where}: the server refused the request (HTTP {status}){said}")
    if status >= 500:
        return fail(f"{where}: HTTP {status}, server error{said}; check the server's logs")
    return fail(f"{where}: unexpected HTTP {status}{said}")


def retry_wait(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("retry-after", "")
    try:
        wait = float(value) if value else RETRY_BACKOFF_S
    except ValueError:
        wait = RETRY_BACKOFF_S
    return wait if wait <= MAX_RETRY_AFTER_S else None


def transport_failure(error: httpx.HTTPError, where: str, spec: ModelSpec) -> Retryable:
    """A network-level failure as a typed error; connecting again is worth a retry, waiting again is not."""
    if isinstance(error, httpx.ConnectTimeout):
        message = (f"{where}: no answer within {min(spec.timeout_s, CONNECT_TIMEOUT_S):g}s while connecting; is the "
                   f"server up, and are the host and port in base_url right?")
        return Retryable(GenerationError(message), RETRY_BACKOFF_S)
    if isinstance(error, httpx.ConnectError):
        message = (f"{where}: cannot connect ({_reason(error)}); is the server running, and are the host and port "
                   f"in base_url right?")
        return Retryable(GenerationError(message), RETRY_BACKOFF_S)
    if isinstance(error, httpx.TimeoutException):
        message = (f"{where}: the server sent nothing for {spec.timeout_s:g}s (timeout_s in models.yaml); it may be "
                   f"overloaded or stuck")
        return Retryable(GenerationError(message), None)
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        message = (f"{where}: the connection broke ({_reason(error)}); the server may have crashed or restarted: "
                   f"check its logs")
        return Retryable(GenerationError(message), RETRY_BACKOFF_S)
    return Retryable(GenerationError(f"{where}: {type(error).__name__}: {_reason(error)}"), None)


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:200]


def open_stream(client: httpx.Client, url: str, request: JSONObject, where: str,
                spec: ModelSpec) -> httpx.Response:
    """POSTs `request`; returns the open 200 event-stream response or raises a typed (possibly retryable)
    error."""
    try:
        response = client.send(
            client.build_request("POST", url, json=request, headers={"Accept": "text/event-stream"}),
            stream=True,
        )
    except httpx.HTTPError as error:
        raise transport_failure(error, where, spec) from error
    if response.status_code == 200:
        if response.headers.get("content-type", "").startswith("application/json"):
            try:  # a server that ignores stream=true, or one that reports an error with status 200
                message = error_message(read_limited(response))
            finally:
                response.close()
            raise GenerationError(f"{where}: the server answered with JSON instead of an event stream: "
                                  f"{message[:200]}")
        return response
    try:
        message = error_message(read_limited(response))
    except httpx.HTTPError:
        message = ""
    finally:
        response.close()
    failure = status_error(response.status_code, message, where, spec, loading=False)
    if response.status_code in RETRY_STATUSES:
        raise Retryable(failure, retry_wait(response))
    raise failure
