"""Widgets and helpers every tab shares: model picker, parameter accordion, stats line, streaming, errors.

Only backend.types / backend.config / backend.registry / backend.service / backend.security /
backend.request_checks are imported here
(never torch): the UI talks to the backend through plain data.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, TypeVar

import gradio as gr

from backend.config import ModelSpec
from backend.registry import Registry
from backend.request_checks import lone_surrogates
from backend.security import redact
from backend.streams import close_quietly
from backend.table_limits import MAX_MESSAGE_CHARS, clip
from backend.types import (
    MAX_NEW_TOKENS_LIMIT,
    Delta,
    Event,
    Final,
    GenerationParams,
    GenerationStats,
    InvalidInputError,
    Task,
    TokenChoice,
    WorkbenchError,
)
from ui.update_rate import UPDATE_BUDGET, Throttle, UpdateBudget
from ui.wording import plain_words
from ui.i18n import t, text

logger = logging.getLogger(__name__)

# Every streaming event (UI and API) shares one concurrency group, so up to this many users stream at once; the
# backend batches the requests to one model into shared forward passes (backend/engines/batching.py).
GENERATION_CONCURRENCY_ID = "generation"
GENERATION_CONCURRENCY_LIMIT = 16
STREAMING = {"concurrency_limit": GENERATION_CONCURRENCY_LIMIT, "concurrency_id": GENERATION_CONCURRENCY_ID}

PRESETS: dict[str, dict[str, float]] = {
    "precise": {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.1},
    "balanced": {"temperature": 0.7, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.05},
    "creative": {"temperature": 1.1, "top_p": 0.98, "top_k": 0, "repetition_penalty": 1.0},
}

PRESET_FIELDS = tuple(PRESETS["balanced"])  # the sliders a preset sets, in the order of its values

FINISH_EXPLAINED = {
    "stop": "stop (end of text or a stop sequence)",
    "length": "length (max new tokens reached)",
    "cancelled": "cancelled",
    "error": "error",
}

# ----------------------------------------------------------------------------------------------- errors

F = TypeVar("F", bound=Callable[..., Any])


def user_error(message: str) -> gr.Error:
    """gr.Error renders its message as HTML: escape it (it often quotes user text). Quotes stay readable.

    Secrets (a remote server's error may quote the API key it was sent) become `***`.
    """
    return gr.Error(html.escape(clip(redact(message), MAX_MESSAGE_CHARS), quote=False), print_exception=False)


def _as_user_error(error: Exception, plain: bool = False) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, WorkbenchError):
        return user_error(plain_words(str(error)) if plain else str(error))
    logger.exception("unexpected error in a UI handler")
    return user_error(f"unexpected error: {type(error).__name__}: {error}")


def refuse_invalid_text(args: list[Any]) -> None:
    """A lone UTF-16 surrogate (the browser or a client can send one) is not text: it failed deep in a tokenizer
    as "unexpected error: TypeError". Say so plainly instead (strings, and those inside lists and dicts: a chat
    history)."""
    for _, bad in lone_surrogates(args):
        raise user_error(f"the text contains a lone UTF-16 surrogate ({bad}), which is not a valid character; "
                         "remove it and try again")


def handle_errors(fn: F, plain: bool = False) -> F:
    """Turns backend errors (and surprises) into a gr.Error the user can read; the app keeps serving.

    Works for plain functions and generators (Gradio streams only when the handler is a generator function).
    GeneratorExit (Stop, cancel, closed tab) is not an Exception, so it passes through and closes the stream.
    `plain=True` (ui_errors) words the message for a person (ui/wording.py); API handlers keep field names.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            refuse_invalid_text([*args, *kwargs.values()])
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                raise _as_user_error(error, plain) from error

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refuse_invalid_text([*args, *kwargs.values()])
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise _as_user_error(error, plain) from error

    return wrapper  # type: ignore[return-value]


def ui_errors(fn: F) -> F:
    """handle_errors for UI handlers: errors in plain words."""
    return handle_errors(fn, plain=True)


def ui_event(feedback_on: gr.components.Component, progress: bool = False, queue: bool = True) -> dict[str, Any]:
    """Listener options for a UI event: kept off the API page, and progress shown only on `feedback_on`.

    Why: by default Gradio covers every output of a failed event with an "Error" badge that hides (and blocks)
    the chat, the sliders, ... until dismissed. With the progress pinned to one small component and hidden,
    a failure shows only the toast. `queue=False` for instant, model-free updates (undo, presets).
    """
    return {"api_visibility": "private", "show_progress": "full" if progress else "hidden",
            "show_progress_on": feedback_on, "queue": queue}


def status_sink() -> gr.HTML:
    """An invisible component that carries a streaming event's status badge.

    Why: when Stop cancels a stream, Gradio may mark the cancelled event as failed and put an "Error" badge on
    the component its progress is pinned to; pinned to the stats line, a normal Stop read "Error Stopped.".
    Real failures still reach the user as a toast (gr.Error).
    """
    return gr.HTML("", visible=False)


def cancel_then(button: gr.Button, running: list[Any], fn: Any, outputs: Any, feedback_on: gr.components.Component,
                inputs: Any = None) -> Any:
    """On click: cancel the running streams first, then run `fn`.

    Why two steps: an update already on its way from the cancelled stream could land after a combined
    cancel-and-update and overwrite it ("Stopped" replaced by a stale "generating...", an undone bubble back).
    """
    return button.click(None, cancels=running, api_visibility="private", queue=False).then(
        fn, inputs=inputs, outputs=outputs, **ui_event(feedback_on, queue=False))


# ------------------------------------------------------------------------------------------ model picker


def model_picker(registry: Registry, task: Task, elem_id: str, label: Any = None,
                 index: int = 0) -> gr.Dropdown:
    """A dropdown of the registry's models for `task`: shows names, yields ids."""
    specs = registry.specs(task)
    choices = [(spec.display_name, spec.id) for spec in specs]
    value = specs[min(index, len(specs) - 1)].id if specs else None
    return gr.Dropdown(choices=choices, value=value, label=label or t("model"), elem_id=elem_id, interactive=True,
                       info=None if specs else f"no model in models.yaml does '{task}'")


def first_spec(registry: Registry, task: Task) -> Optional[ModelSpec]:
    specs = registry.specs(task)
    return specs[0] if specs else None


def resolve_model(registry: Registry, model_id: Optional[str], task: Task) -> str:
    """The model to use: the one given, or the registry's first model for the task when none is."""
    if model_id:
        registry.spec(model_id, task)  # a clear error for unknown ids and wrong tasks
        return model_id
    spec = first_spec(registry, task)
    if spec is None:
        raise InvalidInputError(f"model: none given, and no model in this registry does '{task}'")
    return spec.id


# ----------------------------------------------------------------------------------- generation params


def parse_seed(value: Any) -> Optional[int]:
    """Blank or -1 means a random seed (None); anything else must be a whole number >= 0."""
    if value is None or value == "" or value == -1:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise InvalidInputError(f"seed: give a whole number >= 0, or leave it blank (-1) for random; got {value!r}")
    return None if value == -1 else value


def parse_stop(text: Any) -> tuple[str, ...]:
    """Stop sequences from the text box: one per line, or comma separated when on one line.

    `\\n` and `\\t` typed literally become a newline / tab, so "\\n\\n" can stop at a blank line.
    """
    if text is None:
        return ()
    if isinstance(text, (list, tuple)):
        items = list(text)
    elif isinstance(text, str):
        items = text.splitlines() if "\n" in text.strip() else text.split(",")
    else:
        raise InvalidInputError("stop: give text (one sequence per line) or a list of strings")
    if not all(isinstance(item, str) for item in items):
        raise InvalidInputError("stop: every stop sequence must be text")
    cleaned = (item.strip().replace("\\n", "\n").replace("\\t", "\t") for item in items)
    return tuple(item for item in cleaned if item)


@dataclass(frozen=True)
class ParamPanel:
    """The generation-parameter accordion of one tab, and the one place widgets become GenerationParams."""

    preset: gr.Radio
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    repetition_penalty: gr.Slider
    seed: gr.Number
    stop: gr.Textbox

    @classmethod
    def build(cls, prefix: str, spec: Optional[ModelSpec]) -> "ParamPanel":
        """Renders the accordion; `prefix` ("chat", "gen", ...) names the elem_ids."""
        params = spec.default_params() if spec else GenerationParams()
        with gr.Accordion(t("params"), open=False, elem_id=f"{prefix}-params"):
            preset = gr.Radio(list(PRESETS), value=None, label=t("preset"), elem_id=f"{prefix}-preset",
                              info=t("preset_info"))
            with gr.Row():
                max_new_tokens = gr.Slider(1, _token_limit(spec), value=params.max_new_tokens, step=1,
                                           label=t("max_new_tokens"), elem_id=f"{prefix}-max-new-tokens")
                temperature = gr.Slider(0.0, 2.0, value=params.temperature, step=0.05, label=t("temperature"),
                                        info=t("temperature_info"), elem_id=f"{prefix}-temperature")
            with gr.Row():
                top_p = gr.Slider(0.05, 1.0, value=params.top_p, step=0.01, label=t("top_p"),
                                  elem_id=f"{prefix}-top-p")
                top_k = gr.Slider(0, 200, value=params.top_k, step=1, label=t("top_k"), info=t("top_k_info"),
                                  elem_id=f"{prefix}-top-k")
            with gr.Row():
                repetition_penalty = gr.Slider(0.5, 2.0, value=params.repetition_penalty, step=0.01,
                                               label=t("repetition_penalty"), elem_id=f"{prefix}-repetition-penalty")
                seed = gr.Number(value=-1, precision=0, label=t("seed"), info=t("seed_info"),
                                 elem_id=f"{prefix}-seed")
            stop = gr.Textbox(label=t("stop_sequences"), lines=2, elem_id=f"{prefix}-stop",
                              placeholder=t("stop_sequences_placeholder"))
        panel = cls(preset, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop)
        instant = ui_event(preset, queue=False)
        preset.change(panel.apply_preset, inputs=preset, outputs=panel.preset_sliders, **instant)
        # Moving a slider by hand means the values are no longer the preset's: clear the radio.
        gr.on([slider.input for slider in panel.preset_sliders], lambda: None, outputs=preset, **instant)
        return panel

    @property
    def preset_sliders(self) -> list[gr.Slider]:
        return [getattr(self, name) for name in PRESET_FIELDS]

    @property
    def inputs(self) -> set[gr.components.Component]:
        """Pass these (in a set, with the handler's other inputs) so the handler gets one dict, not 8 args."""
        return {self.max_new_tokens, self.temperature, self.top_p, self.top_k, self.repetition_penalty,
                self.seed, self.stop}

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.preset, self.max_new_tokens, self.temperature, self.top_p, self.top_k,
                self.repetition_penalty, self.seed, self.stop]

    def read(self, data: dict[Any, Any], top_alternatives: int = 0) -> GenerationParams:
        """The widgets' values as one validated GenerationParams (errors name the field)."""
        return GenerationParams(
            max_new_tokens=_whole(data[self.max_new_tokens], "max_new_tokens"),
            temperature=float(data[self.temperature]),
            top_p=float(data[self.top_p]),
            top_k=_whole(data[self.top_k], "top_k"),
            repetition_penalty=float(data[self.repetition_penalty]),
            seed=parse_seed(data[self.seed]),
            stop=parse_stop(data[self.stop]),
            top_alternatives=top_alternatives,
        ).validated()

    def show(self, params: GenerationParams, spec: Optional[ModelSpec] = None) -> dict[Any, Any]:
        """Updates that put `params` into the widgets (for a model change or an imported chat)."""
        return {
            self.preset: None,
            self.max_new_tokens: gr.Slider(value=params.max_new_tokens, maximum=_token_limit(spec))
            if spec else params.max_new_tokens,
            self.temperature: params.temperature,
            self.top_p: params.top_p,
            self.top_k: params.top_k,
            self.repetition_penalty: params.repetition_penalty,
            self.seed: -1 if params.seed is None else params.seed,
            self.stop: "\n".join(s.replace("\n", "\\n").replace("\t", "\\t") for s in params.stop),
        }

    def defaults(self, spec: ModelSpec) -> list[Any]:
        """Updates for `outputs` that reset the panel to the model's defaults from models.yaml."""
        updates = self.show(spec.default_params(), spec)
        return [updates[component] for component in self.outputs]

    @staticmethod
    def apply_preset(name: Optional[str]) -> list[Any]:
        if name not in PRESETS:
            return [gr.skip()] * len(PRESET_FIELDS)
        return [PRESETS[name][field_name] for field_name in PRESET_FIELDS]


