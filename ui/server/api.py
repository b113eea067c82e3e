"""The public API (gradio_client, HTTP): stable endpoint names, keyword parameters, plain JSON values.

`gr.api` derives each endpoint's parameters from the function's signature and type hints. The optional
generation parameters are the same for every generating endpoint, so `accepts_generation_params` appends them
to a signature once instead of each function repeating eight parameters.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Collection, Iterator, Optional, get_type_hints

import gradio as gr

from backend.services import generation as service
from backend.core.registry import Registry
from backend.core.types import GenerationError, GenerationParams, Task, TokenChoice
from ui.compare.tab import compare_streams
from ui.common.components import (
    GENERATION_CONCURRENCY_ID,
    GENERATION_CONCURRENCY_LIMIT,
    collect,
    handle_errors,
    parse_seed,
    resolve_model,
    throttled,
)
from ui.models.tab import MODELS_CONCURRENCY_ID

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


# Every endpoint `register` can add, in the order it adds them.
ALL_ENDPOINTS: tuple[str, ...] = ("chat", "generate", "compare", "generate_with_probs", "models", "count_tokens",
                                  "load_model", "unload_model")
# Presenter mode's API: reading and generating only. Nobody can load or unload models through it (the demo model
# stays put mid-demo), and there is no two-model /compare on a one-model screen.
PRESENTER_ENDPOINTS: tuple[str, ...] = ("chat", "generate", "generate_with_probs", "models", "count_tokens")


def register(registry: Registry, endpoints: Collection[str] = ALL_ENDPOINTS,
             default_model: Optional[str] = None) -> None:
    """Adds the named `endpoints` to the Blocks being built. Call inside `with gr.Blocks()`.

    `default_model` is the model a request without one gets, for every endpoint whose task it does (presenter
    mode: its locked model); without it, or for a task it does not do, the registry's first model for the task.
    """
    unknown = set(endpoints) - set(ALL_ENDPOINTS)
    if unknown:
        raise ValueError(f"unknown API endpoints {sorted(unknown)}; known: {', '.join(ALL_ENDPOINTS)}")
    if default_model is not None:
        registry.spec(default_model)  # a clear error now, not on the first request
    streaming = dict(concurrency_limit=GENERATION_CONCURRENCY_LIMIT, concurrency_id=GENERATION_CONCURRENCY_ID)
    managing = dict(concurrency_limit=4, concurrency_id=MODELS_CONCURRENCY_ID)

    def pick(model: Optional[str], task: Task) -> str:
        """The model given, else `default_model` when it does `task`, else the registry's first for `task`."""
        if not model and default_model and task in registry.spec(default_model).tasks:
            return default_model
        return resolve_model(registry, model, task)

    @accepts_generation_params
    @handle_errors
    def chat(message: str, model: str = "", history: Optional[list[dict[str, Any]]] = None,
             system_prompt: str = "", *, overrides: Overrides) -> Iterator[str]:
        """Streams the growing assistant reply to `message` after `history` ([{role, content}, ...])."""
        model = pick(model, "chat")
        params = build_params(registry, model, overrides)
        for state in throttled(service.stream_chat(registry, model, message, history or (), params,
                                                   system_prompt or "")):
            yield state.text

    @accepts_generation_params
    @handle_errors
    def generate(prompt: str, model: str = "", *, overrides: Overrides) -> Iterator[str]:
        """Streams the growing raw completion of `prompt` (the completion only, without the prompt)."""
        model = pick(model, "generate")
        for state in throttled(service.stream_generate(registry, model, prompt, build_params(registry, model,
                                                                                             overrides))):
            yield state.text

    @accepts_generation_params
    @handle_errors
    def generate_with_probs(prompt: str, model: str = "", top_alternatives: int = 5, *,
                            overrides: Overrides) -> dict[str, Any]:
        """The completion, each generated token with its probability and top alternatives, and the stats."""
        model = pick(model, "generate")
        params = build_params(registry, model, overrides, top_alternatives)
        state = collect(service.stream_generate(registry, model, prompt, params))
        return {"text": state.text, "tokens": [_choice_dict(choice) for choice in state.choices],
                "stats": state.stats.to_dict() if state.stats else None}

    @accepts_generation_params
    @handle_errors
    def compare(message: str, model_a: str, model_b: str, system_prompt: str = "", *,
                overrides: Overrides) -> Iterator[list[str]]:
        """Streams [reply_a, reply_b]: the same message to two chat models at once."""
        models = [pick(model_a, "chat"), pick(model_b, "chat")]
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
        # Counting needs no task: any model given is used as is, and so is the default model.
        tokens, max_context = service.count_tokens(registry, model or default_model or pick(None, "generate"),
                                                   text)
        return {"tokens": tokens, "max_context": max_context}

    options: dict[str, dict[str, Any]]
    options = {"chat": streaming, "generate": streaming, "compare": streaming, "generate_with_probs": streaming,
               "models": dict(queue=False), "count_tokens": managing, "load_model": managing,
               "unload_model": managing}
    functions = {fn.__name__: fn for fn in (chat, generate, compare, generate_with_probs, models, count_tokens,
                                            load_model, unload_model)}
    for name in ALL_ENDPOINTS:
        if name in endpoints:
            gr.api(functions[name], api_name=name, **options[name])


def _choice_dict(choice: TokenChoice) -> dict[str, Any]:
    return {
        "token": choice.token,
        "probability": choice.probability,
        "alternatives": [{"token": alt.token, "probability": alt.probability} for alt in choice.alternatives],
    }
