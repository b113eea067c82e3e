"""The Gradio app: one tab per module, plus the public API. Importing this package never imports torch.

    demo = ui.build_app(registry)
    ui.launch(demo, host="127.0.0.1", port=7860)
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Callable, Optional, Union

import gradio as gr
from gradio.routes import App, ORJSONResponse

from backend.guard.limits import RequestLimits
from backend.core.registry import Registry
from backend.guard.security import DEFAULT_QUEUE_SIZE, SecuritySettings
from backend.guard.throttle import LoginThrottle, ThrottleSettings
from ui.server import api
from ui.server.session_memory import install_lazy_session_config
from ui.chat.tab import ChatTab
from ui.classify.tab import build_classify_tab, register_classify_api
from ui.compare.tab import CompareTab
from ui.evaluate import EvaluateTab
from ui.evaluate.prefill import wire_compare_with_base
from ui.data.tab import DataTab
from ui.chat.feedback import attach_feedback
from ui.common.components import follow_registry, ui_event
from ui.generate.tab import GenerateTab
from ui.models.tab import ModelsTab
from ui.common.style import LAYOUT_CSS, RANGE_NOTE_HEAD
from ui.train.tab import TrainTab
from ui.tasks import build_tasks_tab, has_tasks, register_tasks_api
from ui.server.guards import escape_choice_errors, guard_options, start_session_expiry
from ui.i18n.core import I18N, t, toast_titles_head

__all__ = ["build_app", "launch"]

# Cheap events (refresh, undo, presets) run this many at once; streaming events set their own, higher limit.
DEFAULT_CONCURRENCY_LIMIT = 8
# Requests waiting beyond this are refused with Gradio's "queue is full" message instead of piling up;
# WORKBENCH_QUEUE_SIZE overrides it (backend/guard/security.py).
QUEUE_MAX_SIZE = DEFAULT_QUEUE_SIZE

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


def build_app(registry: Registry, presenter: bool = False) -> gr.Blocks:
    """The whole UI over `registry`; nothing is loaded here (models load on first use).

    `presenter=True`: the demo screen of ui/chat/presenter.py instead (one locked model, no technical panels),
    set up by the registry's `presenter:` block of models.yaml, or by its defaults when there is none.
    """
    if presenter:
        from ui.chat.presenter import build_presenter

        return build_presenter(registry, registry.config.presenter)
    per_user = SecuritySettings.from_env().auth_enabled  # logins on: a fine-tuned model may be its owner's alone
    with gr.Blocks(title="LLM Workbench") as demo, follow_registry(registry, per_user=per_user):
        gr.Markdown(t("app_intro"))
        with gr.Tabs() as tabs:
            with gr.Tab(t("tab_chat"), id="chat", elem_id="tab-chat"):
                attach_feedback(ChatTab.build(registry))
            with gr.Tab(t("tab_compare"), id="compare", elem_id="tab-compare"):
                CompareTab.build(registry)
            with gr.Tab(t("tab_generate"), id="generate", elem_id="tab-generate"):
                GenerateTab.build(registry)
            build_classify_tab(registry)
            if has_tasks(registry):  # NER, QA, fill-mask, summarize, translate, embed (ui/tasks/)
                build_tasks_tab(registry)
            with gr.Tab(t("tab_evaluate"), id="evaluate", elem_id="tab-evaluate"):
                evaluate = EvaluateTab.build(registry)
            with gr.Tab(t("tab_data"), id="data", elem_id="tab-data"):
                DataTab.build(registry)
            with gr.Tab(t("tab_train"), id="train", elem_id="tab-train") as train_tab:
                train = TrainTab.build(registry)
            with gr.Tab(t("tab_models"), id="models", elem_id="tab-models") as models_tab:
                models = ModelsTab.build(registry)
        models_tab.select(models.rows, outputs=models.table, **ui_event(models.table, queue=False))
        # Datasets built on the Data tab (e.g. from chat ratings) are offered as soon as the Train tab is opened.
        train_tab.select(train.saved_refresh, inputs=train.saved, outputs=train.saved,
                         **ui_event(train.saved, queue=False))
        if train.publish is not None and train.publish.compare is not None:  # Train's finished run -> Evaluate
            wire_compare_with_base(train.publish.compare, train.run_id, train._run_dir, train.service, tabs, evaluate,
                                   "evaluate")
        api.register(registry)
        register_classify_api(registry)
        register_tasks_api(registry)
    return demo


def skip_absent_matplotlib() -> None:
    """Gradio wraps every step of every event in a context that imports matplotlib on entry and on exit (to
    switch its backend). Without matplotlib installed, each of those imports fails only after searching every
    sys.path entry, twice per streamed update, on the server's event-loop thread (py-spy, 16 streams: 14% of
    that thread's samples). None in sys.modules makes the import fail at once, as the import system documents.
    An installed matplotlib is left alone."""
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


# Gradio's queue looks for new jobs every 1 ms whenever none waits, i.e. nearly always, also while models
# generate: 1000 wake-ups a second that each take the GIL from the generating thread. Every 5 ms costs a new job
# at most 5 ms before it starts; an idle app went from 7.8% of a core to 2.8% (docs/BENCHMARKS.md).
QUEUE_POLL_S = 0.005
PROGRESS_POLL_S = 0.05  # progress bars (evaluation) update 20 times a second instead of 100


def poll_queue_less_often(demo: gr.Blocks) -> None:
    """Sets the polling intervals of `demo`'s queue (Gradio keeps them as plain attributes of its Queue)."""
    queue = getattr(demo, "_queue", None)
    for name, at_least in (("sleep_when_free", QUEUE_POLL_S), ("progress_update_sleep_when_free", PROGRESS_POLL_S)):
        if hasattr(queue, name):  # a later Gradio may rename them: then its own defaults stay
            setattr(queue, name, max(getattr(queue, name), at_least))


