"""The Compare tab's widgets: 2-4 model pickers, one pane per side (title, conversation, stats line, its own Stop),
the vote buttons, and the updates that show 2, 3 or 4 sides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.core.registry import Registry
from backend.data.votes import ALL_BAD, MAX_SIDES, MIN_SIDES, SIDES, TIE
from ui.chat.widgets import LATEX
from ui.common.components import model_picker
from ui.i18n.core import t, text

LETTERS = SIDES.lower()  # the sides' elem_id suffixes: compare-output-a ...


@dataclass(frozen=True)
class Pane:
    """One side: its column (hidden beyond the chosen number of sides), title, conversation, stats and Stop."""

    column: gr.Column
    title: gr.Markdown
    chat: gr.Chatbot
    stats: gr.Markdown
    stop: gr.Button


@dataclass(frozen=True)
class Layout:
    sides: gr.Radio
    blind: gr.Checkbox
    new_round: gr.Button
    picker_columns: list[gr.Column]
    pickers: list[gr.Dropdown]
    input: gr.Textbox
    send: gr.Button
    stop: gr.Button
    panes: list[Pane]
    vote_row: gr.Row
    votes: dict[str, gr.Button]  # outcome ("A".."D", "tie", "bad") -> its button
    reveal: gr.Markdown
    # The vote buttons' words for two sides ("A is better", "Both bad") and for more ("A is best", "All bad").
    words: dict[str, tuple[Any, Any]]

    @classmethod
    def build(cls, registry: Registry) -> "Layout":
        with gr.Row(equal_height=True):
            sides = gr.Radio([(text("arena_n_sides", count=n), n) for n in range(MIN_SIDES, MAX_SIDES + 1)],
                             value=MIN_SIDES, label=t("arena_sides"), elem_id="compare-sides", scale=2)
            blind = gr.Checkbox(value=False, label=t("arena_blind"), info=t("arena_blind_info"),
                                elem_id="compare-blind", scale=3)
            new_round = gr.Button(t("arena_new_round"), size="sm", elem_id="compare-new-round", scale=1)
        picker_columns, pickers = [], []
        with gr.Row():
            for side, letter in enumerate(LETTERS):
                with gr.Column(visible=side < MIN_SIDES, min_width=160) as column:
                    pickers.append(model_picker(registry, "chat", f"compare-model-{letter}",
                                                label=t(f"model_{letter}"), index=side))
                picker_columns.append(column)
        with gr.Row(equal_height=True, elem_classes=["input-row"]):
            text_box = gr.Textbox(placeholder=t("compare_input_placeholder"), show_label=False,
                                  max_lines=12, scale=8, elem_id="compare-input")
            send = gr.Button(t("compare_send"), variant="primary", scale=1, elem_id="compare-send")
            stop = gr.Button(t("arena_stop_all"), variant="stop", scale=1, elem_id="compare-stop-btn")
        panes = []
        with gr.Row(equal_height=True):
            for side, letter in enumerate(LETTERS):
                with gr.Column(visible=side < MIN_SIDES, min_width=220) as column:
                    title = gr.Markdown(t("arena_side_title", side=SIDES[side]), elem_id=f"compare-title-{letter}")
                    chat = gr.Chatbot(value=[], show_label=False, elem_id=f"compare-output-{letter}", height=360,
                                      render_markdown=True, latex_delimiters=LATEX, sanitize_html=True,
                                      buttons=["copy"], elem_classes=["compare-output"])
                    stats = gr.Markdown("", elem_id=f"compare-stats-{letter}", elem_classes=["stats-line"])
                    side_stop = gr.Button(t("arena_stop_side", side=SIDES[side]), size="sm",
                                          elem_id=f"compare-stop-{letter}")
                panes.append(Pane(column, title, chat, stats, side_stop))
        words = {letter: (t("arena_vote_better", side=letter), t("arena_vote_best", side=letter)) for letter in SIDES}
        words[ALL_BAD] = (t("arena_vote_both_bad"), t("arena_vote_all_bad"))
        words[TIE] = (t("arena_vote_tie"), t("arena_vote_tie"))
        votes = {}
        with gr.Row(visible=False, elem_id="compare-vote") as vote_row:
            for side, letter in enumerate(SIDES):
                votes[letter] = gr.Button(words[letter][0], visible=side < MIN_SIDES,
                                          elem_id=f"compare-vote-{letter.lower()}")
            votes[TIE] = gr.Button(words[TIE][0], elem_id="compare-vote-tie")
            votes[ALL_BAD] = gr.Button(words[ALL_BAD][0], elem_id="compare-vote-bad")
        reveal = gr.Markdown("", elem_id="compare-reveal")
        return cls(sides, blind, new_round, picker_columns, pickers, text_box, send, stop, panes, vote_row, votes,
                   reveal, words)

    @property
    def chats(self) -> list[gr.Chatbot]:
        return [pane.chat for pane in self.panes]

    @property
    def stats(self) -> list[gr.Markdown]:
        return [pane.stats for pane in self.panes]

    @property
    def titles(self) -> list[gr.Markdown]:
        return [pane.title for pane in self.panes]

    @property
    def shape(self) -> list[Any]:
        """What `shown(sides)` updates."""
        return [*self.picker_columns, *(pane.column for pane in self.panes), *self.votes.values()]

    def shown(self, sides: int) -> list[Any]:
        """Updates for `shape` that show `sides` pickers, panes and side votes, with the vote words that fit."""
        two = 0 if sides == 2 else 1
        columns = [gr.Column(visible=side < sides) for _ in range(2) for side in range(MAX_SIDES)]
        buttons = [gr.Button(value=self.words[letter][two], visible=side < sides)
                   for side, letter in enumerate(SIDES)]
        return [*columns, *buttons, gr.Button(value=self.words[TIE][two]),
                gr.Button(value=self.words[ALL_BAD][two])]
