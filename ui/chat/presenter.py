"""Presenter mode: one chat model, its settings locked, on a clean screen for stakeholder demos.

    python app.py --presenter            (or a `presenter:` block in models.yaml)

The screen shows a title, a description and a logo from the config, the conversation, curated example prompts
(one click sends one) and a "New conversation" button; nothing technical (no model picker, parameters, stats,
other tabs or API link). It reuses the Chat tab's handlers (`ChatTab.send`) and shared widgets over its own
layout. The model, system prompt and generation parameters are server-side `gr.State` values taken from the
config: the page neither shows nor sends them, so a visitor cannot change them.

The API is a read-and-generate subset of the full app's (`ui.server.api.PRESENTER_ENDPOINTS`: /chat, /generate,
/generate_with_probs, /count_tokens, /models; no /load_model or /unload_model, so nobody can pull the demo model
away mid-demo), and a request without a model gets the locked one.
"""

from __future__ import annotations

import base64
import html
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from backend.core.config import ModelSpec, PresenterSettings
from backend.core.registry import Registry
from backend.core.types import ConfigError, GenerationParams
from ui.server import api
from ui.chat.tab import ChatTab
from ui.chat.widgets import HIDDEN, chatbot
from ui.common.components import ParamPanel, cancel_then, ui_event
from ui.i18n.core import t, text

# Larger type and a centred column; every rule is scoped to the presenter's own root.
PRESENTER_CSS = """
.presenter-root { max-width: 1040px; margin: 0 auto !important; width: 100%; }
.presenter-header { display: flex; align-items: center; gap: 20px; padding: 12px 0 4px; }
.presenter-logo { height: 72px; width: auto; max-width: 220px; object-fit: contain; }
.presenter-header h1 { font-size: 2.6rem; line-height: 1.15; margin: 0; font-weight: 700; }
.presenter-byline { margin: 6px 0 0; font-size: 1.05rem; opacity: 0.65; }
#presenter-description, #presenter-description p { font-size: 1.3rem; line-height: 1.5; }
.presenter-root #chat-history .message-content, .presenter-root #chat-history .message-content * {
  font-size: 1.25rem; line-height: 1.6;
}
.presenter-root #chat-history .placeholder, .presenter-root #chat-history .placeholder * { font-size: 1.3rem; }
.presenter-root #chat-input textarea { font-size: 1.25rem; line-height: 1.5; }
.presenter-root #chat-send, .presenter-root #chat-stop-btn { font-size: 1.15rem; }
#presenter-examples .label, #presenter-examples span { font-size: 1.1rem; }
#presenter-examples button { font-size: 1.1rem; padding: 10px 14px; }
#presenter-reset { font-size: 1.05rem; align-self: center; }
/* A phone (390 px): one compact bar (logo, title, a round "new conversation" button beside the title instead of
   over it) that stays at the top while the conversation scrolls; smaller type; the conversation leaves room for
   the input. */
/* Gradio's container hides overflow, which would make it the sticky bar's scroll box; clip does not. (Top level:
   Gradio scopes rules inside @media to its .contain element, which the container is not inside.) */
.gradio-container:has(.presenter-root) { overflow: clip !important; }
@media (max-width: 640px) {
  .presenter-top { flex-wrap: nowrap !important; gap: 8px !important; position: sticky; top: 0; z-index: 20;
    background: var(--body-background-fill); padding-bottom: 4px; }
  .presenter-top > .html-container, .presenter-top > div:first-child {
    flex: 1 1 auto !important; min-width: 0 !important; }
  #presenter-reset { flex: 0 0 44px !important; min-width: 44px !important; width: 44px; height: 44px; padding: 0;
    font-size: 0 !important; border-radius: 22px; }
  #presenter-reset::before { content: "↺"; font-size: 1.4rem; }
  .presenter-header { gap: 10px; padding: 4px 0 0; }
  .presenter-logo { height: 40px; }
  .presenter-header h1 { font-size: 1.35rem; }
  .presenter-byline { font-size: 0.85rem; margin-top: 2px; }
  #presenter-description, #presenter-description p { font-size: 1.05rem; line-height: 1.4; }
  .presenter-root #chat-history { height: 46vh !important; max-height: 46vh; }
}
"""

# The only footer link left: the attribution. No API page link on a demo screen.
PRESENTER_FOOTER_LINKS = ["gradio"]


@dataclass(frozen=True)
class PresenterView:
    """What the presenter shows and uses, resolved from the config and the model's own entry."""

    spec: ModelSpec
    title: str
    description: str
    logo_src: Optional[str]  # a data: URI (a local file, embedded) or an http(s) URL
    examples: tuple[str, ...]
    system_prompt: str
    params: GenerationParams

    @classmethod
    def resolve(cls, registry: Registry, settings: Optional[PresenterSettings]) -> "PresenterView":
        settings = settings or PresenterSettings()
        chat_models = registry.specs("chat")
        if settings.model:
            spec = registry.spec(settings.model, "chat")
        elif chat_models:
            spec = chat_models[0]
        else:
            raise ConfigError("presenter mode needs a model with the 'chat' task in models.yaml")
        base_dir = registry.config.base_dir
        return cls(
            spec=spec,
            title=settings.title or spec.display_name,
            description=spec.description if settings.description is None else settings.description,
            logo_src=_logo_src(settings, base_dir),
            examples=spec.examples if settings.examples is None else settings.examples,
            system_prompt=settings.system_prompt,
            params=settings.generation.over(spec.default_params()),
        )


