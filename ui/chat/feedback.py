"""Thumbs up / down on Chat's assistant replies, and "save this turn as a test case", stored per user.

Attached to a built ChatTab from outside (its public `history` and `model` components), so ui/chat/tab.py itself
does not change: `attach_feedback(chat_tab)` inside the Chat tab's layout.
"""

from __future__ import annotations

import html
from typing import Any, Optional

import gradio as gr

from backend.data import feedback
from backend.core.types import InvalidInputError
from ui.chat.view import plain_history
from ui.common.components import handle_errors, ui_event
from ui.i18n.core import say, t

DEFAULT_SUITE = "chat-regression"


def attach_feedback(chat: Any) -> gr.Markdown:
    """Adds rating (gr.Chatbot's like event) and a "save as test case" row under the chat; returns its status."""
    with gr.Accordion(t("feedback_open"), open=False, elem_id="chat-test-case"):
        with gr.Row():
            suite = gr.Textbox(label=t("feedback_suite"), value=DEFAULT_SUITE, elem_id="chat-suite", scale=1)
            expected = gr.Textbox(label=t("feedback_expected"), elem_id="chat-expected", scale=2)
            save = gr.Button(t("feedback_save"), elem_id="chat-save-case", scale=1)
    status = gr.Markdown("", elem_id="chat-feedback-status", elem_classes=["stats-line"])
    chat.history.like(rate, inputs=[chat.model, chat.history], outputs=status, **ui_event(status))
    save.click(save_case, inputs=[chat.model, chat.history, suite, expected], outputs=status, **ui_event(status))
    return status


@handle_errors
def rate(model: Optional[str], history: list[Any], like: gr.LikeData, request: gr.Request) -> str:
    liked = like.liked
    rating = "up" if liked is True or liked == "Like" else "down" if liked is False or liked == "Dislike" else None
    index = like.index if isinstance(like.index, int) else like.index[0]
    conversation = _through_reply(history or [], index)
    feedback.record_rating(getattr(request, "username", None), model or "", conversation, rating)
    word = say({"up": "rated_up", "down": "rated_down", None: "rating_removed"}[rating])
    replies = sum(message["role"] == "assistant" for message in conversation)
    line = say("rated_reply", word=word, reply=replies)
    # The status line sits below the fold on a laptop screen: the toast shows where the user is looking.
    gr.Info(line, duration=4)
    return line


def _through_reply(history: list[Any], index: int) -> list[dict[str, str]]:
    """The conversation as the model saw it, up to and including the reply shown at `index`.

    The Chatbot shows one reply as several messages (reasoning panels, then the answer; a pending "Thinking…"
    message while waiting): the whole reply is the rated one, read back without the panels."""
    if not 0 <= index < len(history):
        raise InvalidInputError(f"rating: there is no message {index} in this conversation")
    end = index
    while end + 1 < len(history) and isinstance(history[end + 1], dict) and history[end + 1].get("role") == "assistant":
        end += 1
    return plain_history(history[: end + 1])


@handle_errors
def save_case(model: Optional[str], history: list[Any], suite: str, expected: str, request: gr.Request) -> str:
    conversation = plain_history(history or [])
    if not conversation or conversation[-1]["role"] != "assistant":
        raise InvalidInputError("test case: there is no reply to save yet; chat first")
    info = feedback.save_test_case(getattr(request, "username", None), suite or DEFAULT_SUITE, conversation,
                                   expected or None, model=model or "")
    return html.escape(say("feedback_saved", name=info.name, count=sum(info.rows.values())), quote=False)
