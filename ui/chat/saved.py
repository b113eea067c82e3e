"""Saved conversations, kept in the browser (gr.BrowserState: localStorage, encrypted), never on the server.

The store is plain JSON: {"current": id, "chats": {id: chat}}, a chat being {"title", "updated", "messages",
"forks", "model", "system"}. Bounded: at most MAX_CHATS conversations (the oldest go first) and MAX_CHARS of
message text in all, so localStorage's few megabytes never overflow.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Optional

from backend.core.types import flatten_content
from ui.chat.view import typed_text

MAX_CHATS = 30
MAX_CHARS = 1_500_000
TITLE_CHARS = 48
STORAGE_KEY = "llm-workbench-chats"  # sealed per user before it reaches the browser: ui/chat/seal.py

def empty_store() -> dict[str, Any]:
    return {"current": None, "chats": {}}


def valid(store: Any) -> dict[str, Any]:
    """What the browser sent, as a store (anything malformed becomes an empty one)."""
    if not isinstance(store, dict) or not isinstance(store.get("chats"), dict):
        return empty_store()
    chats = {key: chat for key, chat in store["chats"].items()
             if isinstance(key, str) and isinstance(chat, dict) and isinstance(chat.get("messages"), list)}
    current = store.get("current") if store.get("current") in chats else None
    return {"current": current, "chats": chats}


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def default_title(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            text = " ".join(typed_text(flatten_content(message.get("content")) or "").split())
            return text[:TITLE_CHARS] + ("…" if len(text) > TITLE_CHARS else "")
    return "New conversation"


def save(store: Any, chat_id: str, messages: list[dict[str, Any]], forks: Any, model: Optional[str],
         system: Optional[str], title: Optional[str] = None) -> dict[str, Any]:
    """The store with `chat_id` saved as current (an empty conversation is not kept)."""
    store = valid(store)
    chats = dict(store["chats"])
    if not messages:
        chats.pop(chat_id, None)
        return {"current": None, "chats": chats}
    old = chats.get(chat_id, {})
    chats[chat_id] = {"title": title or old.get("title") or default_title(messages), "updated": time.time(),
                      "messages": messages, "forks": forks or {}, "model": model, "system": system or ""}
    return {"current": chat_id, "chats": _bounded(chats, keep=chat_id)}


def rename(store: Any, chat_id: Optional[str], title: str) -> dict[str, Any]:
    store = valid(store)
    title = " ".join((title or "").split())[:120]
    if chat_id in store["chats"] and title:
        store["chats"][chat_id] = {**store["chats"][chat_id], "title": title}
    return store


def delete(store: Any, chat_id: Optional[str]) -> dict[str, Any]:
    store = valid(store)
    store["chats"].pop(chat_id, None)
    newest = sorted(store["chats"], key=lambda key: store["chats"][key].get("updated", 0), reverse=True)
    return {"current": newest[0] if newest else None, "chats": store["chats"]}


def restore(store: Any, chat_id: Any, chat: Any) -> dict[str, Any]:
    """The store with a deleted conversation back as current (Undo delete); unchanged when `chat` is not one."""
    store = valid(store)
    if not isinstance(chat_id, str) or not isinstance(chat, dict) or not isinstance(chat.get("messages"), list):
        return store
    return {"current": chat_id, "chats": _bounded({**store["chats"], chat_id: chat}, keep=chat_id)}


def choices(store: Any) -> list[tuple[str, str]]:
    """(title, id) of every saved conversation, newest first."""
    chats = valid(store)["chats"]
    ordered = sorted(chats, key=lambda key: chats[key].get("updated", 0), reverse=True)
    return [(str(chats[key].get("title") or "Untitled"), key) for key in ordered]


def _size(chat: dict[str, Any]) -> int:
    return len(json.dumps(chat, ensure_ascii=False))  # messages and the versions kept in forks


def _bounded(chats: dict[str, Any], keep: str) -> dict[str, Any]:
    ordered = sorted(chats, key=lambda key: chats[key].get("updated", 0), reverse=True)
    kept: dict[str, Any] = {}
    total = 0
    for key in ordered:
        size = _size(chats[key])
        if key != keep and (len(kept) >= MAX_CHATS or total + size > MAX_CHARS):
            continue
        kept[key] = chats[key]
        total += size
    return kept