def _token_limit(spec: Optional[ModelSpec]) -> int:
    context = spec.max_context if spec and spec.max_context else 4096
    return min(context, MAX_NEW_TOKENS_LIMIT)


def _whole(value: Any, name: str) -> int:
    number = parse_whole(value, name)
    if number is None:
        raise InvalidInputError(f"{name}: must be a whole number, got {value!r}")
    return number


def parse_whole(value: Any, name: str, blank: Optional[int] = None, low: Optional[int] = None) -> Optional[int]:
    """A number widget's value as a whole number (every tab reads numbers with this one rule).

    Blank gives `blank`; 7.0 and "7" give 7; 2.5, "abc" and True are refused with the field's name, as is a
    value under `low`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return blank
    if isinstance(value, bool):
        raise InvalidInputError(f"{name}: must be a whole number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise InvalidInputError(f"{name}: must be a whole number, got {value!r}")
    if low is not None and number < low:
        raise InvalidInputError(f"{name}: must be a whole number of at least {low}, got {value!r}")
    return int(number)


# ----------------------------------------------------------------------------------------- stats line


def format_stats(stats: GenerationStats) -> str:
    """One Markdown line of timings and counts, then one line per notice (dropped turns, lowered limits)."""
    parts = []
    if stats.time_to_first_token_s is not None:
        parts.append(f"first token {stats.time_to_first_token_s:.2f} s")
    if stats.tokens_per_second is not None:
        parts.append(f"{stats.tokens_per_second:.1f} tokens/s")
    parts.append(f"{stats.prompt_tokens} prompt + {stats.generated_tokens} generated tokens")
    parts.append(f"finish: {FINISH_EXPLAINED.get(stats.finish_reason, stats.finish_reason)}")
    parts.append(f"{stats.total_s:.2f} s total")
    if stats.seed is not None:
        parts.append(f"seed {stats.seed}")
    lines = [" · ".join(parts)]
    lines += [f"**Notice: {notice}**" for notice in stats.notices]
    if stats.error:
        lines.append(f"Error: {stats.error}")
    return "\n\n".join(html.escape(line, quote=False) for line in lines)


def format_progress(state: "StreamState") -> str:
    """The stats line for a stream: progress while it runs, then its stats or its error."""
    if state.error:
        return "**Error:** " + html.escape(state.error, quote=False)
    if state.stats:
        return format_stats(state.stats)
    if not state.text:
        return text("status_waiting")
    return text("status_generating")


class OnChange:
    """Passes a value on only when it differs from the last one (else gr.skip()).

    Why: Stop writes "Stopped." to the stats line while the cancelled stream may still deliver an update or
    two; sending the stats line only when it changes keeps those late updates from overwriting it.
    """

    def __init__(self) -> None:
        self._last: Any = object()

    def __call__(self, value: Any) -> Any:
        if value == self._last:
            return gr.skip()
        self._last = value
        return value


STOPPED = text("status_stopped")  # translated in the browser (ui/i18n.py)


# ------------------------------------------------------------------------------------------ streaming


@dataclass(frozen=True)
class StreamState:
    """What a stream has produced so far; `stats` is set once it has ended."""

    text: str = ""
    choices: tuple[TokenChoice, ...] = ()
    stats: Optional[GenerationStats] = None
    error: Optional[str] = None  # set when the stream failed (compare shows it per side)

    @property
    def done(self) -> bool:
        return self.stats is not None


class Accumulator:
    """Joins a stream's deltas (a list, not repeated string concatenation: replies can be long)."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._choices: list[TokenChoice] = []
        self._final: Optional[Final] = None
        self._error: Optional[str] = None

    def fail(self, error: BaseException) -> None:
        self._error = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"

    def add(self, event: Event) -> None:
        if isinstance(event, Delta):
            self._pieces.append(event.text)
            self._choices.extend(event.choices)
        elif isinstance(event, Final):
            self._final = event

    def state(self) -> StreamState:
        text = self._final.text if self._final else "".join(self._pieces)
        # The app never hands on (nor later rejects) a NUL a byte-fallback tokenizer produced.
        text = text.replace("\x00", "")
        stats = self._final.stats if self._final else None
        return StreamState(text, tuple(self._choices), stats, self._error)


def throttled(events: Iterator[Event], interval: Optional[float] = None,
              budget: UpdateBudget = UPDATE_BUDGET) -> Iterator[StreamState]:
    """The growing state of one backend stream, at most every `interval` s (by default as often as the shared
    update budget allows: ui/update_rate.py), and always once at the end.

    The backend stream is closed when this generator is (Stop, cancel, closed tab): that stops the model.
    """
    accumulator = Accumulator()
    throttle = Throttle(interval, budget)
    try:
        with budget.streaming():
            for event in events:
                accumulator.add(event)
                if isinstance(event, Final) or throttle.due():
                    yield accumulator.state()
    finally:
        close_quietly(events)


def collect(events: Iterator[Event]) -> StreamState:
    """Drains a stream (for callers that want only the end result) and returns its final state."""
    state = StreamState()
    for state in throttled(events, interval=float("inf")):
        pass
    return state
