"""NER view: the text with entities highlighted by type, and a table of entities with scores and offsets."""

import gradio as gr
import pandas as pd

from backend.core.registry import Registry
from backend.tasks import service
from backend.tasks.ner import SPEC as NER
from backend.tasks.types import Entity
from ui.common.components import first_spec, handle_errors, model_picker, ui_event
from ui.i18n.core import headed, t
from ui.tasks.common import CONCURRENCY_ID, CONCURRENCY_LIMIT, file_section, require_model

def highlighted(text: str, entities: list[Entity]) -> dict:
    """gr.HighlightedText's value: the text with each entity's character span labelled by its type."""
    spans = [{"entity": e.entity, "start": e.start, "end": e.end} for e in entities if 0 <= e.start < e.end]
    return {"text": text, "entities": spans}


def entity_table(text: str, entities: list[Entity]) -> pd.DataFrame:
    return pd.DataFrame({"entity": [e.entity for e in entities],
                         "text": [text[e.start:e.end] if e.start >= 0 else e.word for e in entities],
                         "score": [round(e.score, 4) for e in entities],
                         "start": [e.start for e in entities], "end": [e.end for e in entities]})


def build_ner_view(registry: Registry) -> None:
    spec = first_spec(registry, "ner")
    with gr.Row():
        model = model_picker(registry, "ner", "ner-model")
        aggregation = gr.Radio(list(NER.aggregations), value="simple", label=t("ner_aggregation"),
                               info=t("ner_aggregation_info"),
                               elem_id="ner-aggregation")
    text = gr.Textbox(label=t("text"), lines=4, elem_id="ner-text", value=spec.examples[0] if spec and spec.examples
                      else "", placeholder=t("ner_text_placeholder"))
    run = gr.Button(t("ner_run"), variant="primary", elem_id="ner-run")
    marked = gr.HighlightedText(label=t("tasks_ner"), combine_adjacent=False, show_legend=True,
                                elem_id="ner-highlighted")
    table = gr.Dataframe(label=t("ner_table"), interactive=False, elem_id="ner-table")

    @handle_errors
    def find(data: dict) -> tuple:
        found = service.recognise_entities(registry, require_model(data[model], "ner"), data[text],
                                           aggregation=data[aggregation])[0]
        return highlighted(data[text], found), headed(entity_table(data[text], found))

    # A new text clears the old result, so entities never sit next to a text they were not found in.
    text.change(lambda: (None, None), outputs=[marked, table], **ui_event(marked, queue=False))
    gr.on([run.click, text.submit], find, inputs={model, aggregation, text}, outputs=[marked, table],
          concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(marked, progress=True))
    file_section(registry, "ner", "ner", model, {aggregation},
                 lambda data: {"options": {"aggregation": data[aggregation]}})
