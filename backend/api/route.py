"""The route class every API route is built with, and the empty router new route families start from.

`ApiRoute` runs, for each request, in this order: the router's `ApiAuth` (the login throttle, then the
credential: a stranger hears 401 or 429 before anything about its body), the body checks of backend/api/body.py
(size, UTF-8, depth, lone surrogates: field-named 400s), then the route. Whatever the route raises is answered by
the one error handler: pydantic's validation errors through `from_validation`, everything else through
`api_error` (OpenAI's error JSON, `param` from the error's `field`).

A route class rather than `app.exception_handler`: it works on an app that is already serving (Gradio's, once
launched), whose exception handlers Starlette fixed when it built the middleware stack on the first request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Callable, Coroutine, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from backend.api.auth import ApiAuth
from backend.api.body import MAX_BODY_BYTES, read_json
from backend.api.errors import api_error, from_validation
from backend.core.json_types import JSONOutput, JSONOutputObject


class ApiRoute(APIRoute):
    """One API route: auth first, then the body checks, then the route; one error handler for all of them."""

    max_body_bytes: int = MAX_BODY_BYTES

    def get_route_handler(self) -> Callable[[Request], Coroutine[object, object, Response]]:
        handler = super().get_route_handler()
        auth = self._auth()
        limit = self.max_body_bytes

        async def handle(request: Request) -> Response:
            try:
                if auth is not None:
                    await auth(request)
                if request.method in ("POST", "PUT", "PATCH"):
                    await read_json(request, limit)
                return await handler(request)
            except RequestValidationError as error:
                return from_validation(error.errors()).response()
            except Exception as error:  # noqa: BLE001 - every failure answers in OpenAI's shape
                return api_error(error).response()

        return handle

    def _auth(self) -> Optional[ApiAuth]:
        for depends in self.dependencies:
            if isinstance(depends.dependency, ApiAuth):
                return depends.dependency
        return None


def api_router(auth: ApiAuth, max_body_bytes: Optional[int] = None) -> APIRouter:
    """An empty router for API routes: `auth` before each, OpenAI-shaped errors from each (ApiRoute), bodies up to
    `max_body_bytes` (default `MAX_BODY_BYTES`). The auth dependency sits on the routes themselves (not on
    `include_router`), where ApiRoute can see it; a route that wants the caller's user name takes
    `user: Optional[str] = Depends(auth)` (FastAPI gives the value the route class already decided)."""
    route_class: type[ApiRoute] = ApiRoute
    if max_body_bytes is not None:
        route_class = type("LimitedApiRoute", (ApiRoute,), {"max_body_bytes": max_body_bytes})
    return APIRouter(route_class=route_class, dependencies=[Depends(auth)])


_SLICE = 20_000  # list items encoded in one json.dumps call: a few ms of GIL each


def _dumps(value: JSONOutput) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def json_bytes(content: JSONOutputObject) -> bytes:
    """`content` as Starlette's JSONResponse renders it, each long top-level list encoded `_SLICE` items at a time:
    one json.dumps call holds the GIL throughout (0.22 s for 1.8 million ids), between calls the loop can run."""
    parts = []
    for key, value in content.items():
        if isinstance(value, list) and len(value) > _SLICE:
            items = ",".join(_dumps(value[start:start + _SLICE])[1:-1] for start in range(0, len(value), _SLICE))
            parts.append(f"{_dumps(key)}:[{items}]")
        else:
            parts.append(f"{_dumps(key)}:{_dumps(value)}")
    return ("{" + ",".join(parts) + "}").encode()


async def json_response(content: JSONOutputObject) -> Response:
    """A JSON response whose body is encoded in a worker thread, a slice at a time, not on the event loop: a
    JSONResponse encodes in its constructor, on the loop, in one call, and the 1.8 million ids of the longest
    tokenized chat took it 0.22 CPU-s with the GIL held (0.4-1.5 s of the loop's time on a loaded machine: every
    /config waited that long; docs/RELIABILITY.md)."""
    return Response(await asyncio.to_thread(json_bytes, content), media_type="application/json")
