"""Checks the completion routes share: the model and its task, and fields only a local model can honour."""

from __future__ import annotations

import asyncio

from backend.services import tokens
from backend.api.errors import ApiError, errors_about
from backend.api.shapes import Kind
from backend.core.registry import Registry
from backend.guard.security import redact
from backend.core.types import GenerationParams, UnsupportedTaskError

# Each kind of completion request: the model task it needs, and its route (for hints).
TASKS: dict[Kind, str] = {"chat": "chat", "text": "generate"}
ROUTES: dict[Kind, str] = {"chat": "POST /v1/chat/completions", "text": "POST /v1/completions"}


async def check_local_features(registry: Registry, model: str, params: GenerationParams, logprobs: bool) -> None:
    """Fields only a model loaded in this app can honour are refused by name for a remote one (never ignored;
    the penalties and logit_bias go through to the remote server); logit_bias token ids must be the model's."""
    if registry.spec(model).backend != "transformers":
        used = [name for name, on in (("logprobs", logprobs), ("response_format", params.grammar is not None)) if on]
        if used:
            raise ApiError(400, f"{used[0]}: not available for model '{model}', which runs on a remote server "
                           "(only models loaded in this app support it)", param=used[0])
        return
    if params.logit_bias:
        with errors_about("prompt"):
            vocabulary = (await asyncio.to_thread(tokens.tokenizer_info, registry, model))["vocab_size"]
        if not isinstance(vocabulary, int):  # every local tokenizer reports its size: nothing to check without
            return
        outside = [token for token, _ in params.logit_bias if token >= vocabulary]
        if outside:
            raise ApiError(400, f"logit_bias: token id {outside[0]} is not in model '{model}''s vocabulary "
                           f"(0 to {vocabulary - 1})", param="logit_bias")


def check_model(registry: Registry, model: str, kind: Kind) -> None:
    """Unknown model: 404 (ModelNotFoundError); a model without the task: 400 naming the route that serves it."""
    try:
        registry.spec(model, TASKS[kind])  # type: ignore[arg-type]
    except UnsupportedTaskError as error:
        other = next((other for other, task in TASKS.items()
                      if other != kind and task in registry.spec(model).tasks), None)
        hint = f"; it can be used with {ROUTES[other]}" if other else ""
        raise ApiError(400, f"{redact(str(error))}{hint}", param="model", code="unsupported_task") from None
