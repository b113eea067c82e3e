"""What ties the request guards of backend/ (throttle, limits, session guard, JSON checks) to Gradio's server.

`guard_options(security, limits, throttle)` gives the extra `Blocks.launch` options: the ASGI middleware (through
`app_kwargs`, so it is in place before the first request) and the session capacity.
The upload expiry is the Blocks' `delete_cache` (set by ui.launch). `start_session_expiry(app, idle_s)` forgets
sessions nobody used for `idle_s` seconds.
"""

from __future__ import annotations

import datetime
import html
import logging
import threading
import weakref
from typing import Any, Optional

import gradio as gr
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.types import Scope

from backend.guard.limits import BodyLimitMiddleware, RequestLimits, UploadQuotaMiddleware, client_address
from backend.guard.request_checks import JsonChecksMiddleware
from backend.guard.security import SecuritySettings
from backend.guard.session_guard import SessionGuardMiddleware, SessionOwners, session_body_check
from backend.guard.throttle import LoginThrottle, LoginThrottleMiddleware
from ui.i18n.core import plain_text, say

logger = logging.getLogger(__name__)

QUEUE_JOIN = "/gradio_api/queue/join"
CANCEL = "/gradio_api/cancel"


def gradio_user(scope: Scope) -> Optional[str]:
    """The user a request is logged in as (Gradio's session cookie), None when it is not logged in."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or cookie_id is None:
        return None
    cookies = HTTPConnection(scope).cookies
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return tokens.get(token) if token else None


def known_event_check(scope: Scope, body: Any) -> Optional[tuple[int, Any]]:
    """`fn_index` must name an event of this app (Gradio answered an unknown one with HTTP 500)."""
    if not isinstance(body, dict) or "fn_index" not in body:
        return None
    index = body["fn_index"]
    app = scope.get("app")
    fns = app.get_blocks().fns if app is not None and hasattr(app, "get_blocks") else {}
    if isinstance(index, bool) or not isinstance(index, int) or index not in fns:
        return 422, {"detail": f"fn_index {str(index)[:40]!r} is not an event of this app"}
    return None


def guard_options(security: SecuritySettings, limits: RequestLimits, throttle: LoginThrottle) -> dict[str, Any]:
    """Extra `Blocks.launch` options that install the guards (see the module text)."""
    # The API's routes check their own bodies after their login (backend/api/body.py).
    checks: dict[str, list[Any]] = {QUEUE_JOIN: [known_event_check]}
    middleware = []  # outermost first
    if security.auth_enabled:
        owners = SessionOwners()
        middleware.append(Middleware(SessionGuardMiddleware, user_of=gradio_user, owners=owners))
        checks[QUEUE_JOIN].append(session_body_check(gradio_user, owners))
        checks[CANCEL] = [session_body_check(gradio_user, owners)]
        middleware.append(Middleware(LoginThrottleMiddleware, throttle=throttle))
    trust = throttle.settings.trust_forwarded_for

    def uploader(scope: Scope) -> str:  # without logins, the client address (behind a proxy: the forwarded one)
        return gradio_user(scope) or f"client:{client_address(scope, trust)}"

    middleware += [Middleware(BodyLimitMiddleware, limits=limits),
                   Middleware(UploadQuotaMiddleware, limits=limits, owner_of=uploader),
                   Middleware(JsonChecksMiddleware, checks=checks)]
    # Not FastAPI's app-wide `max_body_size`: its limiter sits outside these and would replace their clear 413
    # messages with a bare "Content Too Large"; BodyLimitMiddleware runs Starlette's own limiter per route.
    return dict(app_kwargs={"middleware": middleware},
                state_session_capacity=limits.max_sessions)


# ------------------------------------------------------------------------------------------------ sessions


def forget_idle_sessions(app: Any, idle_s: float, now: Optional[datetime.datetime] = None) -> int:
    """Drops the sessions of `app` (Gradio's App) unused for `idle_s` seconds; returns how many.

    Gradio keeps a session (a copy of the app's component config, ~0.45 MB here) until 10,000 newer ones push it
    out; its gr.State values get their delete callbacks as Gradio would call them.
    """
    holder = app.state_holder
    now = now or datetime.datetime.now()
    stale = [session for session, used in list(holder.time_last_used.items())
             if (now - used).total_seconds() > idle_s]
    for session in stale:
        holder.delete_state(session)
        with holder.lock:
            holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)
    return len(stale)


def start_session_expiry(app: Any, idle_s: float) -> threading.Event:
    """A daemon thread that runs `forget_idle_sessions` every quarter of `idle_s` (at most every minute); set
    the returned event to stop it. It holds the app weakly and ends once the app is gone (tests launch many)."""
    stop = threading.Event()
    every = max(0.25, min(idle_s / 4, 60.0))
    app_ref = weakref.ref(app)

    def loop() -> None:
        while not stop.wait(every):
            current = app_ref()
            if current is None:
                return
            try:
                forget_idle_sessions(current, idle_s)
            except Exception:  # noqa: BLE001 - a Gradio change must not kill the thread silently forever
                logger.exception("session expiry failed")
            del current

    threading.Thread(target=loop, name="workbench-session-expiry", daemon=True).start()
    return stop


# ------------------------------------------------------------------------------------------------ choices

# Gradio's choice components refuse a value outside their choices with "Value: <the value> is not in the list of
# choices: [...]": the value unescaped (the browser renders gr.Error as HTML), whole (a 4 MB value went whole into
# the error and the log's traceback), and with the choices listed.
CHOICE_COMPONENTS = (gr.Dropdown, gr.Radio, gr.CheckboxGroup)
ECHO_CHARS = 200


def _escaping(preprocess: Any) -> Any:
    def checked(self: Any, payload: Any) -> Any:
        try:
            return preprocess(self, payload)
        except gr.Error:
            shown = str(payload)
            shown = shown if len(shown) <= ECHO_CHARS else shown[:ECHO_CHARS] + "…"
            # The label in words (a gr.I18n label is a marker only the page translates: API callers read it raw).
            label = plain_text(self.label) or say("choice_field")
            raise gr.Error(html.escape(say("err_not_a_choice", field=label, value=shown), quote=False),
                           print_exception=False) from None  # no traceback: it would quote the value whole

    checked.workbench_escaping = True  # type: ignore[attr-defined]
    return checked


def escape_choice_errors() -> None:
    """Makes Dropdown, Radio and CheckboxGroup refuse an unknown value with a short, escaped message and no
    traceback in the log. Idempotent; applied by ui.launch."""
    for component in CHOICE_COMPONENTS:
        if not getattr(component.preprocess, "workbench_escaping", False):
            component.preprocess = _escaping(component.preprocess)  # type: ignore[method-assign]
