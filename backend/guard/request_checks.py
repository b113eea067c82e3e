"""Checks on JSON request bodies before the app sees them: text that is not valid Unicode, and app-given checks.

A JSON string may hold a lone UTF-16 surrogate (`"\\ud800"`): valid JSON, but not text, so any later encoding of it
fails deep inside a tokenizer (it was an HTTP 500). `JsonChecksMiddleware` answers such a body with a 400 that
names the field, before any handler runs; the UI checks its own inputs (ui/common/components.py), the HTTP API its
bodies (backend/api/body.py, after the login).

The body has already passed the size limit (backend/guard/limits.py), so reading it whole here is bounded.
Only the standard library and starlette are imported here: backend/ never imports gradio.
"""

from __future__ import annotations

import json
from typing import Callable, Iterator, Optional, Union

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.json_types import JSONList, JSONObject, JSONOutputObject
from backend.guard.limits import send_json

# A check gets the request's scope and its parsed JSON body (an object or an array: other bodies are not checked);
# it answers None (go on) or (status, JSON payload).
BodyCheck = Callable[[Scope, Union[JSONObject, JSONList]], Optional[tuple[int, JSONOutputObject]]]


def lone_surrogates(value: object, where: str = "") -> Iterator[tuple[str, str]]:
    """(field path, the surrogate as \\uXXXX) for every string in `value` holding a lone UTF-16 surrogate."""
    if isinstance(value, str):
        bad = first_surrogate(value)
        if bad is not None:
            yield where or "body", bad
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from lone_surrogates(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from lone_surrogates(item, f"{where}[{index}]")


def first_surrogate(text: str) -> Optional[str]:
    """`\\udXXX` for the first lone surrogate in `text`, None when it is valid text (the common case is fast)."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as error:
        return f"\\u{ord(text[error.start]):04x}"


def surrogate_message(field: str, surrogate: str) -> str:
    return (f"{field}: contains a lone UTF-16 surrogate ({surrogate}), which is not valid text; "
            "send the text as proper UTF-8 / paired surrogates")


class JsonChecksMiddleware:
    """Runs `checks[prefix]` on the JSON body of POST requests whose path starts with `prefix`; a check's answer
    replaces the app's. Bodies that are not JSON objects/arrays pass through untouched (the app answers them)."""

    def __init__(self, app: ASGIApp, checks: dict[str, list[BodyCheck]]) -> None:
        self.app = app
        self.checks = checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        checks = [check for prefix, found in self.checks.items() if path.startswith(prefix) for check in found]
        if not checks:
            await self.app(scope, receive, send)
            return
        body, disconnected = await read_body(receive)
        if disconnected:
            return
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, (dict, list)):
            for check in checks:
                answer = check(scope, parsed)
                if answer is not None:
                    await send_json(send, *answer)
                    return
        await self.app(scope, replay(body, receive), send)


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body (bounded upstream), and whether the client went away instead."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then passes on the server's (which waits for the client to go: a
    streaming response listens for that)."""
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying
