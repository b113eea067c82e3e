"""The API's authentication, as a FastAPI dependency.

`ApiAuth(check_token, check_basic)` is called by FastAPI before every route of a router it guards
(`APIRouter(dependencies=[Depends(auth)])`, or `app.include_router(router, dependencies=[Depends(auth)])`) and
raises a 401 in OpenAI's shape when the request may not use the API. Other modules that add routes under /v1
reuse the instance `add_openai_routes` made (it is passed to their router factories), so one login guards all.
"""

from __future__ import annotations

import inspect
from typing import Awaitable, Callable, Optional, Union

from fastapi import Request

from backend.openai_api.errors import ApiError
from backend.model_access import set_viewer
from backend.security import decode_basic

# Given the bearer token of a request (None when it sends none), say whether it may use the API.
TokenCheck = Callable[[Optional[str]], Union[bool, Awaitable[bool]]]
# The same for HTTP basic auth: (user, password) -> allowed.
BasicCheck = Callable[[str, str], bool]


class ApiAuth:
    """Bearer token and/or HTTP basic auth; without either check the API is open, like the UI without `auth`."""

    def __init__(self, check_token: Optional[TokenCheck] = None, check_basic: Optional[BasicCheck] = None) -> None:
        self.check_token = check_token
        self.check_basic = check_basic

    @property
    def enabled(self) -> bool:
        return self.check_token is not None or self.check_basic is not None

    async def __call__(self, request: Request) -> None:
        if not self.enabled:
            return
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic " and self.check_basic is not None:
            credentials = decode_basic(header[6:])
            allowed = credentials is not None and self.check_basic(*credentials)
            if allowed:  # a user of the app: the registry shows them their own models and everyone's
                set_viewer(credentials[0])
        else:
            token = header[7:].strip() if header[:7].lower() == "bearer " else None
            allowed = self.check_token(token) if self.check_token is not None else False
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if not allowed:
            how = "'Authorization: Bearer <key>'" + (" or HTTP basic auth with a user of the app"
                                                    if self.check_basic is not None else "")
            raise ApiError(401, f"invalid or missing API key: send it as {how}",
                           kind="authentication_error", code="invalid_api_key")
