"""Failed-login throttling, per client address and per user name, on every channel that checks a password.

    WORKBENCH_LOGIN_MAX_FAILURES=10        failed logins a client (IP address) may make per window
    WORKBENCH_LOGIN_MAX_USER_FAILURES=30   failed logins against one user name, from all clients, per window
    WORKBENCH_LOGIN_WINDOW_S=300           the sliding window, in seconds
    WORKBENCH_TRUST_FORWARDED_FOR=1        the client is the last X-Forwarded-For address (behind a proxy;
                                           default on when SPACE_ID is set, i.e. on a Hugging Face Space)

Channels: the login form and gradio_client's login (`POST /login`, Gradio answers 400 to wrong credentials:
`LoginThrottleMiddleware` watches those answers), and every route of the HTTP API (`/v1/*`, `/tokenize`,
`/detokenize`, `/tokenizer_info`), whose one credential check (backend/api/auth.py) counts its failures in the same
`LoginThrottle`. Once a client or a user name has used up its failures, every further attempt (right or wrong) on
any channel is answered 429 with a `Retry-After` header and a plain "too many failed login attempts" message,
until the oldest failure leaves the window. A success resets nothing: otherwise a guesser holding one valid
account could reset its own counter. Bearer tokens have no user name, so they count per client only (a
token-wide lock would let anyone lock every API client out).

Only the standard library and starlette are imported here: backend/ never imports gradio.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Mapping, Optional
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.guard.limits import client_address, env_number, send_json
from backend.guard.request_checks import replay

ENV_MAX_FAILURES = "WORKBENCH_LOGIN_MAX_FAILURES"
ENV_MAX_USER_FAILURES = "WORKBENCH_LOGIN_MAX_USER_FAILURES"
ENV_WINDOW_S = "WORKBENCH_LOGIN_WINDOW_S"
ENV_FORWARDED = "WORKBENCH_TRUST_FORWARDED_FOR"

# 10 per client and 30 per user in 5 minutes: a person who mistypes a few times never notices; a guesser gets
# 2 guesses a minute from one address and 6 a minute at one user from any number of addresses (it had 300-1,200
# a second before).
DEFAULT_MAX_FAILURES = 10
DEFAULT_MAX_USER_FAILURES = 30
DEFAULT_WINDOW_S = 300.0
# The tables forget the least recently failed keys beyond this, so a flood of addresses cannot grow memory.
MAX_TRACKED_KEYS = 20_000
# A login form is two short fields; anything bigger is refused before it is parsed.
MAX_LOGIN_BODY_BYTES = 16 * 1024


@dataclass(frozen=True)
class ThrottleSettings:
    max_failures: int = DEFAULT_MAX_FAILURES
    max_user_failures: int = DEFAULT_MAX_USER_FAILURES
    window_s: float = DEFAULT_WINDOW_S
    trust_forwarded_for: bool = False

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "ThrottleSettings":
        env = os.environ if environ is None else environ
        forwarded = (env.get(ENV_FORWARDED) or "").strip().lower()
        return cls(max_failures=int(env_number(env, ENV_MAX_FAILURES, DEFAULT_MAX_FAILURES, whole=True)),
                   max_user_failures=int(env_number(env, ENV_MAX_USER_FAILURES, DEFAULT_MAX_USER_FAILURES, whole=True)),
                   window_s=env_number(env, ENV_WINDOW_S, DEFAULT_WINDOW_S),
                   trust_forwarded_for=forwarded in ("1", "true", "yes", "on") or
                   (not forwarded and bool(env.get("SPACE_ID"))))

    def describe(self) -> str:
        return (f"failed logins throttled after {self.max_failures} per client / {self.max_user_failures} per user "
                f"in {self.window_s:g} s")


class LoginThrottle:
    """Sliding-window failure counts per key; thread-safe (Gradio checks passwords on worker threads)."""

    def __init__(self, settings: ThrottleSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str, user: Optional[str]) -> float:
        """Seconds until `client` (and `user`, when given) may try again; 0 when they may now."""
        with self._lock:
            now = self._clock()
            wait = self._wait(f"client:{client}", self.settings.max_failures, now)
            if user is not None:
                wait = max(wait, self._wait(f"user:{user}", self.settings.max_user_failures, now))
            return wait

    def failed(self, client: str, user: Optional[str]) -> None:
        with self._lock:
            now = self._clock()
            self._add(f"client:{client}", self.settings.max_failures, now)
            if user is not None:
                self._add(f"user:{user}", self.settings.max_user_failures, now)

    def _recent(self, key: str, now: float) -> Optional[deque[float]]:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.settings.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._recent(key, now)
        if times is None or len(times) < limit:
            return 0.0
        return max(times[0] + self.settings.window_s - now, 0.001)

    def _add(self, key: str, limit: int, now: float) -> None:
        times = self._recent(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=limit)  # older failures no longer matter once full
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_TRACKED_KEYS:
            self._failures.popitem(last=False)


def too_many_message(wait_s: float) -> str:
    return f"too many failed login attempts; try again in {int(wait_s + 0.999)} s"


class LoginThrottleMiddleware:
    """ASGI middleware: throttles `POST .../login` (see the module text; the API's routes throttle in their auth)."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope.get("method") == "POST" and path.rstrip("/") == "/login":
            await self._login_form(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _login_form(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive, MAX_LOGIN_BODY_BYTES)
        if body is None:
            await send_json(send, 413, {"detail": "the login form is too large"})
            return
        user = await _form_username(scope, body, receive)
        await self._guarded(scope, replay(body, receive), send, user, failure_status=(400, 401))

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, user: Optional[str],
                       failure_status: tuple[int, ...]) -> None:
        client = client_address(scope, self.throttle.settings.trust_forwarded_for)
        wait = self.throttle.retry_after(client, user)
        if wait > 0:
            await send_json(send, 429, {"detail": too_many_message(wait)},
                            headers=[(b"retry-after", str(int(wait + 0.999)).encode())])
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status in failure_status:
            self.throttle.failed(client, user)


# --------------------------------------------------------------------------------------------- ASGI helpers


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return ""


async def _read_body(receive: Receive, limit: int) -> Optional[bytes]:
    """The whole request body, or None once it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _form_username(scope: Scope, body: bytes, receive: Receive) -> Optional[str]:
    """The `username` field of a login form (urlencoded from gradio_client, multipart from the browser)."""
    content_type = _header(scope, b"content-type").lower()
    if content_type.startswith("application/x-www-form-urlencoded") or not content_type:
        values = parse_qs(body.decode("utf-8", "replace")).get("username")
        return values[0].strip() if values else None
    try:
        form = await Request(scope, replay(body, receive)).form()
    except Exception:  # noqa: BLE001 - a malformed form: Gradio answers it; no user name to count against
        return None
    value = form.get("username")
    return value.strip() if isinstance(value, str) else None
