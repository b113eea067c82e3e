"""Fill-mask view: the top-k tokens for every mask of the text, as a chart and a table."""

from typing import Optional

import gradio as gr
import pandas as pd

from backend.core.registry import Registry
from backend.tasks import service
from backend.tasks.types import MaskFill
from ui.common.components import handle_errors, model_picker, ui_event
from ui.i18n.core import headed, t, text
from ui.tasks.common import CONCURRENCY_ID, CONCURRENCY_LIMIT, file_section, require_model


def chart_frame(per_mask: list[list[MaskFill]]) -> pd.DataFrame:
    """One bar per (mask, candidate); the x label says which mask, so several masks share one chart."""
    rows = [{"candidate": f"{index + 1}: {c.token}", "mask": f"mask {index + 1}", "probability": c.score}
            for index, candidates in enumerate(per_mask) for c in candidates]
    return pd.DataFrame(rows, columns=["candidate", "mask", "probability"])


def mask_info(token: Optional[str]) -> str:
    """The text box's hint: the model's mask token (a translated lead-in, then the token itself)."""
    return f"{text('mask_token_is')} {token}" if token else text("mask_hint")


def build_fill_mask_view(registry: Registry) -> None:
    with gr.Row():
        model = model_picker(registry, "fill_mask", "mask-model")
        top_k = gr.Slider(1, 20, value=5, step=1, label=t("mask_top_k"), elem_id="mask-top-k")
    first = registry.specs("fill_mask")
    token = service.mask_token_of(registry, first[0].id) if first else None
    text = gr.Textbox(label=t("mask_text"), lines=3, elem_id="mask-text",
                      value=(first[0].examples[0] if first and first[0].examples else ""),
                      info=mask_info(token))
    run = gr.Button(t("mask_run"), variant="primary", elem_id="mask-run")
    chart = gr.BarPlot(None, x="candidate", y="probability", color="mask", label=t("mask_chart"),
                       height=300, elem_id="mask-chart")
    table = gr.Dataframe(label=t("mask_table"), interactive=False, elem_id="mask-table")

    @handle_errors
    def fill(data: dict) -> tuple:
        per_mask = service.fill_masks(registry, require_model(data[model], "fill_mask"), data[text],
                                      top_k=int(data[top_k]))[0]
        frame = chart_frame(per_mask)
        sequences = pd.DataFrame({"mask": frame["mask"], "candidate": frame["candidate"],
                                  "probability": frame["probability"].round(4),
                                  "text": [c.sequence for candidates in per_mask for c in candidates]})
        return frame, headed(sequences)  # the chart's frame keeps its names: x / y / color name them

    def mask_hint(model_id: str) -> gr.Textbox:
        found = service.mask_token_of(registry, model_id) if model_id else None
        return gr.Textbox(info=mask_info(found))

    model.change(mask_hint, inputs=model, outputs=text, **ui_event(text, queue=False))
    text.change(lambda: (None, None), outputs=[chart, table], **ui_event(table, queue=False))
    gr.on([run.click, text.submit], fill, inputs={model, text, top_k}, outputs=[chart, table],
          concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(table, progress=True))
    file_section(registry, "fill_mask", "mask", model, {top_k}, lambda data: {"options": {"top_k": int(data[top_k])}})
