"""The conversation's widget and its page-side helpers, shared by the Chat tab and presenter mode: the Chatbot as
every chat screen shows it, Send / Stop's busy state, and closing an open ✎ edit box.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import gradio as gr

# $$…$$ and \[…\] on their own line, $…$ and \(…\) inline.
LATEX: list[dict[str, str | bool]]
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "\\[", "right": "\\]", "display": True},
         {"left": "$", "right": "$", "display": False}, {"left": "\\(", "right": "\\)", "display": False}]

# "hidden" keeps a button in the page, out of the layout: the first Stop then shows in the same frame as Send goes
# (visible=False left one empty frame while Gradio mounted it).
HIDDEN: Literal["hidden"] = "hidden"

# Closes the Chatbot's ✎ edit box if one is open, as its Cancel would (run in the page before an event that replaces
# the conversation): Gradio keeps the box's position across a new value, so the next message there would open as
# that stale edit. Gradio 6 draws [Submit, Cancel] right after the message row being edited.
CLOSE_EDIT_JS = """() => {
  const box = document.querySelector('#chat-history .edit-textarea');
  const buttons = box?.closest('.message-row')?.nextElementSibling?.querySelectorAll('button') ?? [];
  buttons[buttons.length - 1]?.click();
}"""

ChatButton = Literal["share", "copy", "copy_all"] | gr.Button


def busy(running: bool) -> tuple[gr.Button, gr.Button]:
    """(Send, Stop) updates: Stop shows only while a reply streams, in Send's place."""
    return gr.Button(visible=HIDDEN if running else True), gr.Button(visible=True if running else HIDDEN)


def chatbot(label: Optional[str], placeholder: str, height: int, buttons: list[ChatButton],
            editable: Optional[Literal["user", "all"]] = None) -> gr.Chatbot:
    """The conversation view every chat screen uses: LaTeX on, HTML sanitised (user text is escaped besides)."""
    return gr.Chatbot(value=[], label=label, show_label=label is not None, elem_id="chat-history", height=height,
                      buttons=buttons, render_markdown=True, latex_delimiters=LATEX, sanitize_html=True,
                      placeholder=placeholder, editable=editable)


def close_edit_on(*triggers: Any) -> None:
    """Closes an open ✎ edit box (in the page, before the event's own handler) on each trigger."""
    for trigger in triggers:
        trigger(None, js=CLOSE_EDIT_JS, api_visibility="private", queue=False)


def example_samples(spec: Any) -> list[list[str]]:
    """The entry's example prompts as the Examples dataset's rows."""
    return [[example] for example in (spec.examples if spec else ())]
