"""The public API (gradio_client, HTTP): stable endpoint names, keyword parameters, plain JSON values.

`gr.api` derives each endpoint's parameters from the function's signature and type hints. The optional
generation parameters are the same for every generating endpoint, so `accepts_generation_params` appends them
to a signature once instead of each function repeating eight parameters.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Optional, get_type_hints

import gradio as gr

from backend import service
from backend.registry import Registry
from backend.types import GenerationError, GenerationParams, TokenChoice
from ui.compare import compare_streams
from ui.components import (
    GENERATION_CONCURRENCY_ID,
    GENERATION_CONCURRENCY_LIMIT,
    collect,
    handle_errors,
    parse_seed,
    resolve_model,
    throttled,
)
from ui.models import MODELS_CONCURRENCY_ID

Overrides = dict[str, Any]

# Optional on every generating endpoint; None (or omitted) keeps the model's default from models.yaml.
GENERATION_API_PARAMS: tuple[tuple[str, Any], ...] = (
    ("max_new_tokens", Optional[int]),
    ("temperature", Optional[float]),
    ("top_p", Optional[float]),
    ("top_k", Optional[int]),
    ("repetition_penalty", Optional[float]),
    ("seed", Optional[int]),  # -1 or None: random
    ("stop", Optional[list[str]]),
)


def accepts_generation_params(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn(..., overrides) -> an endpoint function whose signature also lists GENERATION_API_PARAMS.

    Gradio calls endpoint functions positionally in signature order; the wrapper binds the arguments and
    hands fn its own ones plus an `overrides` dict of the generation parameters.
    """
    hints = get_type_hints(fn)
    own = [param.replace(annotation=hints[param.name])
           for param in inspect.signature(fn).parameters.values() if param.name != "overrides"]
    extra = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=hint)
             for name, hint in GENERATION_API_PARAMS]
    signature = inspect.Signature(own + extra, return_annotation=hints.get("return", inspect.Signature.empty))

    def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Overrides]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        return values, {name: values.pop(name) for name, _ in GENERATION_API_PARAMS}

    if inspect.isgeneratorfunction(fn):  # Gradio streams only from generator functions

        def endpoint(*args: Any, **kwargs: Any) -> Any:
            values, overrides = split(args, kwargs)
            yield from fn(**values, overrides=overrides)
    else:

        def endpoint(*args: Any, **kwargs: Any) -> Any:
            values, overrides = split(args, kwargs)
            return fn(**values, overrides=overrides)

    endpoint.__name__, endpoint.__doc__ = fn.__name__, fn.__doc__
    endpoint.__signature__ = signature  # type: ignore[attr-defined]
    endpoint.__annotations__ = {param.name: param.annotation for param in signature.parameters.values()}
    endpoint.__annotations__["return"] = signature.return_annotation
    return endpoint


def build_params(registry: Registry, model_id: str, overrides: Overrides,
                 top_alternatives: int = 0) -> GenerationParams:
    """The model's defaults from models.yaml with the request's overrides (errors name the field)."""
    overrides = {**overrides, "seed": parse_seed(overrides.get("seed")), "top_alternatives": top_alternatives}
    return registry.spec(model_id).default_params().with_overrides(**overrides)


def register(registry: Registry) -> None:
    """Adds every endpoint to the Blocks being built. Call inside `with gr.Blocks()`."""
    streaming = dict(concurrency_limit=GENERATION_CONCURRENCY_LIMIT, concurrency_id=GENERATION_CONCURRENCY_ID)
    managing = dict(concurrency_limit=4, concurrency_id=MODELS_CONCURRENCY_ID)

    @accepts_generation_params
    @handle_errors
    def chat(message: str, model: str = "", history: Optional[list[dict[str, Any]]] = None,
             system_prompt: str = "", *, overrides: Overrides) -> Iterator[str]:
        """Streams the growing assistant reply to `message` after `history` ([{role, content}, ...])."""
        model = resolve_model(registry, model, "chat")
        params = build_params(registry, model, overrides)
        for state in throttled(service.stream_chat(registry, model, message, history or (), params,
                                                   system_prompt or "")):
            yield state.text

    @accepts_generation_params
    @handle_errors
    def generate(prompt: str, model: str = "", *, overrides: Overrides) -> Iterator[str]:
        """Streams the growing raw completion of `prompt` (the completion only, without the prompt)."""
        model = resolve_model(registry, model, "generate")
        for state in throttled(service.stream_generate(registry, model, prompt, build_params(registry, model,
                                                                                             overrides))):
            yield state.text

    @accepts_generation_params
    @handle_errors
    def generate_with_probs(prompt: str, model: str = "", top_alternatives: int = 5, *,
                            overrides: Overrides) -> dict[str, Any]:
        """The completion, each generated token with its probability and top alternatives, and the stats."""
        model = resolve_model(registry, model, "generate")
        params = build_params(registry, model, overrides, top_alternatives)
        state = collect(service.stream_generate(registry, model, prompt, params))
        return {"text": state.text, "tokens": [_choice_dict(choice) for choice in state.choices],
                "stats": state.stats.to_dict() if state.stats else None}

    @accepts_generation_params
    @handle_errors
    def compare(message: str, model_a: str, model_b: str, system_prompt: str = "", *,
                overrides: Overrides) -> Iterator[list[str]]:
        """Streams [reply_a, reply_b]: the same message to two chat models at once."""
        models = [resolve_model(registry, model_a, "chat"), resolve_model(registry, model_b, "chat")]
        params = build_params(registry, models[0], overrides)
        states: tuple = ()
        for states in compare_streams(registry, message, models, params, system_prompt or ""):
            yield [state.text for state in states]
        failed = [f"model_{side} '{model}': {state.error}" for side, model, state in zip("ab", models, states)
                  if state.error]
        if failed:
            raise GenerationError("; ".join(failed))

    @handle_errors
    def models() -> list[dict[str, Any]]:
        """Every registry entry: state, weights availability, device, memory, counters, last error."""
        return [status.to_dict() for status in registry.status()]

    @handle_errors
    def load_model(model: str) -> dict[str, Any]:
        """Loads the model now (if it is not loaded) and returns its status."""
        return registry.load(model).to_dict()

    @handle_errors
    def unload_model(model: str) -> dict[str, Any]:
        """Unloads the model (after its running requests finish) and returns its status."""
        return registry.unload(model).to_dict()

    @handle_errors
    def count_tokens(text: str, model: str = "") -> dict[str, Optional[int]]:
        """{"tokens": N, "max_context": M} with the model's own tokenizer (loads the model if needed)."""
        tokens, max_context = service.count_tokens(registry, model or resolve_model(registry, None, "generate"), text)
        return {"tokens": tokens, "max_context": max_context}

    for fn in (chat, generate, compare):
        gr.api(fn, api_name=fn.__name__, **streaming)
    gr.api(generate_with_probs, api_name="generate_with_probs", **streaming)
    gr.api(models, api_name="models", queue=False)
    gr.api(count_tokens, api_name="count_tokens", **managing)
    for fn in (load_model, unload_model):
        gr.api(fn, api_name=fn.__name__, **managing)


def _choice_dict(choice: TokenChoice) -> dict[str, Any]:
    return {
        "token": choice.token,
        "probability": choice.probability,
        "alternatives": [{"token": alt.token, "probability": alt.probability} for alt in choice.alternatives],
    }
