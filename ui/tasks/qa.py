"""Question answering view: the answer highlighted in the context, its score, the top-k answers; long contexts are
read in overlapping windows (stride)."""

import gradio as gr
import pandas as pd

from backend.registry import Registry
from backend.tasks import service
from backend.tasks.types import Answer
from ui.components import handle_errors, model_picker, ui_event
from ui.tasks.common import CONCURRENCY_ID, CONCURRENCY_LIMIT, escape, file_section, require_model


def highlighted(context: str, answers: list[Answer]) -> dict:
    """The context with the best answer marked 'answer' (the others, when they do not overlap it, 'other')."""
    spans = []
    for rank, answer in enumerate(answers):
        if rank and any(answer.start < s["end"] and s["start"] < answer.end for s in spans):
            continue
        spans.append({"entity": "answer" if rank == 0 else f"#{rank + 1}", "start": answer.start, "end": answer.end})
    return {"text": context, "entities": spans}


def build_qa_view(registry: Registry) -> None:
    with gr.Row():
        model = model_picker(registry, "question_answering", "qa-model")
        top_k = gr.Slider(1, 10, value=3, step=1, label="Answers (top k)", elem_id="qa-top-k")
        stride = gr.Slider(0, 256, value=128, step=8, label="Stride (tokens shared by neighbouring windows)",
                           info="long contexts are read in overlapping windows", elem_id="qa-stride")
    context = gr.Textbox(label="Context", lines=6, elem_id="qa-context", placeholder="The text to find the answer in")
    question = gr.Textbox(label="Question", elem_id="qa-question", placeholder="What do you want to know?")
    run = gr.Button("Answer", variant="primary", elem_id="qa-run")
    answer = gr.Markdown(elem_id="qa-answer")
    marked = gr.HighlightedText(label="Answer in the context", combine_adjacent=False, elem_id="qa-highlighted")
    table = gr.Dataframe(label="Top answers", interactive=False, elem_id="qa-table")

    @handle_errors
    def ask(data: dict) -> tuple:
        answers = service.answer_question(registry, require_model(data[model], "question_answering"), data[question],
                                          data[context], top_k=int(data[top_k]), stride=int(data[stride]))
        if not answers:
            return "No answer found in the context.", highlighted(data[context], []), None
        best = answers[0]
        line = f"**{escape(best.answer.strip())}** · score {best.score:.3f} · characters {best.start}–{best.end}"
        frame = pd.DataFrame({"answer": [a.answer for a in answers], "score": [round(a.score, 4) for a in answers],
                              "start": [a.start for a in answers], "end": [a.end for a in answers]})
        return line, highlighted(data[context], answers), frame

    # .change, not .input: a Textbox emptied in the browser sent no input event here (gradio 6.31, browser test).
    gr.on([context.change, question.change], lambda: ("", None, None), outputs=[answer, marked, table],
          **ui_event(answer, queue=False))
    gr.on([run.click, question.submit], ask, inputs={model, question, context, top_k, stride},
          outputs=[answer, marked, table], concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT,
          **ui_event(answer, progress=True))
    file_section(registry, "question_answering", "qa", model, {question, stride},
                 lambda data: {"question": data[question], "options": {"stride": int(data[stride])}},
                 question_column=True)
