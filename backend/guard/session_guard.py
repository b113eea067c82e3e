"""Login for the routes Gradio leaves open, and sessions that only their owner may stop.

Gradio 6 checks the login on its queue, API, file and config routes, but not on `/gradio_api/heartbeat/{session}`
(closing it ends the session's runs), `/gradio_api/cancel` (stops any run whose session hash is known),
`/gradio_api/reset` and `/gradio_api/stream/...`; FastAPI's `/openapi.json` (and `/docs`, `/redoc` when turned
on) is open too. With logins on, `SessionGuardMiddleware` answers those 401 without a login, and 403 when the
session named belongs to another user: a session's owner is whoever first queued an event in it (recorded from
`POST /gradio_api/queue/join`).

Only the standard library and starlette are imported here: backend/ never imports gradio.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Optional, Union
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from backend.core.json_types import JSONList, JSONObject, JSONOutputObject
from backend.guard.limits import send_json
from backend.guard.request_checks import BodyCheck

LOGIN_REQUIRED_EXACT = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/gradio_api/cancel",
                        "/gradio_api/reset")
LOGIN_REQUIRED_PREFIXES = ("/gradio_api/heartbeat/", "/gradio_api/stream/")
HEARTBEAT_PREFIX = "/gradio_api/heartbeat/"
QUEUE_DATA = "/gradio_api/queue/data"  # a session's results stream; Gradio checks the login, not the owner
MAX_SESSIONS_TRACKED = 50_000


class SessionOwners:
    """session hash → the user who opened it (bounded: the oldest entries go first)."""

    def __init__(self, capacity: int = MAX_SESSIONS_TRACKED) -> None:
        self._lock = threading.Lock()
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def claim(self, session: str, user: str) -> bool:
        """Records `user` as the owner of `session` unless another user has it; False when another user has."""
        with self._lock:
            owner = self._owners.setdefault(session, user)
            self._owners.move_to_end(session)
            while len(self._owners) > self._capacity:
                self._owners.popitem(last=False)
            return owner == user

    def owner(self, session: str) -> Optional[str]:
        with self._lock:
            return self._owners.get(session)


class SessionGuardMiddleware:
    """See the module text. `user_of(scope)`: the logged-in user of a request, None without a login."""

    def __init__(self, app: ASGIApp, user_of: Callable[[Scope], Optional[str]], owners: SessionOwners) -> None:
        self.app = app
        self.user_of = user_of
        self.owners = owners

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").rstrip("/") or "/"
        if scope["type"] != "http" or not (path in LOGIN_REQUIRED_EXACT or path == QUEUE_DATA or
                                           path.startswith(LOGIN_REQUIRED_PREFIXES)):
            await self.app(scope, receive, send)
            return
        user = self.user_of(scope)
        if user is None:
            await send_json(send, 401, {"detail": "Not authenticated: log in first"})
            return
        session = path[len(HEARTBEAT_PREFIX):] if path.startswith(HEARTBEAT_PREFIX) else \
            _query_value(scope, "session_hash") if path == QUEUE_DATA else None
        if session is not None:
            if not self.owners.claim(session, user):
                await send_json(send, 403, {"detail": "this session belongs to another user"})
                return
        await self.app(scope, receive, send)


def session_body_check(user_of: Callable[[Scope], Optional[str]],
                       owners: SessionOwners) -> BodyCheck:
    """A JSON-body check (backend/guard/request_checks.py) for `/gradio_api/queue/join` and `/gradio_api/cancel`, whose
    bodies name the session: the first user to name a session owns it; another user naming it gets 403."""

    def check(scope: Scope, body: Union[JSONObject, JSONList]) -> Optional[tuple[int, JSONOutputObject]]:
        user = user_of(scope)
        session = body.get("session_hash") if isinstance(body, dict) else None
        if user is None or not isinstance(session, str):
            return None  # not logged in (Gradio's own check answers) or no session named
        if not owners.claim(session, user):
            return 403, {"detail": "this session belongs to another user"}
        return None

    return check


def _query_value(scope: Scope, name: str) -> Optional[str]:
    values = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get(name)
    return values[0] if values else None
