"""The Chat tab's memory: saved conversations in the browser (switch, rename, delete with an undo; restored on
reload) and the versions of a branched conversation (flip between them).

The conversations live in the browser (ui/chat/saved.py); the versions are ui/chat/branches.py. Every event that
changes the conversation is followed by `persist`, so a reload finds it as it was.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, replace
from typing import Any, Container, Iterator, Optional

import gradio as gr

from ui.chat import branches
from ui.chat import seal as chat_seal
from ui.chat import saved as saved_chats
from ui.chat.view import shown_messages, stopped_reply
from ui.chat.widgets import CLOSE_EDIT_JS
from ui.common.components import ui_event
from ui.i18n.core import say, t


CHECKPOINT_S = 2.0  # how often a streaming reply is saved (sealing the store costs a few ms per megabyte)


@dataclass(frozen=True)
class ChatMemory:
    store: gr.BrowserState
    current: gr.State  # the id of the conversation on screen
    saved: gr.Dropdown
    title: gr.Textbox
    new: gr.Button
    delete: gr.Button
    deleted: gr.State  # {"id", "chat"} of the conversation last deleted, until its Undo (this page only)
    deleted_note: gr.Markdown  # "Deleted 'x'." beside its Undo button, under Delete
    undo_delete: gr.Button
    versions: gr.Markdown
    previous: gr.Button
    next: gr.Button
    model_ids: Container[str]  # a saved conversation's model is restored only if the registry has it now

    @classmethod
    def build_list(cls, model_ids: Container[str]) -> "ChatMemory":
        """The saved-conversations panel (in the side column); the version row is added by `build_versions`."""
        store = gr.BrowserState(saved_chats.empty_store(), storage_key=saved_chats.STORAGE_KEY,
                                secret=chat_seal.browser_state_secret())
        with gr.Accordion(t("chat_conversations"), open=False, elem_id="chat-conversations"):
            saved = gr.Dropdown(choices=[], value=None, label=t("chat_saved"), elem_id="chat-saved",
                                interactive=True, allow_custom_value=False)
            title = gr.Textbox(label=t("chat_title"), elem_id="chat-title", max_lines=1,
                               placeholder=t("chat_title_placeholder"))
            with gr.Row():
                new = gr.Button(t("chat_new"), size="sm", elem_id="chat-new", min_width=60)
                delete = gr.Button(t("chat_delete"), size="sm", elem_id="chat-delete", variant="stop", min_width=60)
            with gr.Row(equal_height=True):
                deleted_note = gr.Markdown("", elem_id="chat-deleted", elem_classes=["stats-line"])
                undo_delete = gr.Button(t("chat_undo_delete"), size="sm", elem_id="chat-undo-delete", visible=False,
                                        min_width=60, scale=0)
        # Placeholders, replaced by build_versions (they sit under the conversation).
        return cls(store, gr.State(None), saved, title, new, delete, gr.State(None), deleted_note, undo_delete,
                   None, None, None, model_ids)  # type: ignore[arg-type]

    def build_versions(self) -> "ChatMemory":
        with gr.Row(elem_id="chat-versions-row", elem_classes=["versions-row"]):
            previous = gr.Button(t("chat_previous_version"), size="sm", elem_id="chat-version-prev", visible=False,
                                 min_width=150, scale=0)
            versions = gr.Markdown("", elem_id="chat-versions", elem_classes=["stats-line"])
            following = gr.Button(t("chat_next_version"), size="sm", elem_id="chat-version-next", visible=False,
                                  min_width=150, scale=0)
        return replace(self, versions=versions, previous=previous, next=following)

    # ------------------------------------------------------------------------------------------ wiring

    def wire(self, history: gr.Chatbot, forks: gr.State, selected: gr.State, model: Any, system: Any,
             changed: list[Any], stop_running: list[Any], load: Any) -> list[Any]:
        """`changed`: events after which the conversation is saved; `stop_running`: reply events that New,
        Delete, a switch and a flip stop first; `load`: the page-load trigger (restores the last conversation).
        Returns the events that put another conversation on screen (the context meter counts it again)."""
        quick = ui_event(self.versions, queue=False)
        conversation = [history, forks, self.current, self.title, system, model]
        version_row = [self.versions, self.previous, self.next]
        undo_row = [self.deleted, self.deleted_note, self.undo_delete]
        saving = dict(fn=self.persist, inputs=[self.store, self.current, history, forks, model, system, selected],
                      outputs=[self.store, self.current, self.saved, *version_row], **quick)
        for event in changed:
            event.then(**saving)

        def stopping(trigger: Any) -> Any:
            """`trigger` stops the running reply and closes an open edit box first (ui/chat/view.py)."""
            return trigger(None, cancels=stop_running, js=CLOSE_EDIT_JS, queue=False, api_visibility="private")

        load(self.restore, inputs=self.store, outputs=[*conversation, self.saved, *version_row], **quick)
        replaced = [
            stopping(self.saved.input).then(self.switch, inputs=[self.store, self.saved],
                                            outputs=[*conversation, self.store, *version_row], **quick),
            stopping(self.new.click).then(
                self.start_new, inputs=self.store, outputs=[*conversation[:4], self.store, self.saved, *version_row],
                **quick),
            stopping(self.delete.click).then(
                self.remove, inputs=[self.store, self.current],
                outputs=[*conversation, self.store, self.saved, *version_row, *undo_row], **quick),
            stopping(self.undo_delete.click).then(
                self.restore_deleted, inputs=[self.store, self.deleted],
                outputs=[*conversation, self.store, self.saved, *version_row, *undo_row], **quick),
        ]
        self.title.submit(self.rename, inputs=[self.store, self.current, self.title],
                          outputs=[self.store, self.saved], **quick)
        history.select(self.pick, outputs=selected, **quick).then(
            self.show_versions, inputs=[history, forks, selected], outputs=version_row, **quick)
        for button, step in ((self.previous, -1), (self.next, 1)):
            flipping = stopping(button.click).then(self.flip(step), inputs=[history, forks, selected],
                                                   outputs=[history, forks, *version_row], **quick)
            flipping.then(**saving)
            replaced.append(flipping)
        return replaced

    @property
    def checkpoint_outputs(self) -> list[Any]:
        """What a reply event also updates while it streams (`checkpointed`): the store and the chat's id."""
        return [self.store, self.current]

    def checkpointed(self, updates: Iterator[tuple[Any, ...]], history_at: int, forks_at: int, store: Any,
                     current: Optional[str], forks: Any, model: Optional[str], system: Optional[str],
                     request: Optional[gr.Request]) -> Iterator[tuple[Any, ...]]:
        """A reply's updates, each followed by (store, chat id): the conversation on screen (the update's value
        at `history_at`, when it has one) is saved with the reply marked stopped, at once and then every
        CHECKPOINT_S while it streams. A reload mid-reply finds the question and what was written so far, marked
        stopped; a reply that ends is saved as it ended by the `persist` after the event, as before."""
        chat_id, last = current, float("-inf")
        skip = gr.skip()
        for update in updates:
            history = update[history_at]
            if not _skipped(update[forks_at]):
                forks = update[forks_at]  # a retry / an edit brings the versions it made
            if not isinstance(history, list) or time.monotonic() - last < CHECKPOINT_S:
                yield (*update, skip, skip)
                continue
            last = time.monotonic()
            sealed, chat_id = self.persist(store, chat_id, stopped_reply(history), forks, model, system, None,
                                           request)[:2]
            yield (*update, sealed, chat_id)

    # ------------------------------------------------------------------------------------------ handlers

    # Every handler opens the browser's store for the request's user and seals what it gives back
    # (ui/chat/seal.py): another login's saved chats open as an empty store.

    def persist(self, store: Any, current: Optional[str], history: Any, forks: Any, model: Optional[str],
                system: Optional[str], selected: Optional[int], request: Optional[gr.Request]) -> tuple[Any, ...]:
        user = _user(request)
        messages = shown_messages(history)
        forks = {key: value for key, value in (forks or {}).items() if int(key) < len(messages)}
        chat_id = current or saved_chats.new_id()
        store = saved_chats.save(chat_seal.unseal(store, user), chat_id, messages, forks, model, system)
        return (chat_seal.seal(store, user), chat_id, self._list(store),
                *self._version_row(messages, forks, selected))

    def restore(self, store: Any, request: gr.Request) -> tuple[Any, ...]:
        store = saved_chats.valid(chat_seal.unseal(store, _user(request)))
        return (*self._open(store, store["current"]), self._list(store),
                *self._version_row(self._messages(store, store["current"]), self._forks(store, store["current"]),
                                   None))

    def switch(self, store: Any, chat_id: Optional[str], request: gr.Request) -> tuple[Any, ...]:
        user = _user(request)
        store = saved_chats.valid(chat_seal.unseal(store, user))
        if chat_id in store["chats"]:
            store = {**store, "current": chat_id}
        return (*self._open(store, store["current"]), chat_seal.seal(store, user),
                *self._version_row(self._messages(store, store["current"]), self._forks(store, store["current"]),
                                   None))

    def start_new(self, store: Any, request: gr.Request) -> tuple[Any, ...]:
        user = _user(request)
        store = {**saved_chats.valid(chat_seal.unseal(store, user)), "current": None}
        return ([], {}, saved_chats.new_id(), "", chat_seal.seal(store, user), self._list(store),
                *self._version_row([], {}, None))

    def remove(self, store: Any, chat_id: Optional[str], request: gr.Request) -> tuple[Any, ...]:
        """Deletes the conversation on screen and offers its Undo ("Deleted 'x'." beside an Undo button)."""
        user = _user(request)
        opened = saved_chats.valid(chat_seal.unseal(store, user))
        chat = opened["chats"].get(chat_id) if chat_id else None
        store = saved_chats.delete(opened, chat_id)
        if chat is None:  # nothing saved was deleted: nothing to undo
            return *self._shown(store, user), None, "", gr.Button(visible=False)
        title = html.escape(str(chat.get("title") or ""), quote=False)  # the user's words, shown as text
        return (*self._shown(store, user), {"id": chat_id, "chat": chat}, say("chat_deleted", request, title=title),
                gr.Button(visible=True))

    def restore_deleted(self, store: Any, deleted: Any, request: gr.Request) -> tuple[Any, ...]:
        """Undo delete: the conversation last deleted is back, in its place in the list, and on screen."""
        user = _user(request)
        store = saved_chats.valid(chat_seal.unseal(store, user))
        if isinstance(deleted, dict):
            store = saved_chats.restore(store, deleted.get("id"), deleted.get("chat"))
        return *self._shown(store, user), None, "", gr.Button(visible=False)

    def _shown(self, store: dict[str, Any], user: Optional[str]) -> tuple[Any, ...]:
        """The store's current conversation on screen: (*conversation, sealed store, list, *version row)."""
        current = store["current"]
        return (*self._open(store, current), chat_seal.seal(store, user), self._list(store),
                *self._version_row(self._messages(store, current), self._forks(store, current), None))

    def rename(self, store: Any, chat_id: Optional[str], title: str, request: gr.Request) -> tuple[Any, ...]:
        user = _user(request)
        store = saved_chats.rename(chat_seal.unseal(store, user), chat_id, title)
        return chat_seal.seal(store, user), self._list(store)

    @staticmethod
    def pick(event: gr.SelectData) -> Optional[int]:
        index = event.index
        return index[0] if isinstance(index, (list, tuple)) else index

    def show_versions(self, history: Any, forks: Any, selected: Optional[int]) -> tuple[Any, ...]:
        return self._version_row(shown_messages(history), forks or {}, selected)

    def flip(self, step: int) -> Any:
        def flip_versions(history: Any, forks: Any, selected: Optional[int]) -> tuple[Any, ...]:
            messages, forks = shown_messages(history), forks or {}
            point = branches.fork_point(forks, selected)
            if point is None:
                return gr.skip(), gr.skip(), *self._version_row(messages, forks, selected)
            messages, forks = branches.flip(messages, forks, point, step)
            return messages, forks, *self._version_row(messages, forks, point)

        return flip_versions

    # ------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _messages(store: dict[str, Any], chat_id: Optional[str]) -> list[dict[str, Any]]:
        return list(store["chats"].get(chat_id, {}).get("messages", [])) if chat_id else []

    @staticmethod
    def _forks(store: dict[str, Any], chat_id: Optional[str]) -> dict[str, Any]:
        return dict(store["chats"].get(chat_id, {}).get("forks", {})) if chat_id else {}

    def _open(self, store: dict[str, Any], chat_id: Optional[str]) -> tuple[Any, ...]:
        """(history, forks, current id, title, system prompt, model) of a saved conversation (or a new one)."""
        chat = store["chats"].get(chat_id) if chat_id else None
        if chat is None:
            return [], {}, saved_chats.new_id(), "", gr.skip(), gr.skip()
        model = chat.get("model") if chat.get("model") in self.model_ids else gr.skip()
        return (chat["messages"], chat.get("forks", {}), chat_id, chat.get("title", ""), chat.get("system", ""),
                model)

    @staticmethod
    def _list(store: Any) -> gr.Dropdown:  # the titles of an opened (never a sealed) store
        store = saved_chats.valid(store)
        return gr.Dropdown(choices=saved_chats.choices(store), value=store["current"])

    def _version_row(self, messages: list[dict[str, Any]], forks: dict[str, Any],
                     selected: Optional[int]) -> tuple[Any, ...]:
        point = branches.fork_point(forks, selected)
        label = branches.version_label(forks, point, messages)
        if not label:
            return "", gr.Button(visible=False), gr.Button(visible=False)
        info = forks[str(point)]
        return (label, gr.Button(visible=True, interactive=info["active"] > 0),
                gr.Button(visible=True, interactive=info["active"] < len(info["versions"]) - 1))


def _skipped(value: Any) -> bool:
    """Whether an output value is gr.skip() (leave the component as it is)."""
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


def _user(request: Optional[gr.Request]) -> Optional[str]:
    """The logged-in user of the request (None without logins: one key for the app's single user)."""
    return getattr(request, "username", None) if request is not None else None
