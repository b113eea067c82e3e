"""The app's HTTP API, every route under one router (backend/api/router.py `add_api_routes`):

    GET  /v1/models, /v1/models/{id}   models.py       the registry, in OpenAI's shape
    POST /v1/chat/completions          chat.py         n, logprobs, penalties, logit_bias, response_format;
                                       tools.py        tool calling
    POST /v1/completions               completions.py  lists of prompts, token ids, echo, logprobs
    POST /v1/embeddings                embeddings.py   `embed` models
    GET/POST /v1/feedback              feedback.py     thumbs up / down on a reply, per user
    POST /tokenize, /detokenize, GET /tokenizer_info   tokenizer.py (vLLM's, at the root)

Shared by every route: `auth.py` (one credential check, API token or a user's password, counted in the login
throttle of backend/guard/throttle.py), `route.py` (`ApiRoute`: auth, then the body checks of `body.py`, then the route;
one error handler), `errors.py` (OpenAI's error JSON, `param` from the error's `field`), `schemas.py` /
`messages.py` (pydantic request bodies), `shapes.py` (response and chunk shapes), `streaming.py` (thread -> SSE /
JSON), `grammar.py` (bounded grammar builds off the event loop), `checks.py` (model and feature checks).
Every field is documented in docs/API.md. FastAPI is the only web import here; gradio is not needed.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 400 for bad input (naming the
field), 401 when the credential check refuses, 413 for a body over the route's limit, 429 with Retry-After when
the model's queue is full or after too many failed logins, 404 for an unknown model, 503 when the model cannot be
loaded, 500 when generation fails. A client that disconnects closes the backend stream, which stops generation.

Adding a route family: write `def my_routes(registry, auth) -> APIRouter` that starts from
`router = api_router(auth)`; take the body as a pydantic model whose validators raise `invalid("must be ...")`
for field-named 400s; raise `ApiError` or any backend error (mapped by `api_error`, `param` from its `field`);
take `user: Optional[str] = Depends(auth)` to store per user; then add the factory to `router.families()`.
"""

from backend.api.auth import TOKEN_USER, ApiAuth, BasicCheck, TokenCheck
from backend.api.errors import ApiError, api_error, bad_request, errors_about, invalid
from backend.api.models import OWNER
from backend.api.route import ApiRoute, api_router
from backend.api.router import (
    RouterFactory,
    add_api_routes,
    add_embeddings_route,
    add_feedback_routes,
    add_openai_routes,
    build_router,
    families,
)

__all__ = [
    "OWNER",
    "TOKEN_USER",
    "ApiAuth",
    "ApiError",
    "ApiRoute",
    "BasicCheck",
    "RouterFactory",
    "TokenCheck",
    "add_api_routes",
    "add_embeddings_route",
    "add_feedback_routes",
    "add_openai_routes",
    "api_error",
    "api_router",
    "bad_request",
    "build_router",
    "errors_about",
    "families",
    "invalid",
]
