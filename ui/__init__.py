"""The Gradio app: one tab per module, plus the public API. Importing this package never imports torch.

    demo = ui.build_app(registry)
    ui.launch(demo, host="127.0.0.1", port=7860)
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import gradio as gr

from backend.registry import Registry
from ui import api
from ui.chat import ChatTab
from ui.compare import CompareTab
from ui.components import ui_event
from ui.generate import GenerateTab
from ui.models import ModelsTab

__all__ = ["build_app", "launch"]

# Cheap events (refresh, undo, presets) run this many at once; streaming events set their own, higher limit.
DEFAULT_CONCURRENCY_LIMIT = 8
# Requests waiting beyond this are refused with Gradio's "queue is full" message instead of piling up.
QUEUE_MAX_SIZE = 256

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")
CSS = """
.stats-line { font-size: 0.85em; opacity: 0.8; min-height: 1.5em; }
.compare-output { overflow-y: auto; max-height: 520px; }
table.probs { border-collapse: collapse; font-size: 0.85em; }
table.probs th, table.probs td {
  padding: 2px 8px; border-bottom: 1px solid var(--border-color-primary); text-align: left;
}
table.probs code { white-space: pre; }
table.probs .alt { margin-right: 10px; white-space: nowrap; opacity: 0.75; }
table.probs .alt.chosen { font-weight: bold; opacity: 1; }
"""


def build_app(registry: Registry) -> gr.Blocks:
    """The whole UI over `registry`; nothing is loaded here (models load on first use)."""
    with gr.Blocks(title="LLM Workbench") as demo:
        gr.Markdown("## LLM Workbench\nChat with, generate with and compare the models in your `models.yaml`.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat", elem_id="tab-chat"):
                ChatTab.build(registry)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                CompareTab.build(registry)
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                GenerateTab.build(registry)
            with gr.Tab("Models", id="models", elem_id="tab-models") as models_tab:
                models = ModelsTab.build(registry)
        models_tab.select(models.rows, outputs=models.table, **ui_event(models.table, queue=False))
        api.register(registry)
    return demo


def launch(demo: gr.Blocks, host: str, port: int, on_app: Optional[Callable[[Any], None]] = None,
           **extra: Any) -> Any:
    """Queues (so many users stream at once) and serves the app; `extra` goes to `Blocks.launch`.

    `on_app(fastapi_app)` runs once the server exists, before it blocks: the place to add routes that share
    the server, such as the OpenAI-compatible API. Returns the FastAPI app.
    """
    block = not extra.pop("prevent_thread_lock", False)
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY_LIMIT, max_size=QUEUE_MAX_SIZE)
    app, _, _ = demo.launch(server_name=host, server_port=port, theme=THEME, css=CSS, show_error=True,
                            max_file_size="10mb", footer_links=["api", "gradio"], prevent_thread_lock=True,
                            **extra)
    if on_app is not None:
        on_app(app)
    if block:
        demo.block_thread()
    return app