def _logo_src(settings: PresenterSettings, base_dir: Path) -> Optional[str]:
    """The logo as an <img> source. A local file is embedded (a data: URI), so no folder is ever served."""
    if not settings.logo:
        return None
    path = settings.logo_file(base_dir)
    if path is None:
        return settings.logo  # an http(s) URL (checked in backend/core/config.py)
    mime = "image/svg+xml" if path.suffix.lower() == ".svg" else mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def header_html(view: PresenterView) -> str:
    """Logo, title and the model's name under it (not when the title is that name); every value escaped (the
    config is text, never markup)."""
    logo = (f'<img class="presenter-logo" src="{html.escape(view.logo_src, quote=True)}" alt="">'
            if view.logo_src else "")
    title = html.escape(view.title, quote=False)
    if view.title.strip().casefold() == view.spec.display_name.strip().casefold():
        # No title of its own (no `presenter:` block): the model's name is the title, said once.
        return f'<div class="presenter-header">{logo}<div><h1 id="presenter-title">{title}</h1></div></div>'
    # The frontend translates the marker inside the HTML (ui/i18n/core.py): "Powered by" / its Chinese, then the name.
    byline = f"{text('presenter_byline')} {html.escape(view.spec.display_name, quote=False)}"
    return (f'<div class="presenter-header">{logo}<div><h1 id="presenter-title">{title}</h1>'
            f'<p class="presenter-byline">{byline}</p></div></div>')


def locked_params(params: GenerationParams) -> ParamPanel:
    """A ParamPanel whose values are server-side states: `ParamPanel.read` works, nothing is on the page."""
    states: dict[str, Any] = dict(  # states in the widgets' places: ParamPanel reads either alike
        preset=gr.State(None),
        max_new_tokens=gr.State(params.max_new_tokens),
        temperature=gr.State(params.temperature),
        top_p=gr.State(params.top_p),
        top_k=gr.State(params.top_k),
        repetition_penalty=gr.State(params.repetition_penalty),
        seed=gr.State(-1 if params.seed is None else params.seed),
        stop=gr.State(list(params.stop)),
    )
    return ParamPanel(**states)


def build_presenter(registry: Registry, settings: Optional[PresenterSettings]) -> gr.Blocks:
    """The presenter screen over `registry`; nothing is loaded here (the model loads on the first message)."""
    view = PresenterView.resolve(registry, settings)
    with gr.Blocks(title=view.title) as demo:
        with gr.Column(elem_classes=["presenter-root"]):
            with gr.Row(equal_height=True, elem_classes=["presenter-top"]):
                gr.HTML(header_html(view), elem_id="presenter-header", scale=1)
                reset = gr.Button(t("presenter_new"), elem_id="presenter-reset", scale=0, min_width=230)
            if view.description:
                gr.Markdown(view.description, elem_id="presenter-description")
            history = chatbot(None, t("presenter_history_placeholder"), height=440, buttons=["copy"])
            with gr.Row(equal_height=True, elem_classes=["input-row"]):
                text = gr.Textbox(placeholder=t("presenter_input_placeholder"), show_label=False, lines=1,
                                  max_lines=8, scale=8,
                                  elem_id="chat-input", autofocus=True)
                send = gr.Button(t("chat_send"), variant="primary", scale=1, elem_id="chat-send")
                stop = gr.Button(t("stop"), variant="stop", scale=1, elem_id="chat-stop-btn", visible=HIDDEN)
            examples = gr.Dataset(components=[text], samples=[[example] for example in view.examples],
                                  label=t("presenter_examples"), elem_id="presenter-examples",
                                  visible=bool(view.examples))
            # The stats line and context meter stay in the page for the handlers (and tests) but are never shown.
            stats = gr.Markdown("", elem_id="chat-stats", visible="hidden")
            context = gr.Markdown("", elem_id="chat-context", visible="hidden")
        model = gr.State(view.spec.id)
        system = gr.State(view.system_prompt)
        params = locked_params(view.params)
        # The stats line is hidden here: a note ("Type a message first.") shows as a toast.
        tab = ChatTab(registry, model, system, params, history, text, stats, examples, send, stop, context,
                      gr.State({}), gr.State(None), toast_notes=True)
        # Send, Enter, a click on an example (asks it at once) and the trash icon, as in the Chat tab.
        running, _ = tab.listen()
        tab.stop_on(stop.click)
        cancel_then(reset, running, tab.clear, inputs=model, outputs=[history, stats, context, send, stop],
                    feedback_on=stats)
        reset.click(lambda: "", outputs=text, **ui_event(stats, queue=False))
        api.register(registry, endpoints=api.PRESENTER_ENDPOINTS, default_model=view.spec.id)
    demo.workbench_css = PRESENTER_CSS  # read by ui.launch
    demo.workbench_footer_links = PRESENTER_FOOTER_LINKS
    return demo
