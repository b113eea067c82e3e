"""How much a request, a user's uploads and the Gradio sessions may hold, and the ASGI middleware that enforces it.

    WORKBENCH_MAX_BODY_MB=4               a request body (/v1, the Gradio queue and API); larger: 413, unread
    WORKBENCH_MAX_UPLOAD_REQUEST_MB=51    one upload request, all its files together (default: one largest
                                          file, WORKBENCH_MAX_UPLOAD_MB, plus 1 MB of multipart framing)
    WORKBENCH_MAX_USER_UPLOADS_MB=200     what one user (or, without logins, one client address) keeps uploaded
    WORKBENCH_UPLOAD_TTL_S=3600           uploads are deleted this long after they arrived (checked every
                                          quarter of it, at most every 10 minutes), and all of them when the
                                          server closes cleanly
    WORKBENCH_MAX_SESSIONS=1000           Gradio sessions kept in memory (about 0.1 MB each); the least
                                          recently used goes beyond it
    WORKBENCH_SESSION_IDLE_S=3600         a session unused this long is forgotten (its tab starts afresh)

A body whose Content-Length is over its limit is refused before a byte of it is read; a body without one (chunked)
is counted as it streams, by Starlette's `RequestBodyLimitMiddleware`, and refused the moment it passes the limit.

Only the standard library and starlette are imported here: backend/ never imports gradio.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.types import ConfigError

ENV_MAX_BODY_MB = "WORKBENCH_MAX_BODY_MB"
ENV_MAX_UPLOAD_REQUEST_MB = "WORKBENCH_MAX_UPLOAD_REQUEST_MB"
ENV_MAX_USER_UPLOADS_MB = "WORKBENCH_MAX_USER_UPLOADS_MB"
ENV_UPLOAD_TTL_S = "WORKBENCH_UPLOAD_TTL_S"
ENV_MAX_SESSIONS = "WORKBENCH_MAX_SESSIONS"
ENV_SESSION_IDLE_S = "WORKBENCH_SESSION_IDLE_S"

# 4 MB of JSON is about a million tokens of text: more than any model's context, so no real request is refused.
DEFAULT_MAX_BODY_MB = 4.0
DEFAULT_MAX_USER_UPLOADS_MB = 200.0
DEFAULT_UPLOAD_TTL_S = 3600
DEFAULT_MAX_SESSIONS = 1000  # ~80 MB at the measured 0.08 MB a new session (ui/server/session_memory.py)
DEFAULT_SESSION_IDLE_S = 3600
MULTIPART_SLACK_MB = 1.0
# Each stored file counts at least this much against the per-user total, so empty files cannot pile up unbounded.
MIN_FILE_CHARGE = 4096
MB = 1024 * 1024
UPLOAD_PATH_SUFFIX = "/gradio_api/upload"


@dataclass(frozen=True)
class RequestLimits:
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    max_upload_request_mb: float = DEFAULT_MAX_BODY_MB + MULTIPART_SLACK_MB
    max_user_uploads_mb: float = DEFAULT_MAX_USER_UPLOADS_MB
    upload_ttl_s: int = DEFAULT_UPLOAD_TTL_S
    max_sessions: int = DEFAULT_MAX_SESSIONS
    session_idle_s: int = DEFAULT_SESSION_IDLE_S

    @classmethod
    def from_env(cls, max_upload_mb: float, environ: Optional[Mapping[str, str]] = None) -> "RequestLimits":
        """`max_upload_mb`: the per-file limit (WORKBENCH_MAX_UPLOAD_MB, backend/guard/security.py)."""
        env = os.environ if environ is None else environ
        return cls(
            max_body_mb=env_number(env, ENV_MAX_BODY_MB, DEFAULT_MAX_BODY_MB),
            max_upload_request_mb=env_number(env, ENV_MAX_UPLOAD_REQUEST_MB, max_upload_mb + MULTIPART_SLACK_MB),
            max_user_uploads_mb=env_number(env, ENV_MAX_USER_UPLOADS_MB, DEFAULT_MAX_USER_UPLOADS_MB),
            upload_ttl_s=int(env_number(env, ENV_UPLOAD_TTL_S, DEFAULT_UPLOAD_TTL_S, whole=True)),
            max_sessions=int(env_number(env, ENV_MAX_SESSIONS, DEFAULT_MAX_SESSIONS, whole=True)),
            session_idle_s=int(env_number(env, ENV_SESSION_IDLE_S, DEFAULT_SESSION_IDLE_S, whole=True)),
        )

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * MB)

    @property
    def max_upload_request_bytes(self) -> int:
        return int(self.max_upload_request_mb * MB)

    @property
    def max_user_upload_bytes(self) -> int:
        return int(self.max_user_uploads_mb * MB)

    def delete_cache(self) -> tuple[int, int]:
        """Gradio's `launch(delete_cache=(every_s, age_s))` for the upload TTL."""
        return (max(1, min(self.upload_ttl_s // 4, 600)), self.upload_ttl_s)

    def describe(self) -> str:
        return (f"request bodies up to {self.max_body_mb:g} MB, {self.max_upload_request_mb:g} MB per upload "
                f"request, {self.max_user_uploads_mb:g} MB of uploads per user kept {self.upload_ttl_s} s; "
                f"{self.max_sessions} sessions, idle ones dropped after {self.session_idle_s} s")


def env_number(env: Mapping[str, str], name: str, default: float, whole: bool = False,
               low: Optional[float] = None) -> float:
    """The number setting `name` in `env` (`default` when unset or blank): above 0, or with `low` at least `low`;
    ConfigError otherwise (limits here, the throttle's and backend/guard/security.py's settings)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be {'a whole number' if whole else 'a number'}, got {raw!r}") from None
    if low is None:
        if not value > 0:
            raise ConfigError(f"{name}: must be greater than 0, got {raw!r}")
    elif value != value or value < low:  # NaN or too small
        raise ConfigError(f"{name}: must be at least {low:g}, got {raw!r}")
    return value


# ---------------------------------------------------------------------------------------------- bodies


def content_length(scope: Scope) -> Optional[int]:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def client_address(scope: Scope, trust_forwarded_for: bool) -> str:
    """The client's IP address; behind a trusted proxy, the last X-Forwarded-For entry (the one the proxy added)."""
    if trust_forwarded_for:
        for name, value in scope.get("headers") or ():
            if name == b"x-forwarded-for":
                last = value.decode("latin-1").split(",")[-1].strip()
                if last:
                    return last
    client = scope.get("client")
    return client[0] if client else "unknown"


def is_upload(scope: Scope) -> bool:
    return scope.get("path", "").rstrip("/").endswith(UPLOAD_PATH_SUFFIX)


def too_large(scope: Scope, message: str) -> tuple[int, dict]:
    """A 413 in the format of the route: OpenAI's error object on /v1, Gradio's `detail` elsewhere."""
    if scope.get("path", "").startswith("/v1/"):
        return 413, {"error": {"message": message, "type": "invalid_request_error", "code": "request_too_large"}}
    return 413, {"detail": message}


class BodyLimitMiddleware:
    """Refuses request bodies over their limit with 413: uploads get the upload-request limit, all else the body
    limit. A declared Content-Length over the limit is answered at once, without reading the body."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits
        self._counted = {limit: RequestBodyLimitMiddleware(app, max_body_size=limit)
                         for limit in (limits.max_body_bytes, limits.max_upload_request_bytes)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = is_upload(scope)
        limit = self.limits.max_upload_request_bytes if upload else self.limits.max_body_bytes
        variable, mb = ((ENV_MAX_UPLOAD_REQUEST_MB, self.limits.max_upload_request_mb) if upload
                        else (ENV_MAX_BODY_MB, self.limits.max_body_mb))
        what = "upload request" if upload else "request body"
        declared = content_length(scope)
        if declared is not None and declared > limit:
            await send_json(send, *too_large(scope, f"the {what} ({declared / MB:.1f} MB) is over the {mb:g} MB "
                                                    f"limit ({variable})"))
            return
        explained = explain_counted_413(scope, send, f"the {what} is over the {mb:g} MB limit ({variable})")
        await self._counted[limit](scope, receive, explained)


# Starlette's limiter answers a body that grows past its limit (no Content-Length) with this plain text.
STARLETTE_413_BODY = b"Content Too Large"


def explain_counted_413(scope: Scope, send: Send, message: str) -> Send:
    """`send`, except that Starlette's bare "Content Too Large" answer becomes `message` in the route's format.
    Other 413s (Gradio's own per-file one) pass unchanged."""
    held: Optional[Message] = None

    async def explaining(event: Message) -> None:
        nonlocal held
        if event["type"] == "http.response.start" and event["status"] == 413 and held is None:
            held = event  # decided when its body comes
            return
        if held is not None and event["type"] == "http.response.body":
            start, held = held, None
            if event.get("body") == STARLETTE_413_BODY and not event.get("more_body", False):
                await send_json(send, *too_large(scope, message))
                return
            await send(start)
        await send(event)

    return explaining


# --------------------------------------------------------------------------------------------- uploads


class UploadLedger:
    """Which uploaded files belong to whom, and how many bytes of them still exist (deleted files drop out)."""

    def __init__(self, max_bytes_per_user: int) -> None:
        self.max_bytes_per_user = max_bytes_per_user
        self._lock = threading.Lock()
        self._files: dict[str, OrderedDict[str, int]] = {}

    def used(self, owner: str) -> int:
        with self._lock:
            files = self._files.get(owner)
            if not files:
                return 0
            for path in [p for p in files if not os.path.exists(p)]:
                del files[path]
            return sum(files.values())

    def add(self, owner: str, paths: list[str]) -> None:
        with self._lock:
            files = self._files.setdefault(owner, OrderedDict())
            for path in paths:
                try:
                    files[path] = max(os.path.getsize(path), MIN_FILE_CHARGE)
                except OSError:
                    continue


class UploadQuotaMiddleware:
    """Bounds what each user keeps uploaded: an upload that would take them past the per-user total gets 413.

    `owner_of(scope)` names the uploader: the logged-in user, or None without logins (then the client address).
    The files an upload created are read from Gradio's answer (a JSON list of their paths).
    """

    def __init__(self, app: ASGIApp, limits: RequestLimits, owner_of: Callable[[Scope], Optional[str]]) -> None:
        self.app = app
        self.limits = limits
        self.ledger = UploadLedger(limits.max_user_upload_bytes)
        self._owner_of = owner_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not is_upload(scope):
            await self.app(scope, receive, send)
            return
        owner = self._owner_of(scope)
        if owner is None:
            client = scope.get("client")
            owner = f"client:{client[0] if client else 'unknown'}"
        room = self.ledger.max_bytes_per_user - self.ledger.used(owner)
        declared = content_length(scope) or 0
        if declared > room:
            await send_json(send, *too_large(scope, (
                f"your uploads would total {(self.ledger.max_bytes_per_user - room + declared) / MB:.1f} MB, over "
                f"the {self.limits.max_user_uploads_mb:g} MB kept per user ({ENV_MAX_USER_UPLOADS_MB}); uploads are "
                f"deleted {self.limits.upload_ttl_s} s after they arrive")))
            return
        app = self.app if room >= self.limits.max_upload_request_bytes else \
            RequestBodyLimitMiddleware(self.app, max_body_size=room)  # a chunked body may not pass the room left
        status, chunks = 0, []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                chunks.append(message.get("body", b""))
            await send(message)

        await app(scope, receive, capture)
        if status == 200:
            try:
                paths = json.loads(b"".join(chunks))
            except ValueError:
                return
            if isinstance(paths, list):
                self.ledger.add(owner, [p for p in paths if isinstance(p, str)])


async def send_json(send: Send, status: int, payload: object,
                    headers: Optional[list[tuple[bytes, bytes]]] = None) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
