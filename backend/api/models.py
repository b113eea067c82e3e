"""`GET /v1/models` and `GET /v1/models/{id}`: the registry, in OpenAI's model shape with the workbench's extras."""

from __future__ import annotations

import time

from fastapi import APIRouter

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

    # response_model=None: the cards are built here and sent as they are (FastAPI would derive a response
    # model from the return annotation, and a recursive JSON alias is not one pydantic can build).
    @router.get("/models", response_model=None)
    async def list_models() -> JSONOutputObject:
        return {"object": "list", "data": [model_card(spec.id) for spec in registry.specs()]}

    @router.get("/models/{model_id}", response_model=None)
    async def get_model(model_id: str) -> JSONOutputObject:
        return model_card(model_id)

    return router
