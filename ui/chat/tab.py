"""The Chat tab: a streaming conversation with one model, with retry / undo / edit, export and import.

The conversation lives in the Chatbot's value, which is per browser session: the server keeps no chat state,
so two sessions can never see each other's messages. How messages are shown and read back is ui/chat/view.py;
one reply's updates are ui/chat/reply.py; one running reply per session is ui/chat/runs.py.

While a reply streams, Send turns into Stop. Enter (or Retry) during a reply supersedes it; Stop, Undo, Edit,
Clear and the Conversation box's trash icon stop it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import gradio as gr
from gradio.context import Context

from backend.services import generation as service
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.core.streams import close_quietly
from backend.core.types import flatten_content
from ui.chat import branches
from ui.chat.context import context_line, initial_context_line, max_context_of, meter
from ui.chat.memory import ChatMemory
from ui.chat.reply import reply_updates
from ui.chat.view import displayed, plain_history, shown_messages, split_last_exchange, stopped_reply, typed_text
from ui.chat.view import user_message
from ui.common.components import (
    STOPPED,
    STREAMING,
    OnChange,
    ParamPanel,
    LiveIds,
    cancel_then,
    first_spec,
    model_picker,
    status_sink,
    ui_errors,
    ui_event,
)
from ui.chat.runs import RUNS, session_of
from ui.chat.transcript import Transcript, messages_from_history, read_import, write_export
from ui.chat.widgets import CLOSE_EDIT_JS, HIDDEN, busy, chatbot, close_edit_on, example_samples
from ui.i18n.core import say, t

# Clicks the hidden download button once the export file is ready, so Export is a single click.
_CLICK_DOWNLOAD_JS = "() => document.querySelector('#chat-export-file')?.click()"

@dataclass(frozen=True)
class ChatTab:
    registry: Registry
    model: Any  # gr.Dropdown, or a gr.State where the model is locked (presenter mode)
    system: Any
    params: ParamPanel
    history: gr.Chatbot
    input: gr.Textbox
    stats: gr.Markdown
    examples: gr.Dataset
    send_button: gr.Button
    stop_button: gr.Button
    context: gr.Markdown
    forks: gr.State  # the versions of a branched conversation (ui/chat/branches.py)
    selected: gr.State  # the index of the message last clicked (Retry regenerates that reply)
    # Where a note ("Type a message first.") shows: the stats line, or a toast where that line is hidden
    # (presenter mode). Toasts need a queued event: the notes of Send and Retry, which are.
    toast_notes: bool = False
    memory: Optional[ChatMemory] = None  # saved conversations: a reply is saved while it streams (none: presenter)

    @classmethod
    def build(cls, registry: Registry) -> "ChatTab":
        spec = first_spec(registry, "chat")
        # The side column (model, system prompt, parameters) comes first in the page so that on a phone, where
        # columns stack, it sits above the conversation; on a wide screen CSS puts it on the right (ui/common/style.py).
        with gr.Row(elem_id="chat-layout"):
            with gr.Column(scale=1, min_width=280, elem_id="chat-side"):
                memory = ChatMemory.build_list(LiveIds(registry, "chat"))
                model = model_picker(registry, "chat", "chat-model")
                system = gr.Textbox(label=t("chat_system"), lines=3, elem_id="chat-system",
                                    placeholder=t("chat_system_placeholder"))
                params = ParamPanel.build("chat", spec)
            with gr.Column(scale=3, elem_id="chat-main"):
                history = chatbot(t("chat_history"), t("chat_history_placeholder"),
                                  height=480, buttons=["copy", "copy_all"], editable="user")
                memory = memory.build_versions()
                with gr.Row(equal_height=True, elem_classes=["input-row"]):
                    text = gr.Textbox(placeholder=t("chat_input_placeholder"),
                                      show_label=False, lines=1, max_lines=12, scale=8, elem_id="chat-input",
                                      autofocus=True)
                    send = gr.Button(t("chat_send"), variant="primary", scale=1, elem_id="chat-send")
                    stop = gr.Button(t("stop"), variant="stop", scale=1, elem_id="chat-stop-btn", visible=HIDDEN)
                context = gr.Markdown(initial_context_line(spec.max_context if spec else None), elem_id="chat-context",
                                      elem_classes=["stats-line"])
                small: dict[str, Any] = dict(size="sm", min_width=80)
                with gr.Row():
                    retry = gr.Button(t("chat_retry"), elem_id="chat-retry", **small)
                    undo = gr.Button(t("chat_undo"), elem_id="chat-undo", **small)
                    edit = gr.Button(t("chat_edit_last"), elem_id="chat-edit", **small)
                    clear = gr.Button(t("chat_clear"), elem_id="chat-clear", **small)
                    export = gr.Button(t("chat_export"), elem_id="chat-export", **small)
                    upload = gr.UploadButton(t("chat_import"), file_types=[".json"], type="filepath",
                                             elem_id="chat-import", **small)
                stats = gr.Markdown("", elem_id="chat-stats", elem_classes=["stats-line"])
                examples = gr.Dataset(components=[text], samples=example_samples(spec), label=t("chat_examples"),
                                      elem_id="chat-examples", visible=bool(spec and spec.examples))
                download = gr.DownloadButton(t("chat_download_export"), visible="hidden", elem_id="chat-export-file")
        tab = cls(registry, model, system, params, history, text, stats, examples, send, stop, context,
                  gr.State({}), gr.State(None), memory=memory)
        running, trashing = tab.listen(api_names=True)
        quick = ui_event(stats, queue=False)
        # The context meter has numbers in it, so it is worded on the server: word it in the browser's language.
        Context.root_block.load(tab.load_context, inputs=model, outputs=context, **quick)  # type: ignore[union-attr]
        retrying = retry.click(tab.retry, inputs=tab.reply_inputs, outputs=tab.reply_outputs, trigger_mode="multiple",
                               api_name="ui_chat_retry", **tab.streaming)
        # Editing an earlier message (the pencil on a user bubble) asks again from there; the old branch is kept.
        editing = history.edit(tab.edit_message, inputs=tab.reply_inputs, outputs=tab.reply_outputs,
                               trigger_mode="multiple", **tab.streaming)
        running += [retrying, editing]
        tab.stop_on(stop.click)
        # Every edit of the conversation stops a running reply first.
        undoing = cancel_then(undo, running, tab.undo, inputs=history, outputs=[history, stats, send, stop],
                              feedback_on=stats)
        editing_last = cancel_then(edit, running, tab.edit_last, inputs=history,
                                   outputs=[text, history, stats, send, stop], feedback_on=stats)
        # A ✎ edit box left open would survive the new conversation (the next message would show as that edit).
        close_edit_on(clear.click, upload.upload)
        clearing = cancel_then(clear, running, tab.clear, inputs=model, outputs=[history, stats, context, send, stop],
                               feedback_on=stats)
        export.click(tab.export, inputs={model, system, history, *params.inputs}, outputs=download,
                     **ui_event(stats)).then(None, js=_CLICK_DOWNLOAD_JS, **ui_event(stats, queue=False))
        # Its failure badge goes to an invisible sink (ui/common/events.py): on the stats line, "Error" stood where
        # the failed import has just cleared the earlier one's line; the toast says what went wrong.
        importing = upload.upload(tab.import_chat, inputs=upload,
                                  outputs=[history, model, system, stats, *params.outputs], **ui_event(status_sink()))
        replaced = memory.wire(history, tab.forks, tab.selected, model, system,
                               changed=[*running, undoing, editing_last, clearing, importing, trashing],
                               stop_running=running, load=Context.root_block.load)  # type: ignore[union-attr]
        # The meter describes the conversation shown: count it again after every change that is not a reply.
        for event in (undoing, editing_last, importing, *replaced):
            event.then(tab.recount, inputs=[model, system, history], outputs=context, **quick)
        # .input, not .change: an import sets the model too, and must keep the parameters it brought along.
        model.input(tab.model_changed, inputs=model, outputs=[examples, stats, context, *params.outputs], **quick)
        return tab

    # ------------------------------------------------------------------------------------------ wiring

    @property
    def reply_inputs(self) -> set[Any]:
        saved = {self.memory.store, self.memory.current} if self.memory else set()
        return {self.model, self.system, self.history, self.input, self.forks, self.selected, *self.params.inputs,
                *saved}

    @property
    def reply_outputs(self) -> list[Any]:
        saved = self.memory.checkpoint_outputs if self.memory else []
        return [self.input, self.history, self.stats, self.context, self.send_button, self.stop_button, self.forks,
                *saved]

    @property
    def streaming(self) -> dict[str, Any]:
        return dict(**STREAMING, **ui_event(status_sink()))

    def listen(self, api_names: bool = False) -> tuple[list[Any], Any]:
        """Wires Send, Enter, one-click examples and the trash icon; returns (the reply events, the clear event).

        trigger_mode="multiple": a Send during a reply reaches the server, which supersedes the running one
        (ui/chat/runs.py); Gradio's default would silently drop it.
        """
        sending = gr.on([self.send_button.click, self.input.submit], self.send, inputs=self.reply_inputs,
                        outputs=self.reply_outputs, trigger_mode="multiple",
                        api_name="ui_chat_send" if api_names else None, **self.streaming)
        # One click on an example asks it: it goes into the input box, then is sent like a typed message.
        asking = self.examples.click(lambda sample: sample[0], inputs=self.examples, outputs=self.input,
                                     **ui_event(self.stats, queue=False)).then(
            self.send, inputs=self.reply_inputs, outputs=self.reply_outputs, trigger_mode="multiple", **self.streaming)
        running = [sending, asking]
        # The Conversation box's own trash icon clears it: stop the reply still streaming into it, then empty it
        # again (an update already on its way from the cancelled stream would otherwise bring the reply back).
        trashing = self.history.clear(None, cancels=running, js=CLOSE_EDIT_JS, api_visibility="private",
                                      queue=False).then(
            self.clear, inputs=self.model,
            outputs=[self.history, self.stats, self.context, self.send_button, self.stop_button],
            **ui_event(self.stats, queue=False))
        return running, trashing

    def stop_on(self, trigger: Any) -> None:
        # No `cancels=`: Stop marks the session's run stopped (ui/chat/runs.py) and the reply's own generator ends at
        # its next step with "Stopped." as the last update of its stream. A Gradio cancel would leave updates
        # already on their way to land after this handler's answer ("Generating…" after "Stopped.").
        trigger(self.stop, outputs=[self.stats, self.send_button, self.stop_button],
                **ui_event(self.stats, queue=False))

    # ------------------------------------------------------------------------------------------ replies

    @ui_errors
    def send(self, data: dict[Any, Any], request: gr.Request = None) -> Iterator[tuple[Any, ...]]:
        message = data[self.input]
        if isinstance(message, str) and not message.strip():
            # A note, not an error toast (an accidental Enter). Never an empty stream: Gradio then blanks every
            # output (Send's label, the context meter) until the page is reloaded.
            yield self._noted("err_empty__message", request)
            return
        yield from self._reply(data, message, shown_messages(data[self.history]), True, request)

    @ui_errors
    def retry(self, data: dict[Any, Any], request: gr.Request = None) -> Iterator[tuple[Any, ...]]:
        """Asks again for the selected reply (the last one when none is selected), with the model now picked; the
        replaced reply (and what followed it) stays as a version. Nothing to do on an empty chat."""
        shown = shown_messages(data[self.history])
        selected = data.get(self.selected)
        start = branches.reply_start(shown, selected) if isinstance(selected, int) else None
        if start is None:
            last = split_last_exchange(shown)
            start = len(shown) + 1 if last is None else len(last[0]) + 1
        if start < 1 or start > len(shown):
            yield self._noted("chat_nothing_to_retry", request)
            return
        forks = branches.fork(shown, data.get(self.forks), start) if start < len(shown) else data.get(self.forks)
        before, message = shown[:start - 1], typed_text(shown[start - 1]["content"])
        yield from self._reply(data, message, before, False, request, forks)

    @ui_errors
    def edit_message(self, data: dict[Any, Any], edit: gr.EditData,
                     request: gr.Request = None) -> Iterator[tuple[Any, ...]]:
        """A user message edited in place: the conversation from there is asked again; the old branch is kept."""
        shown = shown_messages(data[self.history])
        index = edit.index[0] if isinstance(edit.index, (list, tuple)) else edit.index
        if not 0 <= index < len(shown) or shown[index]["role"] != "user":
            yield self._noted(None, request)
            return
        message = typed_text(flatten_content(edit.value) or "")
        if not message.strip():
            yield self._noted("err_empty__message", request)
            return
        old = [dict(item) for item in shown]
        old[index]["content"] = flatten_content(edit.previous_value) or old[index]["content"]
        forks = branches.fork(old, data.get(self.forks), index)
        yield from self._reply(data, message, shown[:index], False, request, forks)

    def _reply(self, data: dict[Any, Any], message: str, before: list[dict[str, Any]], restore_input: bool,
               request: Optional[gr.Request], forks: Any = None) -> Iterator[tuple[Any, ...]]:
        """The reply's updates; with saved conversations, each also saves the conversation as it stands (marked
        stopped until it ends: a reload mid-reply keeps the question and the partial answer)."""
        updates = self._reply_updates(data, message, before, restore_input, request, forks)
        if self.memory is None:
            yield from updates
            return
        try:
            yield from self.memory.checkpointed(
                updates, 1, 6, data.get(self.memory.store), data.get(self.memory.current),
                data.get(self.forks) if forks is None else forks, data[self.model], data[self.system], request)
        finally:
            close_quietly(updates)

    def _reply_updates(self, data: dict[Any, Any], message: str, before: list[dict[str, Any]],
                       restore_input: bool, request: Optional[gr.Request],
                       forks: Any = None) -> Iterator[tuple[Any, ...]]:
        skip = gr.skip()
        try:
            # Everything is validated before the display changes: a bad request leaves the chat as it was.
            events = service.stream_chat(self.registry, data[self.model], message, plain_history(before),
                                         self.params.read(data), data[self.system])
        except Exception:
            yield skip, skip, "", skip, skip, skip, skip  # the previous reply's stats do not describe this failure
            raise
        session = session_of(request)
        run = RUNS.start(session)
        asked = before + [user_message(message)]
        stats_line, first, shown = OnChange(), True, asked
        try:
            for update in reply_updates(self.registry, data[self.model], events, run):
                shown = asked + update.messages
                context = self._context(update.final, request) if update.final else skip
                if first:
                    yield ("" if restore_input else skip), asked + update.messages, stats_line(update.stats), \
                        context, *busy(True), (skip if forks is None else forks)
                    first = False
                else:
                    yield skip, asked + update.messages, stats_line(update.stats), context, skip, skip, skip
        except Exception:
            if not run.cancelled:
                # Put the conversation (and the typed message) back before the error shows.
                yield (message if restore_input else skip), before, "", skip, *busy(False), skip
            raise
        finally:
            RUNS.finish(session, run)
        if run.stopped:  # the last word of this stream, so nothing it sent earlier can land after it
            yield skip, stopped_reply(shown), STOPPED, skip, *busy(False), skip
        elif not run.cancelled:
            yield skip, skip, skip, skip, *busy(False), skip

    def _noted(self, key: Optional[str], request: Optional[gr.Request]) -> tuple[Any, ...]:
        """A reply event's update that changes nothing but says `key` (nothing at all for None)."""
        skip = gr.skip()
        rest = [skip] * (len(self.reply_outputs) - 3)  # send, stop, forks and the saved conversation's outputs
        return skip, skip, self.note(key, request) if key else skip, *rest

    def note(self, key: str, request: Optional[gr.Request]) -> str:
        """The stats line saying `key`, in the request's language; a toast as well where that line is hidden."""
        line = say(key, request)
        if self.toast_notes:
            gr.Info(line)
        return line

    def _context(self, state: Any, request: Optional[gr.Request]) -> str:
        stats = state.stats
        return context_line(stats.prompt_tokens + stats.generated_tokens, stats.max_context, request)

    # ------------------------------------------------------------------------------------------- edits

    def stop(self, request: gr.Request = None) -> tuple[Any, ...]:
        """Says "Stopped." only when a reply was running."""
        stopped = RUNS.cancel(session_of(request), stop=True)
        return (STOPPED if stopped else gr.skip()), *busy(False)

    def cleared(self, model_id: Optional[str], request: gr.Request = None) -> tuple[Any, ...]:
        RUNS.cancel(session_of(request))
        return "", self._empty_context(model_id, request), *busy(False)

    def clear(self, model_id: Optional[str], request: gr.Request = None) -> tuple[Any, ...]:
        return [], *self.cleared(model_id, request)

    @ui_errors
    def undo(self, value: Any, request: gr.Request = None) -> tuple[Any, ...]:
        RUNS.cancel(session_of(request))
        last = split_last_exchange(shown_messages(value))
        if last is None:
            return gr.skip(), self.note("chat_nothing_to_undo", request), *busy(False)
        return last[0], "", *busy(False)

    @ui_errors
    def edit_last(self, value: Any, request: gr.Request = None) -> tuple[Any, ...]:
        """Puts the last user message back in the input box and removes that exchange."""
        RUNS.cancel(session_of(request))
        last = split_last_exchange(shown_messages(value))
        if last is None:
            return gr.skip(), gr.skip(), self.note("chat_nothing_to_edit", request), *busy(False)
        before, message = last
        return message, before, "", *busy(False)

    def load_context(self, model_id: Optional[str], request: gr.Request = None) -> str:
        return self._empty_context(model_id, request)

    def recount(self, model_id: Optional[str], system: Optional[str], history: Any,
                request: gr.Request = None) -> str:
        """The context meter for the conversation now shown (after Undo, Edit last, Import, a switch)."""
        return meter(self.registry, model_id, system, history, request)

    def _empty_context(self, model_id: Optional[str], request: Optional[gr.Request] = None) -> str:
        if not model_id:
            return ""
        return context_line(0, max_context_of(self.registry, model_id), request)

    @ui_errors
    def model_changed(self, model_id: str, request: gr.Request = None) -> list[Any]:
        spec = self.registry.spec(model_id, "chat")
        examples = gr.Dataset(samples=example_samples(spec), visible=bool(spec.examples))
        return [examples, "", self._empty_context(model_id, request), *self.params.defaults(spec)]

    # ------------------------------------------------------------------------------------ export/import

    @ui_errors
    def export(self, data: dict[Any, Any]) -> str:
        transcript = Transcript(messages=messages_from_history(plain_history(data[self.history])),
                                model=data[self.model], system_prompt=data[self.system] or "",
                                params=self.params.read(data))
        return str(write_export(transcript))

    @ui_errors
    def import_chat(self, path: Optional[str], request: gr.Request = None) -> Iterator[dict[Any, Any]]:
        """The imported conversation; a failed import clears the line an earlier one left ("Imported 2
        message(s).") before its error shows, so no stale success stands beside it."""
        try:
            updates = self._imported(path, request)
        except Exception:
            yield {self.stats: ""}
            raise
        yield updates

    def _imported(self, path: Optional[str], request: Optional[gr.Request]) -> dict[Any, Any]:
        if not path:
            raise refuse("no_file", "chat-import")
        transcript = read_import(path)
        updates: dict[Any, Any] = {
            self.history: displayed([{"role": m.role, "content": m.content} for m in transcript.messages]),
            self.system: transcript.system_prompt,
            self.stats: say("status_imported", request, count=len(transcript.messages)),
        }
        if transcript.model:
            if transcript.model in {spec.id for spec in self.registry.specs("chat")}:
                updates[self.model] = transcript.model
            else:
                gr.Warning(html.escape(say("import_model_kept", request, model=transcript.model), quote=False))
        if transcript.params:
            updates.update(self.params.show(transcript.params))
        return updates
