"""Widgets and helpers every tab shares: model picker, parameter accordion, seed / stop / number parsing.

The stats line and streaming live in ui/common/streaming.py, error handling and listener options in
ui/common/events.py; their names are re-exported here, where the tabs import them.

Only backend.core.types / backend.core.config / backend.core.registry are imported here (never torch): the UI talks
to the backend through plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, overload

import gradio as gr

from backend.core.config import ModelSpec
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.core.types import MAX_NEW_TOKENS_LIMIT, GenerationParams, InvalidInputError, Task
from ui.i18n.core import t, text
from ui.i18n.error_words import worded
from ui.common.events import (  # noqa: F401 - re-exported: the tabs import them from here
    cancel_then,
    handle_errors,
    refuse_invalid_text,
    status_sink,
    ui_errors,
    ui_event,
    user_error,
)
from ui.common.registry_sync import (  # noqa: F401 - re-exported: one mechanism for every tab's pickers
    LiveIds,
    follow_registry,
    live_choices,
    live_value,
    task_choices,
)
from ui.common.streaming import (  # noqa: F401 - re-exported
    FINISH_EXPLAINED,
    STOPPED,
    Accumulator,
    OnChange,
    StreamState,
    collect,
    format_progress,
    format_stats,
    throttled,
)

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

# ------------------------------------------------------------------------------------------ model picker


def model_picker(registry: Registry, task: Task, elem_id: str, label: Any = None,
                 index: int = 0) -> gr.Dropdown:
    """A dropdown of the registry's models for `task`: shows names, yields ids; follows the registry's changes
    (ui/common/registry_sync.py). `index`: the model it starts with (and falls back to when its model is removed)."""
    choices = task_choices(registry, task)
    value = choices[min(index, len(choices) - 1)][1] if choices else None
    picker = gr.Dropdown(choices=choices, value=value, label=label or t("model"), elem_id=elem_id, interactive=True,
                         info=None if choices else t("no_model_for_task"))
    return live_choices(picker, lambda: task_choices(registry, task), index=index, empty_info=t("no_model_for_task"))


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
        raise refuse("seed", "seed", got=value)
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
        raise InvalidInputError("stop: every stop sequence must be text", field="stop")
    cleaned = (item.strip().replace("\\n", "\n").replace("\\t", "\t") for item in items)
    return tuple(item for item in cleaned if item)


def param_slider(*args: Any, param: str, **kwargs: Any) -> gr.Slider:
    """A gr.Slider (its arguments) for the GenerationParams field `param`. A value outside its range (an API
    caller's; the browser sets a typed one to the nearest bound and says so, ui/common/style.py RANGE_NOTE_HEAD)
    is refused naming the field, where Gradio's own check said only "Value -5 is less than minimum value 0.0".

    Why not a subclass: Gradio writes a .pyi stub next to the module of every component subclass it sees. A
    session that updates the slider (a model change) gets a new plain gr.Slider, with Gradio's own check."""
    slider = gr.Slider(*args, **kwargs)
    gradio_preprocess = slider.preprocess

    def preprocess(payload: float) -> float:
        number = payload if isinstance(payload, (int, float)) and not isinstance(payload, bool) else None
        if number is not None and not slider.minimum <= number <= slider.maximum:
            error: InvalidInputError = refuse("between", param, low=_plain(slider.minimum), high=_plain(slider.maximum),
                           got=_plain(number))
            raise user_error(worded(error))
        return gradio_preprocess(payload)

    slider.preprocess = preprocess  # type: ignore[method-assign]
    return slider


def _plain(number: float) -> float | int:
    """2.0 as 2 in a message."""
    return int(number) if float(number).is_integer() else number


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
            preset = gr.Radio([(text(f"preset_{name}"), name) for name in PRESETS], value=None, label=t("preset"),
                              elem_id=f"{prefix}-preset",
                              info=t("preset_info"))
            with gr.Row():
                max_new_tokens = param_slider(1, _token_limit(spec), value=params.max_new_tokens, step=1,
                                             label=t("max_new_tokens"), elem_id=f"{prefix}-max-new-tokens",
                                             param="max_new_tokens")
                temperature = param_slider(0.0, 2.0, value=params.temperature, step=0.05, label=t("temperature"),
                                          info=t("temperature_info"), elem_id=f"{prefix}-temperature",
                                          param="temperature")
            with gr.Row():
                top_p = param_slider(0.05, 1.0, value=params.top_p, step=0.01, label=t("top_p"),
                                    elem_id=f"{prefix}-top-p", param="top_p")
                top_k = param_slider(0, 200, value=params.top_k, step=1, label=t("top_k"), info=t("top_k_info"),
                                    elem_id=f"{prefix}-top-k", param="top_k")
            with gr.Row():
                repetition_penalty = param_slider(0.5, 2.0, value=params.repetition_penalty, step=0.01,
                                                 label=t("repetition_penalty"),
                                                 elem_id=f"{prefix}-repetition-penalty", param="repetition_penalty")
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
        raise refuse("whole", name, got=value)
    return number


@overload
def parse_whole(value: Any, name: str, blank: int, low: Optional[int] = None) -> int: ...
@overload
def parse_whole(value: Any, name: str, blank: None = None, low: Optional[int] = None) -> Optional[int]: ...
def parse_whole(value: Any, name: str, blank: Optional[int] = None, low: Optional[int] = None) -> Optional[int]:
    """A number widget's value as a whole number (every tab reads numbers with this one rule).

    Blank gives `blank`; 7.0 and "7" give 7; 2.5, "abc" and True are refused with the field's name, as is a
    value under `low`.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return blank
    if isinstance(value, bool):
        raise refuse("whole", name, got=value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise refuse("whole", name, got=value) from None
    if not number.is_integer():
        raise refuse("whole", name, got=value)
    if low is not None and number < low:
        raise refuse("whole_at_least", name, low=low, got=value)
    return int(number)
