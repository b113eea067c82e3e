"""The Tasks tab: one sub-tab per pipeline task of the task table (backend/tasks/table.py) that has a view here
and a model in the registry, plus their named API endpoints. The sub-tabs' order and titles come from the table;
only the widgets of each view live here. Importing this package never imports torch."""

from typing import Callable

import gradio as gr

from backend.core.registry import Registry
from backend.tasks.table import task_specs
from ui.i18n.core import t
from ui.tasks.api import register_tasks_api
from ui.tasks.embed import build_embed_view
from ui.tasks.fill_mask import build_fill_mask_view
from ui.tasks.ner import build_ner_view
from ui.tasks.qa import build_qa_view
from ui.tasks.seq2seq import build_text_task_view

__all__ = ["build_tasks_tab", "register_tasks_api", "has_tasks", "VIEWS"]

# Each task's view (its widgets); a task of the table without one here still has its service, file runs and
# evaluation, just no sub-tab.
VIEWS: dict[str, Callable[[Registry], None]] = {
    "ner": build_ner_view,
    "question_answering": build_qa_view,
    "fill_mask": build_fill_mask_view,
    "summarize": lambda registry: build_text_task_view(registry, "summarize"),
    "translate": lambda registry: build_text_task_view(registry, "translate"),
    "embed": build_embed_view,
}


def _shown(registry: Registry) -> list:
    return [spec for spec in task_specs() if spec.name in VIEWS and registry.specs(spec.name)]  # type: ignore[arg-type]


def has_tasks(registry: Registry) -> bool:
    return bool(_shown(registry))


def build_tasks_tab(registry: Registry) -> None:
    """Renders the Tasks tab (call inside the app's gr.Tabs): one sub-tab per task some model in the registry does."""
    with gr.Tab(t("tab_tasks"), id="tasks", elem_id="tab-tasks"):
        with gr.Tabs(elem_id="tasks-views"):
            for spec in _shown(registry):
                with gr.Tab(t(spec.title_key), id=f"tasks-{spec.name}", elem_id=f"tasks-{spec.name}-tab"):
                    VIEWS[spec.name](registry)
