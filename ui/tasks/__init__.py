"""The Tasks tab: NER, question answering, fill-mask, summarization, translation and embeddings, each a view of
its own module, plus their named API endpoints. Importing this package never imports torch."""

import gradio as gr

from backend.registry import Registry
from ui.tasks.api import register_tasks_api
from ui.tasks.embed import build_embed_view
from ui.tasks.fill_mask import build_fill_mask_view
from ui.tasks.ner import build_ner_view
from ui.tasks.qa import build_qa_view
from ui.tasks.seq2seq import build_text_task_view
from ui.i18n import t

__all__ = ["build_tasks_tab", "register_tasks_api", "has_tasks"]

# (translation key of the sub-tab's title, task, view)
VIEWS = (("tasks_ner", "ner", build_ner_view), ("tasks_qa", "question_answering", build_qa_view),
         ("tasks_fill_mask", "fill_mask", build_fill_mask_view),
         ("tasks_summarize", "summarize", lambda registry: build_text_task_view(registry, "summarize")),
         ("tasks_translate", "translate", lambda registry: build_text_task_view(registry, "translate")),
         ("tasks_embed", "embed", build_embed_view))


def has_tasks(registry: Registry) -> bool:
    return any(registry.specs(task) for _, task, _ in VIEWS)  # type: ignore[arg-type]


def build_tasks_tab(registry: Registry) -> None:
    """Renders the Tasks tab (call inside the app's gr.Tabs): one sub-tab per task some model in the registry does."""
    with gr.Tab(t("tab_tasks"), id="tasks", elem_id="tab-tasks"):
        with gr.Tabs(elem_id="tasks-views"):
            for title, task, build in VIEWS:
                if registry.specs(task):  # type: ignore[arg-type]
                    with gr.Tab(t(title), id=f"tasks-{task}", elem_id=f"tasks-{task}-tab"):
                        build(registry)
