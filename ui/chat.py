"""The Chat tab: a streaming conversation with one model, with retry / undo / edit, export and import.

The conversation lives in the Chatbot's value, which is per browser session: the server keeps no chat state,
so two sessions can never see each other's messages.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import gradio as gr

from backend import service
from backend.registry import Registry
from backend.types import InvalidInputError, Message
from ui.components import (
    status_sink,
    cancel_then,
    STOPPED,
    STREAMING,
    OnChange,
    ParamPanel,
    StreamState,
    first_spec,
    format_progress,
    handle_errors,
    model_picker,
    throttled,
    ui_event,
)
from ui.transcript import Transcript, messages_from_history, read_import, write_export

History = list[dict[str, str]]

# Clicks the hidden download button once the export file is ready, so Export is a single click.
_CLICK_DOWNLOAD_JS = "() => document.querySelector('#chat-export-file')?.click()"


@dataclass(frozen=True)
class ChatTab:
    registry: Registry
    model: gr.Dropdown
    system: gr.Textbox
    params: ParamPanel
    history: gr.Chatbot
    input: gr.Textbox
    stats: gr.Markdown
    examples: gr.Dataset

    @classmethod
    def build(cls, registry: Registry) -> "ChatTab":
        spec = first_spec(registry, "chat")
        with gr.Row():
            with gr.Column(scale=3):
                history = gr.Chatbot(value=[], label="Conversation", elem_id="chat-history", height=480,
                                     buttons=["copy", "copy_all"], render_markdown=True,
                                     placeholder="Pick a model, then say hello. The model loads on first use.")
                with gr.Row(equal_height=True):
                    text = gr.Textbox(placeholder="Message (Enter to send, Shift+Enter for a new line)",
                                      show_label=False, lines=1, max_lines=12, scale=8, elem_id="chat-input",
                                      autofocus=True)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
                    stop = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop-btn")
                small = dict(size="sm", min_width=80)
                with gr.Row():
                    retry = gr.Button("Retry", elem_id="chat-retry", **small)
                    undo = gr.Button("Undo", elem_id="chat-undo", **small)
                    edit = gr.Button("Edit last", elem_id="chat-edit", **small)
                    clear = gr.Button("Clear", elem_id="chat-clear", **small)
                    export = gr.Button("Export", elem_id="chat-export", **small)
                    upload = gr.UploadButton("Import", file_types=[".json"], type="filepath", elem_id="chat-import",
                                             **small)
                stats = gr.Markdown("", elem_id="chat-stats", elem_classes=["stats-line"])
                examples = gr.Dataset(components=[text], samples=_samples(spec), label="Examples",
                                      elem_id="chat-examples", visible=bool(spec and spec.examples))
                download = gr.DownloadButton("Download export", visible="hidden", elem_id="chat-export-file")
            with gr.Column(scale=1, min_width=280):
                model = model_picker(registry, "chat", "chat-model")
                system = gr.Textbox(label="System prompt", lines=3, elem_id="chat-system",
                                    placeholder="e.g. You are a concise assistant.")
                params = ParamPanel.build("chat", spec)
        tab = cls(registry, model, system, params, history, text, stats, examples)

        reply_inputs = {model, system, history, text, *params.inputs}
        reply_outputs = [text, history, stats]
        streaming = dict(**STREAMING, **ui_event(status_sink()))
        sending = gr.on([send.click, text.submit], tab.send, inputs=reply_inputs, outputs=reply_outputs,
                        api_name="ui_chat_send", **streaming)
        retrying = retry.click(tab.retry, inputs=reply_inputs, outputs=reply_outputs, api_name="ui_chat_retry",
                               **streaming)
        running = [sending, retrying]
        quick = ui_event(stats, queue=False)
        # Stop, and every edit of the conversation, cancels a running reply: closing the handler's generator
        # closes the backend stream, which stops the model.
        cancel_then(stop, running, lambda: STOPPED, outputs=stats, feedback_on=stats)
        cancel_then(undo, running, tab.undo, inputs=history, outputs=[history, stats], feedback_on=stats)
        cancel_then(edit, running, tab.edit_last, inputs=history, outputs=[text, history, stats], feedback_on=stats)
        cancel_then(clear, running, lambda: ([], ""), outputs=[history, stats], feedback_on=stats)
        export.click(tab.export, inputs={model, system, history, *params.inputs}, outputs=download,
                     **ui_event(stats)).then(None, js=_CLICK_DOWNLOAD_JS, **ui_event(stats, queue=False))
        upload.upload(tab.import_chat, inputs=upload, outputs=[history, model, system, stats, *params.outputs],
                      **ui_event(stats))
        examples.click(lambda sample: sample[0], inputs=examples, outputs=text, **quick)
        # .input, not .change: an import sets the model too, and must keep the parameters it brought along.
        model.input(tab.model_changed, inputs=model, outputs=[examples, stats, *params.outputs], **quick)
        return tab

    # ------------------------------------------------------------------------------------------ replies

    @handle_errors
    def send(self, data: dict[Any, Any]) -> Iterator[tuple[Any, ...]]:
        yield from self._reply(data, data[self.input], _plain(data[self.history]), restore_input=True)

    @handle_errors
    def retry(self, data: dict[Any, Any]) -> Iterator[tuple[Any, ...]]:
        """Asks again for the reply to the last user message."""
        before, message = _split_last_exchange(_plain(data[self.history]))
        yield from self._reply(data, message, before, restore_input=False)

    def _reply(self, data: dict[Any, Any], message: str, history: History,
               restore_input: bool) -> Iterator[tuple[Any, ...]]:
        # Everything is validated before the display changes: a bad request leaves the chat as it was.
        events = service.stream_chat(self.registry, data[self.model], message, history,
                                     self.params.read(data), data[self.system])
        asked = history + [{"role": "user", "content": message}]
        keep_input, stats_line = gr.skip(), OnChange()
        try:
            cleared = "" if restore_input else keep_input
            yield cleared, asked + [_assistant("")], stats_line(format_progress(StreamState()))
            for state in throttled(events):
                yield keep_input, asked + [_assistant(state.text)], stats_line(format_progress(state))
        except Exception:
            # Put the conversation (and the typed message) back before the error shows.
            yield (message if restore_input else keep_input), history, ""
            raise

    # ------------------------------------------------------------------------------------------- edits

    @handle_errors
    def undo(self, history: Sequence[Any]) -> tuple[History, str]:
        before, _ = _split_last_exchange(_plain(history))
        return before, ""

    @handle_errors
    def edit_last(self, history: Sequence[Any]) -> tuple[str, History, str]:
        """Puts the last user message back in the input box and removes that exchange."""
        before, message = _split_last_exchange(_plain(history))
        return message, before, ""

    @handle_errors
    def model_changed(self, model_id: str) -> list[Any]:
        spec = self.registry.spec(model_id, "chat")
        examples = gr.Dataset(samples=_samples(spec), visible=bool(spec.examples))
        return [examples, "", *self.params.defaults(spec)]

    # ------------------------------------------------------------------------------------ export/import

    @handle_errors
    def export(self, data: dict[Any, Any]) -> str:
        transcript = Transcript(messages=messages_from_history(data[self.history]), model=data[self.model],
                                system_prompt=data[self.system] or "", params=self.params.read(data))
        return str(write_export(transcript))

    @handle_errors
    def import_chat(self, path: Optional[str]) -> dict[Any, Any]:
        if not path:
            raise InvalidInputError("chat-import: no file received")
        transcript = read_import(path)
        updates: dict[Any, Any] = {
            self.history: _as_dicts(transcript.messages),
            self.system: transcript.system_prompt,
            self.stats: f"Imported {len(transcript.messages)} message(s).",
        }
        if transcript.model:
            if transcript.model in {spec.id for spec in self.registry.specs("chat")}:
                updates[self.model] = transcript.model
            else:
                gr.Warning(html.escape(f"The file's model '{transcript.model}' is not a chat model here; "
                                       "keeping the current one.", quote=False))
        if transcript.params:
            updates.update(self.params.show(transcript.params))
        return updates


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _plain(history: Optional[Sequence[Any]]) -> History:
    """The Chatbot's value as plain {role, content} text messages (the browser sends content as parts)."""
    return _as_dicts(messages_from_history(history or []))


def _as_dicts(messages: Sequence[Message]) -> History:
    return [{"role": m.role, "content": m.content} for m in messages]


def _split_last_exchange(history: History) -> tuple[History, str]:
    """(the conversation before the last user message, that message's text)."""
    for index in range(len(history) - 1, -1, -1):
        if history[index]["role"] == "user":
            return history[:index], history[index]["content"]
    raise InvalidInputError("there is no message to retry, undo or edit yet")


def _samples(spec: Any) -> list[list[str]]:
    return [[example] for example in (spec.examples if spec else ())]
