"""The app's own OpenAI-compatible API over its registry: `GET /v1/models`, `GET /v1/models/{id}`,
`POST /v1/chat/completions` (chat models; n, logprobs, penalties, logit_bias, response_format, tools) and
`POST /v1/completions` (the legacy text-completion API, for models with the `generate` task; lists of prompts,
token ids, echo, logprobs), plus vLLM's tokenizer routes: streaming SSE and plain JSON, OpenAI response shapes
with `usage`.

Modules: `schemas` and `messages` (pydantic request models, field-named errors), `router` (the routes and
`add_openai_routes`), `auth` (the auth dependency), `errors` (OpenAI's error shape, the one exception handler),
`responses` (response and chunk shapes), `streaming` (thread -> SSE / JSON), `completions` (several prompts,
token ids, echo, logprobs), `chat` (n, logprobs), `tools` (tool calling), `tokenizer` (vLLM's /tokenize,
/detokenize, /tokenizer_info). Every field is documented in docs/API.md.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 400 for bad input (naming the
field), 401 when the optional token check refuses, 404 for an unknown model, 429 (with Retry-After) when the
model's queue is full, 503 when the model cannot be loaded, 500 when generation fails. A client that disconnects
closes the backend stream, which stops generation.

Extensions beyond OpenAI's fields (as vLLM): `top_k` and `repetition_penalty` in requests, and the workbench's own
statistics (time to first token, tokens/s, notices) under `"workbench"` in the last chunk / the response.
FastAPI is the only web import here; gradio is not needed.

Adding routes beside these (for other modules): write `def my_routes(registry, auth) -> APIRouter` that starts
from `router = api_router(auth)` (OpenAI-shaped errors from every route, the shared auth before each); take the
body as a pydantic model whose validators raise `invalid("must be ...")` for field-named 400s; raise `ApiError`
or any backend error (mapped by `api_error`); then pass `extra_routers=[my_routes]` to `add_openai_routes`,
which mounts it under `/v1`.
"""

from backend.openai_api.auth import ApiAuth, BasicCheck, TokenCheck
from backend.openai_api.errors import ApiError, ApiRoute, api_error, bad_request, errors_about, invalid
from backend.openai_api.router import OWNER, RouterFactory, add_openai_routes, api_router, openai_router

__all__ = [
    "OWNER",
    "ApiAuth",
    "ApiError",
    "ApiRoute",
    "BasicCheck",
    "RouterFactory",
    "TokenCheck",
    "add_openai_routes",
    "api_error",
    "api_router",
    "bad_request",
    "errors_about",
    "invalid",
    "openai_router",
]
