"""`/v1/feedback`: rate a reply through the HTTP API, next to the OpenAI-compatible routes.

    POST /v1/feedback  {"model": "ID", "messages": [...], "rating": "up" | "down" | null, "index": N?}
    GET  /v1/feedback  -> {"ratings": [{"model", "rating", "conversation", "time"}, ...]}

Who rates: the HTTP basic user when logins are on; a bearer-token caller is the user "api". With the app open
(no logins) everything goes to the single local user, like the UI.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Callable, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from backend.data.feedback import load_ratings, record_rating
from backend.types import InvalidInputError

TOKEN_USER = "api"
MAX_BODY_BYTES = 2_000_000


def add_feedback_routes(app: FastAPI, *, prefix: str = "/v1", check_token: Optional[Callable[[str], bool]] = None,
                        check_basic: Optional[Callable[[str, str], bool]] = None,
                        root: Optional[Path] = None) -> None:
    def user_of(request: Request) -> tuple[bool, Optional[str]]:
        if check_token is None and check_basic is None:
            return True, None
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic " and check_basic is not None:
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False, None
            return bool(check_basic(user, password)), user
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        return bool(check_token and token and check_token(token)), TOKEN_USER

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)

    @app.post(f"{prefix}/feedback")
    async def rate(request: Request) -> Any:
        allowed, user = user_of(request)
        if not allowed:
            return error(401, "invalid or missing credentials: send 'Authorization: Bearer <key>' or HTTP basic auth")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"the request body is over {MAX_BODY_BYTES:,} bytes")
        try:
            import json

            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise InvalidInputError("body: a JSON object")
            rating = record_rating(user, data.get("model"), data.get("messages"), data.get("rating"),  # type: ignore[arg-type]
                                   data.get("index"), root=root)
        except ValueError:
            return error(400, "body: not valid JSON")
        except InvalidInputError as problem:
            return error(400, str(problem))
        return {"ok": True, "key": rating.key, "rating": rating.rating or None}

    @app.get(f"{prefix}/feedback")
    async def ratings(request: Request) -> Any:
        allowed, user = user_of(request)
        if not allowed:
            return error(401, "invalid or missing credentials")
        return {"ratings": [{"model": r.model, "rating": r.rating, "conversation": r.conversation, "time": r.time}
                            for r in load_ratings(user, root=root)]}
