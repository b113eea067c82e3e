"""Summarize and Translate views: streamed output (encoder-decoder models stream too), length controls, source /
target languages, and the generation parameters and statistics line of the Chat tab."""

from typing import Any, Iterator

import gradio as gr

from backend.core.registry import Registry
from backend.tasks import service
from ui.common.components import (
    STOPPED,
    STREAMING,
    OnChange,
    ParamPanel,
    StreamState,
    cancel_then,
    first_spec,
    format_progress,
    handle_errors,
    model_picker,
    status_sink,
    throttled,
    ui_event,
)
from ui.i18n.core import t, text
from ui.tasks.common import file_section, require_model


def language_choices(registry: Registry, model_id: str) -> tuple[list[str], list[str], bool]:
    """(sources, targets, whether the model declares its pairs) for the language dropdowns."""
    pairs = service.language_pairs(registry, model_id) if model_id else None
    if not pairs:
        return [], [], False
    return sorted({s for s, _ in pairs}), sorted({t for _, t in pairs}), True


def build_text_task_view(registry: Registry, task: str) -> None:
    """One view for `task` = "summarize" or "translate"."""
    prefix = "sum" if task == "summarize" else "tr"
    spec = first_spec(registry, task)  # type: ignore[arg-type]
    with gr.Row():
        with gr.Column(scale=3):
            text_box = gr.Textbox(label=t("text"), lines=8, elem_id=f"{prefix}-text",
                                  placeholder=t(f"{prefix}_text_placeholder"))
            with gr.Row():
                run = gr.Button(t(f"{prefix}_run"), variant="primary",
                                elem_id=f"{prefix}-run")
                stop = gr.Button(t("stop"), variant="stop", elem_id=f"{prefix}-stop-btn")
            output = gr.Textbox(label=t(f"{prefix}_output"), lines=6,
                                interactive=False, elem_id=f"{prefix}-output")
            stats = gr.Markdown("", elem_id=f"{prefix}-stats", elem_classes=["stats-line"])
        with gr.Column(scale=1, min_width=280):
            model = model_picker(registry, task, f"{prefix}-model")  # type: ignore[arg-type]
            source = target = None
            if task == "translate":
                sources, targets, declared = language_choices(registry, spec.id if spec else "")
                info = None if declared else text("tr_any_pair")
                source = gr.Dropdown(sources, value=sources[0] if sources else "", label=t("tr_source"),
                                     allow_custom_value=True, info=info, elem_id="tr-source")
                target = gr.Dropdown(targets, value=targets[0] if targets else "", label=t("tr_target"),
                                     allow_custom_value=True, elem_id="tr-target")
            min_tokens = gr.Slider(0, 256, value=0, step=1, label=t("min_length"),
                                   elem_id=f"{prefix}-min-tokens", info=t("min_length_info"))
            params = ParamPanel.build(prefix, spec)
    languages = {source, target} if source is not None else set()

    @handle_errors
    def run_task(data: dict) -> Iterator[tuple[Any, Any]]:
        events = service.stream_text_task(
            registry, require_model(data[model], task), task, data[text_box], params.read(data),
            source_language=data[source] if source is not None else "",
            target_language=data[target] if target is not None else "", min_new_tokens=int(data[min_tokens]))
        stats_line = OnChange()
        yield "", stats_line(format_progress(StreamState()))
        for state in throttled(events):
            yield state.text, stats_line(format_progress(state))

    streaming = dict(**STREAMING, **ui_event(status_sink()))
    running = [gr.on([run.click], run_task, inputs={model, text_box, min_tokens, *languages, *params.inputs},
                     outputs=[output, stats], **streaming)]
    cancel_then(stop, running, lambda: STOPPED, outputs=stats, feedback_on=stats)
    text_box.change(lambda: ("", ""), outputs=[output, stats], **ui_event(stats, queue=False))

    @handle_errors
    def model_changed(model_id: str) -> list[Any]:
        picked = registry.spec(model_id, task)  # type: ignore[arg-type]
        updates = params.defaults(picked)
        if source is None:
            return updates
        sources, targets, declared = language_choices(registry, model_id)
        info = None if declared else text("tr_any_pair")
        return [*updates, gr.Dropdown(choices=sources, value=sources[0] if sources else "", info=info),
                gr.Dropdown(choices=targets, value=targets[0] if targets else "")]

    model.input(model_changed, inputs=model, outputs=[*params.outputs, *([source, target] if source else [])],  # type: ignore[list-item]
                **ui_event(stats, queue=False))

    def options(data: dict) -> dict:
        return {"params": params.read(data), "options": {
            "source": data[source] if source is not None else "", "target": data[target] if target is not None else "",
            "min_new_tokens": int(data[min_tokens])}}

    file_section(registry, task, prefix, model, {min_tokens, *languages, *params.inputs}, options)
