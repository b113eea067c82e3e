"""The Compare tab: one prompt to two models, both replies streaming side by side.

Two backend streams are pumped by two threads into one channel (backend/core/streams.py), so both models generate at
once (the same model twice shares its batches: backend/engines/batching.py) and one generator updates both
panes. Stop closes that generator, which tells both pumps to close their streams: both models stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import gradio as gr

from backend.services import generation as service
from backend.core.registry import Registry
from backend.core.streams import Ended, merge_in_threads
from backend.core.types import Event, GenerationParams
from ui.common.components import (
    status_sink,
    cancel_then,
    STOPPED,
    STREAMING,
    Accumulator,
    OnChange,
    ParamPanel,
    StreamState,
    first_spec,
    format_progress,
    ui_errors,
    model_picker,
    ui_event,
)
from ui.common.update_rate import UPDATE_BUDGET, Throttle
from ui.i18n.core import t

def interleave(streams: Sequence[Iterator[Event]],
               interval: Optional[float] = None) -> Iterator[tuple[StreamState, ...]]:
    """The states of several streams, consumed in parallel; throttled, and always yielded once all have ended.

    A failing stream does not stop the others: its state carries the error. Closing this generator makes every
    pump thread close its stream after its next event (a pump blocked waiting for the model cannot be
    interrupted), which stops that model.
    """
    sides = [Accumulator() for _ in streams]
    throttle = Throttle(interval)
    with merge_in_threads(streams, name="compare-pump") as events:
        with UPDATE_BUDGET.streaming():  # one output updating, however many models feed it
            for index, item in events:
                if isinstance(item, Ended):
                    if item.error is not None:
                        sides[index].fail(item.error)
                else:
                    sides[index].add(item)
                if isinstance(item, Ended) or throttle.due():
                    yield tuple(side.state() for side in sides)


def compare_streams(registry: Registry, message: str, models: Sequence[str], params: GenerationParams,
                    system_prompt: str = "") -> Iterator[tuple[StreamState, ...]]:
    """Validates everything first (a bad request fails before any model works), then streams both."""
    streams = [service.stream_chat(registry, model, message, (), params, system_prompt) for model in models]
    return interleave(streams)


@dataclass(frozen=True)
class CompareTab:
    registry: Registry
    model_a: gr.Dropdown
    model_b: gr.Dropdown
    system: gr.Textbox
    input: gr.Textbox
    params: ParamPanel

    @classmethod
    def build(cls, registry: Registry) -> "CompareTab":
        with gr.Row():
            model_a = model_picker(registry, "chat", "compare-model-a", label=t("model_a"))
            model_b = model_picker(registry, "chat", "compare-model-b", label=t("model_b"), index=1)
        with gr.Row(equal_height=True, elem_classes=["input-row"]):
            text = gr.Textbox(placeholder=t("compare_input_placeholder"), show_label=False,
                              max_lines=12, scale=8, elem_id="compare-input")
            send = gr.Button(t("compare_send"), variant="primary", scale=1, elem_id="compare-send")
            stop = gr.Button(t("stop"), variant="stop", scale=1, elem_id="compare-stop-btn")
        with gr.Row(equal_height=True):
            outputs = []
            for side in ("a", "b"):
                with gr.Column():
                    outputs.append(gr.Markdown("", elem_id=f"compare-output-{side}", container=True,
                                               min_height=200, elem_classes=["compare-output"]))
                    outputs.append(gr.Markdown("", elem_id=f"compare-stats-{side}", elem_classes=["stats-line"]))
        with gr.Accordion(t("chat_system"), open=False):
            system = gr.Textbox(show_label=False, lines=2, elem_id="compare-system")
        params = ParamPanel.build("compare", first_spec(registry, "chat"))
        tab = cls(registry, model_a, model_b, system, text, params)
        output_a, stats_a, output_b, stats_b = outputs
        running = gr.on([send.click, text.submit], tab.run, api_name="ui_compare",
                        inputs={model_a, model_b, system, text, *params.inputs},
                        outputs=[output_a, output_b, stats_a, stats_b], **STREAMING, **ui_event(status_sink()))
        cancel_then(stop, [running], lambda: (STOPPED, STOPPED), outputs=[stats_a, stats_b], feedback_on=stats_a)
        return tab

    @ui_errors
    def run(self, data: dict[Any, Any]) -> Iterator[tuple[str, str, str, str]]:
        if isinstance(data[self.input], str) and not data[self.input].strip():
            return  # an empty Send does nothing (no error toast for an accidental Enter)
        try:
            states = compare_streams(self.registry, data[self.input], [data[self.model_a], data[self.model_b]],
                                     self.params.read(data), data[self.system] or "")
        except Exception:
            yield "", "", "", ""  # the panes' previous replies and errors do not belong to this refused message
            raise
        line_a, line_b = OnChange(), OnChange()
        waiting = format_progress(StreamState())
        yield "", "", line_a(waiting), line_b(waiting)
        for state_a, state_b in states:
            yield state_a.text, state_b.text, line_a(format_progress(state_a)), line_b(format_progress(state_b))
