"""The API's one authentication, as a FastAPI dependency: the login throttle, then the credential.

`ApiAuth(check_token, check_basic, throttle)` guards every route of the API (`api_router(auth)` puts it on each;
`ApiRoute` runs it before the body is read). With logins on, a request sends `Authorization: Bearer <token>` or
HTTP basic auth with a user of the app. Failed credentials count in the same `LoginThrottle` as the login form
(backend/guard/throttle.py): once a client or a user name has used up its failures, every further attempt on any
route, the right password included, is answered 429 with `Retry-After` until the window lets it go. A request
without credentials is refused (401) but counts as no guess.

The dependency's value is the caller's user name, for routes that store per user: the basic-auth user, `TOKEN_USER`
for a bearer token, None when the API is open (everything belongs to the single local user then, as in the UI).
"""

from __future__ import annotations

import inspect
from typing import Awaitable, Callable, Optional, Union

from fastapi import Request

from backend.guard.model_access import set_viewer
from backend.api.errors import ApiError
from backend.guard.limits import client_address
from backend.guard.security import SecuritySettings, decode_basic
from backend.guard.throttle import LoginThrottle, too_many_message

# Given the bearer token of a request (None when it sends none), say whether it may use the API.
TokenCheck = Callable[[Optional[str]], Union[bool, Awaitable[bool]]]
# The same for HTTP basic auth: (user, password) -> allowed.
BasicCheck = Callable[[str, str], bool]
# The user a bearer-token caller stores as (feedback, ...): a token names no user.
TOKEN_USER = "api"
# Where a request's decision is kept, so the route class and FastAPI's dependency decide once.
_DECIDED = "workbench.api_user"


class ApiAuth:
    """Bearer token and/or HTTP basic auth, throttled; without either check the API is open, like the UI without
    `auth`."""

    def __init__(self, check_token: Optional[TokenCheck] = None, check_basic: Optional[BasicCheck] = None,
                 throttle: Optional[LoginThrottle] = None) -> None:
        self.check_token = check_token
        self.check_basic = check_basic
        self.throttle = throttle

    @classmethod
    def from_security(cls, security: Optional[SecuritySettings],
                      throttle: Optional[LoginThrottle] = None) -> "ApiAuth":
        """The app's logins (backend/guard/security.py): open when `security` has none."""
        if security is None or not security.auth_enabled:
            return cls()
        return cls(security.check_token, security.check_password, throttle)

    @property
    def enabled(self) -> bool:
        return self.check_token is not None or self.check_basic is not None

    async def __call__(self, request: Request) -> Optional[str]:
        """The caller's user name (see the module text); 401 / 429 as an ApiError when it may not use the API."""
        if _DECIDED in request.scope:
            user = request.scope[_DECIDED]
        else:
            user = await self._decide(request)
            request.scope[_DECIDED] = user
        if user is not None and user != TOKEN_USER:  # a user of the app: the registry shows them their own models
            set_viewer(user)                          # and everyone's (a token is the operator's: every model)
        return user

    async def _decide(self, request: Request) -> Optional[str]:
        if not self.enabled:
            return None
        header = request.headers.get("authorization", "").strip()
        scheme, _, value = header.partition(" ")
        credentials = decode_basic(value) if scheme.lower() == "basic" and self.check_basic is not None else None
        name = credentials[0] if credentials else None
        client = client_address(request.scope, self.throttle.settings.trust_forwarded_for) if self.throttle else ""
        if header and self.throttle is not None:
            wait = self.throttle.retry_after(client, name)
            if wait > 0:
                seconds = str(int(wait + 0.999))
                raise ApiError(429, too_many_message(wait), kind="rate_limit_error", code="too_many_login_attempts",
                               headers={"Retry-After": seconds})
        answer: Union[bool, Awaitable[bool]]
        if scheme.lower() == "basic" and self.check_basic is not None:
            answer = credentials is not None and self.check_basic(*credentials)
            user = name
        else:
            token = value.strip() if scheme.lower() == "bearer" else None
            answer = self.check_token(token) if self.check_token is not None and token else False
            user = TOKEN_USER
        allowed = await answer if inspect.isawaitable(answer) else answer
        if allowed:
            return user
        if header and self.throttle is not None:
            self.throttle.failed(client, name)
        how = "'Authorization: Bearer <key>'" + (" or HTTP basic auth with a user of the app"
                                                if self.check_basic is not None else "")
        raise ApiError(401, f"invalid or missing API key: send it as {how}",
                       kind="authentication_error", code="invalid_api_key")
