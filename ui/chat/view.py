"""How a conversation is shown in the Chatbot, and how the shown value is read back as plain messages.

- Reasoning text (`<think>…</think>`) is shown in its own collapsible message and left out of what is sent back
  to the model and of exports.
- The wait before the first token is a pending message whose title counts the seconds.
- User text is shown as text: raw HTML a user types is escaped outside code (code is shown verbatim anyway),
  and reading the value back undoes exactly that escaping.
- The app never rejects its own output: NUL characters a model emits are dropped.
"""

from __future__ import annotations

import html
import re
from typing import Any, Optional, Sequence

from backend.core.types import Message, flatten_content
from backend.services.generation import without_nul
from ui.i18n.core import say

History = list[dict[str, str]]
WAITING = "…"  # the content of the pending message that holds a reply's place
STOP_SIGN = "⏹"  # how the stopped mark's title begins, in every language (ui/i18n: chat_reply_stopped)
THINK_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))
_THINK = re.compile("|".join(f"{re.escape(open_)}(.*?)(?:{re.escape(close)}|$)" for open_, close in THINK_TAGS),
                    re.DOTALL)
# Fenced blocks, then inline code spans: the parts of Markdown shown verbatim.
_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]+`)", re.DOTALL)


def clean_model_text(text: str) -> str:
    """What a model emitted, safe to show and to send back (a chat saved before the backend dropped NULs may
    hold one)."""
    return without_nul(text)


def split_thinking(text: str) -> tuple[list[tuple[str, bool]], str]:
    """([(reasoning text, finished)], the answer without it)."""
    thoughts: list[tuple[str, bool]] = []
    for match in _THINK.finditer(text):
        inner = next((group for group in match.groups() if group is not None), "")
        finished = any(match.group(0).endswith(close) for _, close in THINK_TAGS)
        if inner.strip():
            thoughts.append((inner.strip(), finished))
    return thoughts, _THINK.sub("", text).strip() if thoughts or _THINK.search(text) else text


def reasoning_begun(text: str) -> bool:
    """Whether `text` is a reasoning block's opening tag and nothing else yet (no words to show)."""
    thoughts, answer = split_thinking(text)
    return not thoughts and not answer and _THINK.search(text) is not None


def assistant_messages(text: str, thinking_title: Optional[str] = None) -> list[dict[str, Any]]:
    """One reply as Chatbot messages: a collapsible message per reasoning block (titled "Thinking" in the
    language of the request being served), then the answer."""
    thinking_title = thinking_title or say("chat_thinking")
    thoughts, answer = split_thinking(clean_model_text(text))
    shown: list[dict[str, Any]] = [
        {"role": "assistant", "content": thought,
         "metadata": {"title": thinking_title, "status": "done" if finished else "pending"}}
        for thought, finished in thoughts]
    if answer or not shown:
        shown.append({"role": "assistant", "content": answer})
    return shown


def stopped_message() -> dict[str, Any]:
    """The mark under a reply that was stopped (Stop, or a reload mid-reply), so it never looks finished. A
    titled message: never sent back to the model nor exported (`plain_history`), kept when the chat is saved."""
    return {"role": "assistant", "content": "", "metadata": {"title": say("chat_reply_stopped"), "status": "done"}}


def stopped_reply(shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation whose last reply was stopped: the waiting message goes (nothing was written), a reasoning
    panel still open is closed, and the stopped mark follows what was written (once)."""
    kept: list[dict[str, Any]] = []
    for message in shown:
        metadata = message.get("metadata") or {}
        if metadata.get("status") == "pending":
            if message.get("content") == WAITING:
                continue
            message = {**message, "metadata": {**metadata, "status": "done"}}
        kept.append(message)
    if kept and is_stopped_mark(kept[-1]):
        return kept
    return kept + [stopped_message()]


def is_stopped_mark(message: Any) -> bool:
    """Whether `message` is the mark `stopped_message` makes (in either language)."""
    if not isinstance(message, dict) or not isinstance(message.get("metadata"), dict):
        return False
    return str(message["metadata"].get("title", "")).startswith(STOP_SIGN) and not message.get("content")


def waiting_message(title: str) -> dict[str, Any]:
    """The reply's place while the model loads or thinks: a pending message titled with what is happening."""
    return {"role": "assistant", "content": WAITING, "metadata": {"title": title, "status": "pending"}}


def user_message(text: str) -> dict[str, str]:
    return {"role": "user", "content": show_as_text(text)}


def show_as_text(text: str) -> str:
    """Escapes HTML outside code so Markdown shows what was typed instead of rendering it."""
    parts = _CODE.split(text)
    return "".join(part if index % 2 else html.escape(part, quote=False) for index, part in enumerate(parts))


def typed_text(shown: str) -> str:
    """The inverse of show_as_text."""
    parts = _CODE.split(shown)
    return "".join(part if index % 2 else html.unescape(part) for index, part in enumerate(parts))


def displayed(history: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """Plain messages (an import, an older saved chat) as Chatbot messages."""
    shown: list[dict[str, Any]] = []
    for message in history:
        if message["role"] == "user":
            shown.append(user_message(message["content"]))
        else:
            shown.extend(assistant_messages(message["content"]))
    return shown


def plain_history(value: Optional[Sequence[Any]]) -> History:
    """The Chatbot's value as plain {role, content} messages, as the model should see them.

    Reasoning and waiting messages (those with a metadata title) are dropped; the assistant messages of one
    reply become one message (an empty one when only reasoning was shown, so roles keep alternating).
    """
    plain: History = []
    in_reply = False
    for index, item in enumerate(value or ()):
        if not isinstance(item, dict):
            Message.from_dict(item, index)  # raises the usual, specific error
        role = item.get("role")
        text = flatten_content(item.get("content"))
        if text is None or role not in ("user", "assistant", "system"):
            Message.from_dict(item, index)
        text = clean_model_text(text or "")
        metadata = item.get("metadata") or {}
        if role != "assistant":
            in_reply = False
            plain.append({"role": role, "content": typed_text(text) if role == "user" else text})
            continue
        if not in_reply:
            plain.append({"role": "assistant", "content": ""})
            in_reply = True
        if not metadata.get("title"):
            last = plain[-1]
            last["content"] = (last["content"] + "\n\n" + text) if last["content"] else text
    return plain


def shown_messages(value: Optional[Sequence[Any]]) -> list[dict[str, Any]]:
    """The Chatbot's value as it came back from the browser, as messages to show again (text content, the
    metadata of reasoning messages kept). Invalid items raise the usual specific error."""
    shown: list[dict[str, Any]] = []
    for index, item in enumerate(value or ()):
        message = Message.from_dict(item, index)
        entry: dict[str, Any] = {"role": message.role, "content": clean_model_text(message.content)}
        metadata = item.get("metadata") if isinstance(item, dict) else None
        if metadata and metadata.get("title"):
            entry["metadata"] = {"title": metadata["title"], "status": metadata.get("status") or "done"}
        shown.append(entry)
    return shown


def split_last_exchange(shown: list[dict[str, Any]]) -> Optional[tuple[list[dict[str, Any]], str]]:
    """(the shown conversation before the last user message, that message as typed), or None when there is no
    user message yet."""
    for index in range(len(shown) - 1, -1, -1):
        if shown[index]["role"] == "user":
            return shown[:index], typed_text(shown[index]["content"])
    return None