def launch(demo: gr.Blocks, host: str, port: int, on_app: Optional[Callable[[Any], object]] = None,
           security: Optional[SecuritySettings] = None, limits: Optional[RequestLimits] = None,
           throttle: Optional[Union[ThrottleSettings, LoginThrottle]] = None, **extra: Any) -> Any:
    """Queues (so many users stream at once) and serves the app; `extra` goes to `Blocks.launch`.

    `on_app(fastapi_app)` runs on the server's app before the port opens: the place to add routes that share
    the server, such as the OpenAI-compatible API. `security` (default: from the WORKBENCH_* environment
    variables, see backend/guard/security.py) sets the login, the upload limit and the queue size; `limits`
    (backend/guard/limits.py) the body, upload and session bounds; `throttle` (backend/guard/throttle.py) failed
    logins: pass the `LoginThrottle` the API's routes count in too, so every channel shares one count.
    Returns the FastAPI app.
    """
    block = not extra.pop("prevent_thread_lock", False)
    security = security or SecuritySettings.from_env()
    skip_absent_matplotlib()
    # Beyond queue_size waiting requests Gradio answers "queue full" (HTTP 503 on /queue/join), which the
    # browser shows as "This application is currently busy. Please try again." and gradio_client raises as
    # QueueError("Queue is full! Please try again."): a clear answer instead of an ever-growing wait.
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY_LIMIT, max_size=security.queue_size)
    poll_queue_less_often(demo)
    hint = "any user name with the API token as password" if security.api_token else None
    options: dict[str, Any] = dict(max_file_size=security.max_upload_bytes, auth=security.gradio_auth(),
                                   auth_message=f"LLM Workbench: log in ({hint})" if hint else None)
    limits = limits or RequestLimits.from_env(security.max_upload_mb)
    logins = throttle if isinstance(throttle, LoginThrottle) else LoginThrottle(throttle or ThrottleSettings.from_env())
    options.update(guard_options(security, limits, logins))
    escape_choice_errors()
    install_lazy_session_config()  # a session holds what it changed, not a copy of every component's config
    demo.delete_cache = limits.delete_cache()  # Gradio deletes its uploads older than this (a Blocks setting)
    options.update(extra)
    # Every route is mounted before the port opens: `Blocks.launch` builds its server app and starts listening
    # in one call, and routes added to that app afterwards answered 404 for the first moments the port was open.
    # So the app is built here (what launch would build: the guards' middleware, Gradio's JSON responses), the
    # extra routes go on it, and launch adds Gradio's own routes to it before it listens.
    app = App(**{"default_response_class": ORJSONResponse, **options.pop("app_kwargs", {})})
    if on_app is not None:
        on_app(app)
    # An app may add CSS and choose its footer links (presenter mode: larger type, no API link).
    # `_frontend=False` skips launch's one self-check (a HEAD / to its own port with a 3 s timeout, meant for
    # notebooks behind a proxy): on a busy machine that first page took longer, and the server that had just
    # opened its port raised "When localhost is not accessible, a shareable link must be created" and exited.
    demo.launch(server_name=host, server_port=port, theme=THEME,
                css=CSS + LAYOUT_CSS + getattr(demo, "workbench_css", ""), show_error=True,
                footer_links=getattr(demo, "workbench_footer_links", ["api", "settings", "gradio"]),
                i18n=I18N, head=toast_titles_head() + RANGE_NOTE_HEAD, prevent_thread_lock=True, _app=app,
                _frontend=False, **options)
    start_session_expiry(app, limits.session_idle_s)
    if block:
        demo.block_thread()
    return app
