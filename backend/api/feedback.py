"""`/v1/feedback`: rate a reply through the HTTP API, next to the OpenAI-compatible routes.

    POST /v1/feedback  {"model": "ID", "messages": [...], "rating": "up" | "down" | null, "index": N?}
                       -> {"ok": true, "key", "rating"}
    GET  /v1/feedback?offset=0&limit=100
                       -> {"ratings": [{"model", "rating", "conversation", "time"}, ...], "total", "offset",
                           "limit", "next_offset"}  (oldest first; next_offset is null on the last page; a page
                           holds at most `limit` ratings and about 4 MB of them, at least one)

Who rates: the HTTP basic user when logins are on; a bearer-token caller is the user "api" (auth.TOKEN_USER). With
the app open (no logins) everything goes to the single local user, like the UI. What one user may store is
bounded in backend/data/feedback.py (one rating's size, the number of ratings and the bytes of the file).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict

from backend.api.auth import ApiAuth
from backend.api.errors import errors_about
from backend.api.route import api_router, json_response
from backend.core.json_types import JSONOutputObject
from backend.data.feedback import Rating, load_ratings, record_rating
from backend.core.registry import Registry

MAX_BODY_BYTES = 2_000_000  # a long conversation whose earlier reply is rated (`index`); what is stored is bounded
DEFAULT_PAGE = 100
MAX_PAGE = 500
MAX_PAGE_BYTES = 4_000_000  # one page's ratings as JSON (16 ratings of the largest size); the rest on the next page


class FeedbackRequest(BaseModel):
    """The fields are checked by `record_rating`, which the UI's thumbs use too (errors name the field)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model: Any = None
    messages: Any = None
    rating: Any = None
    index: Any = None


def feedback_routes(registry: Optional[Registry], auth: ApiAuth, root: Optional[Path] = None) -> APIRouter:
    """The routes; `root` is the folder users' data lives under (default: the runs folder, backend/user_space)."""
    router = api_router(auth, max_body_bytes=MAX_BODY_BYTES)

    @router.post("/feedback")
    async def rate(body: FeedbackRequest, user: Optional[str] = Depends(auth)) -> dict[str, Any]:
        with errors_about("messages"):
            rating = await asyncio.to_thread(record_rating, user, body.model, body.messages, body.rating,
                                             body.index, root=root)
        return {"ok": True, "key": rating.key, "rating": rating.rating or None}

    @router.get("/feedback")
    async def ratings(user: Optional[str] = Depends(auth), offset: int = Query(0, ge=0),
                      limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE)) -> Response:
        stored = await asyncio.to_thread(load_ratings, user, root=root)
        page = await asyncio.to_thread(_page, stored[offset:offset + limit])
        following = offset + len(page)
        return await json_response({
            "ratings": page, "total": len(stored), "offset": offset, "limit": limit,
            "next_offset": following if following < len(stored) else None})

    return router


def _page(ratings: Sequence[Rating]) -> list[JSONOutputObject]:
    """The ratings as the listing shows them, as many as fit `MAX_PAGE_BYTES` (at least one): 500 ratings of up to
    256 kB each would make a 128 MB body; `next_offset` goes on from the first one left out."""
    page: list[JSONOutputObject] = []
    size = 0
    for rating in ratings:
        shown: JSONOutputObject = {"model": rating.model, "rating": rating.rating, "conversation": rating.conversation,
                                   "time": rating.time}
        size += len(json.dumps(shown))
        if page and size > MAX_PAGE_BYTES:
            break
        page.append(shown)
    return page
