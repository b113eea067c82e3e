"""Every HTTP route of the app's API, as one FastAPI router: `build_router` and `add_api_routes`.

    /v1/models, /v1/models/{id}   models.py        /v1/embeddings   embeddings.py
    /v1/chat/completions          chat.py          /v1/feedback     feedback.py
    /v1/completions               completions.py   /tokenize, /detokenize, /tokenizer_info   tokenizer.py
                                                                     (at the root, where vLLM serves them)

`add_api_routes(app, registry, security, throttle=...)` mounts them on any FastAPI app, Gradio's included, so the
API and the UI share one server, one registry (one copy of each model in memory) and one login throttle. Every
family is a factory `(registry, auth) -> APIRouter` built on `route.api_router(auth)`; each of its routes checks
the credential (auth.py), the body (body.py) and answers errors in OpenAI's shape (errors.py) the same way.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from fastapi import APIRouter, FastAPI

from backend.api.auth import ApiAuth, BasicCheck, TokenCheck
from backend.api.chat import chat_routes
from backend.api.completions import completions_routes
from backend.api.embeddings import embeddings_routes
from backend.api.feedback import feedback_routes
from backend.api.models import models_routes
from backend.api.tokenizer import tokenizer_routes
from backend.core.registry import Registry
from backend.guard.security import SecuritySettings
from backend.guard.throttle import LoginThrottle

# A family of routes: (registry, auth) -> APIRouter, made with `api_router(auth)`.
RouterFactory = Callable[[Registry, ApiAuth], APIRouter]
PREFIX = "/v1"
OPENAI: tuple[RouterFactory, ...] = (models_routes, chat_routes, completions_routes)


def families(feedback_root: Optional[Path] = None) -> dict[str, tuple[RouterFactory, ...]]:
    """Every family of routes, by the prefix it is mounted under ("" is the server's root)."""
    feedback = partial(feedback_routes, root=feedback_root)
    return {PREFIX: (*OPENAI, embeddings_routes, feedback), "": (tokenizer_routes,)}


def build_router(registry: Registry, auth: ApiAuth,
                 mounted: Optional[Mapping[str, Sequence[RouterFactory]]] = None) -> APIRouter:
    """One router holding every route of `mounted` (default: all of `families()`), each behind `auth`."""
    router = APIRouter()
    for prefix, factories in (mounted if mounted is not None else families()).items():
        for factory in factories:
            router.include_router(factory(registry, auth), prefix=prefix)
    return router


def add_api_routes(app: FastAPI, registry: Registry, security: Optional[SecuritySettings] = None, *,
                   throttle: Optional[LoginThrottle] = None, feedback_root: Optional[Path] = None) -> ApiAuth:
    """Adds every API route to `app`, behind the logins of `security` (open without them) with failed logins
    counted in `throttle` (the login form's, so a guesser is stopped on every channel at once)."""
    auth = ApiAuth.from_security(security, throttle)
    app.include_router(build_router(registry, auth, families(feedback_root)))
    return auth


# ------------------------------------------------------------------------------ one family at a time
# For tests and scripts that serve part of the API: the same routes, auth and error handling.


def add_openai_routes(app: FastAPI, registry: Registry, *, prefix: str = PREFIX,
                      check_token: Optional[TokenCheck] = None, check_basic: Optional[BasicCheck] = None,
                      extra_routers: Sequence[RouterFactory] = ()) -> ApiAuth:
    """`/v1/models`, `/v1/chat/completions`, `/v1/completions` (and `extra_routers`, under `prefix`) plus the
    tokenizer routes at the root, behind `check_token` (bearer) / `check_basic` (user, password)."""
    auth = ApiAuth(check_token, check_basic)
    app.include_router(build_router(registry, auth, {prefix: (*OPENAI, *extra_routers), "": (tokenizer_routes,)}))
    return auth


def add_embeddings_route(app: FastAPI, registry: Registry, *, prefix: str = PREFIX,
                         check_token: Optional[TokenCheck] = None, check_basic: Optional[BasicCheck] = None) -> None:
    """`POST /v1/embeddings` alone."""
    app.include_router(build_router(registry, ApiAuth(check_token, check_basic), {prefix: (embeddings_routes,)}))


def add_feedback_routes(app: FastAPI, *, prefix: str = PREFIX, check_token: Optional[TokenCheck] = None,
                        check_basic: Optional[BasicCheck] = None, root: Optional[Path] = None) -> None:
    """`/v1/feedback` alone (it needs no registry)."""
    factory = partial(feedback_routes, root=root)
    auth = ApiAuth(check_token, check_basic)
    app.include_router(build_router(None, auth, {prefix: (factory,)}))  # type: ignore[arg-type]
