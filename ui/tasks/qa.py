"""Question answering view: the answer highlighted in the context, its score, the top-k answers; long contexts are
read in overlapping windows (stride)."""

from typing import Any

import gradio as gr
import pandas as pd

from backend.core.registry import Registry
from backend.tasks import service
from backend.tasks.types import Answer
from ui.common.components import handle_errors, model_picker, ui_event
from ui.i18n.core import headed, say, t, text
from ui.tasks.common import CONCURRENCY_ID, CONCURRENCY_LIMIT, escape, file_section, require_model


def highlighted(context: str, answers: list[Answer]) -> dict:
    """The context with the best answer marked 'answer' (the others, when they do not overlap it, 'other')."""
    spans: list[dict[str, Any]] = []
    for rank, answer in enumerate(answers):
        if rank and any(answer.start < s["end"] and s["start"] < answer.end for s in spans):
            continue
        spans.append({"entity": "answer" if rank == 0 else f"#{rank + 1}", "start": answer.start, "end": answer.end})
    return {"text": context, "entities": spans}


def build_qa_view(registry: Registry) -> None:
    with gr.Row():
        model = model_picker(registry, "question_answering", "qa-model")
        top_k = gr.Slider(1, 10, value=3, step=1, label=t("qa_top_k"), elem_id="qa-top-k")
        stride = gr.Slider(0, 256, value=128, step=8, label=t("qa_stride"),
                           info=t("qa_stride_info"), elem_id="qa-stride")
    context = gr.Textbox(label=t("qa_context"), lines=6, elem_id="qa-context",
                         placeholder=t("qa_context_placeholder"))
    question = gr.Textbox(label=t("qa_question"), elem_id="qa-question", placeholder=t("qa_question_placeholder"))
    run = gr.Button(t("qa_run"), variant="primary", elem_id="qa-run")
    answer = gr.Markdown(elem_id="qa-answer")
    marked = gr.HighlightedText(label=t("qa_marked"), combine_adjacent=False, elem_id="qa-highlighted")
    table = gr.Dataframe(label=t("qa_table"), interactive=False, elem_id="qa-table")

    @handle_errors
    def ask(data: dict) -> tuple:
        answers = service.answer_question(registry, require_model(data[model], "question_answering"), data[question],
                                          data[context], top_k=int(data[top_k]), stride=int(data[stride]))
        if not answers:
            return text("qa_none"), highlighted(data[context], []), None
        best = answers[0]
        line = say("qa_line", answer=escape(best.answer.strip()), score=best.score, start=best.start, end=best.end)
        frame = pd.DataFrame({"answer": [a.answer for a in answers], "score": [round(a.score, 4) for a in answers],
                              "start": [a.start for a in answers], "end": [a.end for a in answers]})
        return line, highlighted(data[context], answers), headed(frame)

    # .change, not .input: a Textbox emptied in the browser sent no input event here (gradio 6.31, browser test).
    gr.on([context.change, question.change], lambda: ("", None, None), outputs=[answer, marked, table],
          **ui_event(answer, queue=False))
    gr.on([run.click, question.submit], ask, inputs={model, question, context, top_k, stride},
          outputs=[answer, marked, table], concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT,
          **ui_event(answer, progress=True))
    file_section(registry, "question_answering", "qa", model, {question, stride},
                 lambda data: {"question": data[question], "options": {"stride": int(data[stride])}})
