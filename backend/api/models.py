"""`GET /v1/models` and `GET /v1/models/{id}`: the registry, in OpenAI's model shape with the workbench's extras."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.api.auth import ApiAuth
from backend.api.route import api_router
from backend.core.json_types import JSONOutputObject
from backend.core.registry import Registry

OWNER = "llm-workbench"


def models_routes(registry: Registry, auth: ApiAuth) -> APIRouter:
    router = api_router(auth)
    created = int(time.time())

    def model_card(model_id: str) -> JSONOutputObject:
        spec = registry.spec(model_id)
        return {
            "id": spec.id,
            "object": "model",
            "created": created,
            "owned_by": OWNER,
            # Extensions, so a client can tell what each entry does without the UI.
            "name": spec.display_name,
            "tasks": list(spec.tasks),
            "backend": spec.backend,
            "state": registry.status_of(spec.id).state,
            "max_context": spec.max_context,
        }

    # JSONResponse: the cards are sent as built, as every other route's body is.
    @router.get("/models")
    async def list_models() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [model_card(spec.id) for spec in registry.specs()]})

    @router.get("/models/{model_id}")
    async def get_model(model_id: str) -> JSONResponse:
        return JSONResponse(model_card(model_id))

    return router
