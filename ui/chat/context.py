"""The Chat tab's context meter: how many tokens of the model's context the conversation on screen uses.

After a reply the meter comes from the reply's own stats (ui/chat/tab.py); after anything else that changes the
conversation (Undo, Edit last, Import, switching saved conversations) it is counted again here, with the model's
own chat template, so it always describes the conversation shown. A model that is not loaded is never loaded just
to count: the meter then says the count comes once it is.
"""

from __future__ import annotations

from typing import Any, Optional

import gradio as gr

from backend.core.registry import Registry
from backend.core.types import UnsupportedTaskError, WorkbenchError
from backend.services import generation as service
from backend.services import tokens
from ui.chat.view import plain_history
from ui.i18n.core import say, text


def initial_context_line(max_context: Optional[int]) -> str:
    """The meter before any message, translated in the browser (a build-time template, ui/i18n/core.py)."""
    return text("context_of", used=0, max=max_context, share=0.0) if max_context else ""


def context_line(used: Optional[int], max_context: Optional[int], request: Optional[gr.Request] = None) -> str:
    """The context meter under the input: tokens the conversation uses of the model's context (in the browser's
    language: the line has numbers in it, so it is worded on the server, ui/i18n/core.py)."""
    if not max_context:
        return "" if used is None else say("context_used", request, used=used)
    used = used or 0
    return say("context_of", request, used=used, max=max_context, share=used / max_context)


def max_context_of(registry: Registry, model_id: str) -> Optional[int]:
    """The model's context: what the loaded model reports, else its models.yaml entry (None when neither says)."""
    return registry.status_of(model_id).max_context or registry.spec(model_id, "chat").max_context


def conversation_tokens(registry: Registry, model_id: str, system: Optional[str], history: Any) -> Optional[int]:
    """Tokens of the shown conversation (system prompt included) as the model's chat template renders it; None
    when the model is not loaded (it is not loaded just to count)."""
    messages = plain_history(history)
    if not messages:
        return 0
    if registry.status_of(model_id).state != "loaded":
        return None
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    try:
        return len(tokens.tokenize_chat(registry, model_id, messages, add_generation_prompt=False))
    except UnsupportedTaskError:
        # A remote server has no chat template here: its own count (or estimate) of each message's text.
        counts = [service.count_tokens(registry, model_id, message["content"], load=False)[0] for message in messages]
        return None if None in counts else sum(count or 0 for count in counts)


def meter(registry: Registry, model_id: Optional[str], system: Optional[str], history: Any,
          request: Optional[gr.Request] = None) -> str:
    """The meter line for the conversation shown."""
    if not model_id:
        return ""
    try:
        max_context = max_context_of(registry, model_id)
        used = conversation_tokens(registry, model_id, system, history)
    except WorkbenchError:
        return ""  # a meter never raises: a conversation the model refuses says so when it is sent
    if used is None:
        return say("context_unknown", request, max=f"{max_context:,}" if max_context else "?")
    return context_line(used, max_context, request)
