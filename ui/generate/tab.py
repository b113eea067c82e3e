"""The Generate tab: notebook-style raw completion in one text box, with an optional next-token view.

Generate completes the text in the box; pressed again on an unchanged result it re-rolls that completion
(useful when sampling). Continue always extends the whole current text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import gradio as gr

from backend.core.error_codes import refuse
from backend.services import generation as service
from backend.core.registry import Registry
from backend.core.types import TokenChoice
from ui.i18n.core import say, t, text
from ui.common.components import (
    status_sink,
    cancel_then,
    STOPPED,
    STREAMING,
    OnChange,
    ParamPanel,
    StreamState,
    first_spec,
    format_progress,
    ui_errors,
    model_picker,
    throttled,
    ui_event,
)

TOP_ALTERNATIVES = 5  # alternatives shown per token when "show next-token probabilities" is on (its info in
# ui/i18n/strings.py says 5)
MAX_PROBABILITY_ROWS = 500  # a longer table makes the page sluggish and teaches nothing more
_VISIBLE_WHITESPACE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


@dataclass(frozen=True)
class LastRun:
    """What the last Generate / Continue started from and produced, so Generate can re-roll it."""

    prompt: str
    text: str


@dataclass(frozen=True)
class GenerateTab:
    registry: Registry
    model: gr.Dropdown
    prompt: gr.Textbox
    params: ParamPanel
    show_probs: gr.Checkbox
    last: gr.State

    @classmethod
    def build(cls, registry: Registry) -> "GenerateTab":
        spec = first_spec(registry, "generate")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label=t("gen_text"), lines=16, max_lines=40, elem_id="gen-prompt",
                                    placeholder=t("gen_text_placeholder"), info=t("gen_text_info"))
                # Translated in the browser (a build-time template, ui/i18n/core.py); handlers word it on the server.
                unknown = text("gen_tokens_unknown", context=_context(spec.max_context if spec else None))
                token_count = gr.Markdown(unknown, elem_id="gen-token-count", elem_classes=["stats-line"])
                with gr.Row(elem_classes=["button-row"]):
                    run = gr.Button(t("gen_run"), variant="primary", elem_id="gen-run")
                    extend = gr.Button(t("gen_continue"), elem_id="gen-continue")
                    stop = gr.Button(t("stop"), variant="stop", elem_id="gen-stop-btn")
                stats = gr.Markdown("", elem_id="gen-stats", elem_classes=["stats-line"])
                probs = gr.HTML("", elem_id="gen-probs")
            with gr.Column(scale=1, min_width=280):
                model = model_picker(registry, "generate", "gen-model")
                show_probs = gr.Checkbox(label=t("gen_show_probs"), elem_id="gen-show-probs",
                                         info=t("gen_show_probs_info"))
                params = ParamPanel.build("gen", spec)
        last = gr.State(None)
        tab = cls(registry, model, prompt, params, show_probs, last)

        inputs: set[gr.blocks.Block] = {model, prompt, show_probs, last, *params.inputs}
        outputs = [prompt, stats, probs, token_count, last]
        streaming = dict(**STREAMING, **ui_event(status_sink()))
        running = [run.click(tab.generate, inputs=inputs, outputs=outputs, api_name="ui_generate", **streaming),
                   extend.click(tab.extend, inputs=inputs, outputs=outputs, api_name="ui_continue",
                                **streaming)]
        # Stop also gives the text box back (it is read-only while a completion streams into it).
        cancel_then(stop, running, lambda: (STOPPED, gr.update(interactive=True)), outputs=[stats, prompt],
                    feedback_on=stats)
        # .change, not .input: .input missed pastes and deletions (and counted the previous value). A streamed
        # completion changes the box too; always_last keeps that to one count at a time (a tokenizer pass costs
        # about a millisecond per thousand tokens, and the model is never loaded to count).
        prompt.change(tab.count, inputs=[model, prompt], outputs=token_count, trigger_mode="always_last",
                      **ui_event(token_count, queue=False))
        model.input(tab.model_changed, inputs=[model, prompt], outputs=[token_count, *params.outputs],
                    **ui_event(token_count, queue=False))
        return tab

    # ------------------------------------------------------------------------------------------ handlers

    @ui_errors
    def generate(self, data: dict[Any, Any]) -> Iterator[tuple[Any, ...]]:
        text, last = data[self.prompt] or "", data[self.last]
        # Unchanged since the last run: re-roll that completion instead of extending it.
        start = last.prompt if isinstance(last, LastRun) and last.text == text else text
        yield from self._complete(data, start)

    @ui_errors
    def extend(self, data: dict[Any, Any]) -> Iterator[tuple[Any, ...]]:
        yield from self._complete(data, data[self.prompt] or "")

    def _complete(self, data: dict[Any, Any], start: str) -> Iterator[tuple[Any, ...]]:
        if not start.strip():  # nothing to complete: say so, start nothing
            raise refuse("empty", "prompt")
        model_id = data[self.model]
        alternatives = TOP_ALTERNATIVES if data[self.show_probs] else 0
        skip, stats_line = gr.skip(), OnChange()
        try:
            events = service.stream_generate(self.registry, model_id, start, self.params.read(data, alternatives))
        except Exception:
            yield skip, "", "", skip, skip  # the last run's stats and table do not describe this refused one
            raise
        # The box is read-only while the completion streams into it: each update replaces its whole text, so
        # what was typed meanwhile was silently lost. It is editable again at the end, on an error, and on Stop.
        yield (gr.update(value=start, interactive=False), stats_line(format_progress(StreamState())), "", skip,
               skip)
        state = StreamState()
        try:
            for state in throttled(events):
                yield start + state.text, stats_line(format_progress(state)), skip, skip, skip
        except Exception:
            # A prompt refused by the model (longer than its context...) must not leave "Waiting for the model…".
            yield gr.update(interactive=True), "", "", skip, skip
            raise
        # The table is rendered once, at the end: re-rendering it per update would make long runs stutter.
        table = render_choices(state.choices) if alternatives else ""
        full = start + state.text
        yield (gr.update(value=full, interactive=True), stats_line(format_progress(state)), table,
               self._count_text(model_id, full), LastRun(start, full))

    @ui_errors
    def count(self, model_id: str, text: str) -> str:
        return self._count_text(model_id, text or "")

    @ui_errors
    def model_changed(self, model_id: str, text: str) -> list[Any]:
        spec = self.registry.spec(model_id, "generate")
        return [self._count_text(model_id, text or ""), *self.params.defaults(spec)]

    def _count_text(self, model_id: Optional[str], text: str) -> str:
        if not model_id:
            return ""
        if len(text) > service.MAX_MESSAGE_CHARS:  # said here, quietly; Generate refuses it with a message
            return say("gen_over_limit", count=len(text), limit=service.MAX_MESSAGE_CHARS)
        # Typing must never trigger a multi-second model load: unloaded models are counted after their first run.
        tokens, max_context = service.count_tokens(self.registry, model_id, text, load=False)
        return format_token_count(tokens, max_context)


def _context(max_context: Optional[int]) -> str:
    return f"{max_context:,}" if max_context else "?"


def format_token_count(tokens: Optional[int], max_context: Optional[int]) -> str:
    """The token counter under the text, in the language of the request being served (ui/i18n/core.py)."""
    context = _context(max_context)
    if tokens is None:
        return say("gen_tokens_unknown", context=context)
    line = say("gen_tokens", count=f"{tokens:,}", context=context)
    if max_context and tokens >= max_context:
        line += say("gen_tokens_too_long")
    return line


def render_choices(choices: Sequence[TokenChoice], limit: int = MAX_PROBABILITY_ROWS) -> str:
    """An HTML table: each generated token, its probability, and the alternatives. Tokens are escaped."""
    if not choices:
        return ""
    rows = []
    for index, choice in enumerate(choices[:limit], start=1):
        alternatives = " ".join(
            f"<span class='alt{' chosen' if alt.token == choice.token else ''}'>{_token_html(alt.token)} "
            f"{alt.probability:.1%}</span>" for alt in choice.alternatives)
        rows.append(f"<tr><td>{index}</td><td>{_token_html(choice.token)}</td>"
                    f"<td>{choice.probability:.1%}</td><td>{alternatives}</td></tr>")
    note = (f"<p>{say('probs_first', shown=limit, total=len(choices))}</p>" if len(choices) > limit else "")
    head = "".join(f"<th>{say(key)}</th>" for key in ("probs_token", "probs_probability", "probs_alternatives"))
    return ("<table class='probs'><thead><tr><th>#</th>" + head + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>" + note)


def _token_html(token: str) -> str:
    return f"<code>{html.escape(token.translate(_VISIBLE_WHITESPACE) or '∅')}</code>"
