"""The Compare tab, an arena: the same user turns to 2-4 chat models at once, each side streaming into its own
conversation with its own stats line and Stop; optionally blind (sides A-D, the models shuffled over them each
round and named after the vote); votes stored per user (backend/data/votes.py) feed the leaderboard below
(ui/compare/leaderboard.py) and preference datasets (the Data tab).

The streams: ui/compare/streams.py. One round per session runs at a time (COMPARE_RUNS): a new message supersedes
the one still streaming; Stop ends every side still generating, a side's Stop ends that side alone, and a side
that had finished keeps its statistics either way: the streaming generator writes "Stopped." itself, as its last
word for that side, and only for a side that had not finished.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterator, Optional

import gradio as gr

from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.core.streams import close_quietly
from backend.data import votes as vote_store
from ui.chat.reply import waiting_title
from ui.chat.runs import session_of
from ui.chat.view import assistant_messages, plain_history, shown_messages, user_message, waiting_message
from ui.common.components import (
    STOPPED,
    STREAMING,
    OnChange,
    ParamPanel,
    StreamState,
    cancel_then,
    first_spec,
    format_progress,
    status_sink,
    ui_errors,
    ui_event,
)
from ui.compare.arena import Round, continues, new_round, reveal_line, side_titles
from ui.compare.layout import Layout
from ui.compare.leaderboard import LeaderboardView
from ui.compare.streams import COMPARE_RUNS, SideRun, compare_streams, interleave  # noqa: F401 - interleave: tests
from ui.i18n.core import t

__all__ = ["CompareTab", "compare_streams", "interleave"]


def side_line(state: StreamState, stopped: bool) -> str:
    """A side's stats line: its statistics (or error) once it has them, whatever was stopped later; "Stopped."
    for a side stopped before it finished; progress otherwise."""
    if state.done or state.error:
        return format_progress(state)
    return STOPPED if stopped else format_progress(state)


@dataclass(frozen=True)
class CompareTab:
    registry: Registry
    layout: Layout
    system: gr.Textbox
    params: ParamPanel
    round: gr.State
    board: LeaderboardView

    @classmethod
    def build(cls, registry: Registry) -> "CompareTab":
        layout = Layout.build(registry)
        with gr.Accordion(t("chat_system"), open=False):
            system = gr.Textbox(show_label=False, lines=2, elem_id="compare-system")
        params = ParamPanel.build("compare", first_spec(registry, "chat"))
        board = LeaderboardView.build()
        tab = cls(registry, layout, system, params, gr.State(None), board)
        tab._wire()
        return tab

    # ------------------------------------------------------------------------------------------ wiring

    @property
    def reply_outputs(self) -> list[Any]:
        shown = self.layout
        return [shown.input, self.round, *shown.chats, *shown.stats, *shown.titles, shown.vote_row, shown.reveal]

    @property
    def cleared_outputs(self) -> list[Any]:
        shown = self.layout
        return [self.round, *shown.chats, *shown.stats, *shown.titles, shown.vote_row, shown.reveal]

    def _wire(self) -> None:
        shown = self.layout
        inputs = {shown.sides, shown.blind, *shown.pickers, self.system, shown.input, self.round, *shown.chats,
                  *self.params.inputs}
        # trigger_mode="multiple": a message sent during a round's replies reaches the server, which supersedes them.
        running = gr.on([shown.send.click, shown.input.submit], self.run, inputs=inputs, outputs=self.reply_outputs,
                        api_name="ui_compare", trigger_mode="multiple", **STREAMING, **ui_event(status_sink()))
        instant = ui_event(shown.reveal, queue=False)
        # No `cancels=`: the round's own generator ends each stopped side with "Stopped." (a Gradio cancel would
        # drop the statistics of sides that had finished, and let late updates land after the stop).
        shown.stop.click(self.stop_all, **instant)
        for side, pane in enumerate(shown.panes):
            pane.stop.click(partial(self.stop_side, side), **instant)
        for outcome, button in shown.votes.items():
            button.click(partial(self.vote, outcome), inputs=[self.round, self.system, *shown.chats,
                                                              self.board.scope],
                         outputs=[self.round, *shown.titles, shown.vote_row, shown.reveal, *self.board.outputs],
                         **ui_event(shown.reveal))
        cancel_then(shown.new_round, [running], self.clear, inputs=shown.sides, outputs=self.cleared_outputs,
                    feedback_on=shown.reveal)
        for control in (shown.sides, shown.blind):
            control.input(None, cancels=[running], api_visibility="private", queue=False).then(
                self.reshape, inputs=shown.sides, outputs=[*shown.shape, *self.cleared_outputs], **instant)

    # ------------------------------------------------------------------------------------------ a round

    @ui_errors
    def run(self, data: dict[Any, Any], request: gr.Request = None) -> Iterator[tuple[Any, ...]]:
        message = data[self.layout.input]
        if isinstance(message, str) and not message.strip():
            return  # an empty Send does nothing (no error toast for an accidental Enter)
        count = int(data[self.layout.sides])
        picked = [data[picker] for picker in self.layout.pickers[:count]]
        blind = bool(data[self.layout.blind])
        current: Optional[Round] = data[self.round]
        fresh = not continues(current, picked, blind)
        if fresh or current is None:
            current = new_round(picked, blind)
        shown = [[] if fresh else shown_messages(data[chat]) for chat in self.layout.chats[:count]]
        run = SideRun(count)
        skip = gr.skip()
        pad = [skip] * (len(self.layout.panes) - count)
        try:
            # Every side is validated before the display changes: a refused message leaves the round as it was.
            states = compare_streams(self.registry, message, current["models"], self.params.read(data),
                                     data[self.system] or "", [plain_history(s) for s in shown], run.side_stops)
        except Exception:
            yield skip, skip, *[skip] * 4, *[""] * count, *pad, *[skip] * 4, skip, skip
            raise
        session = session_of(request)
        COMPARE_RUNS.start(session, run)
        asked = [before + [user_message(message)] for before in shown]
        lines = [OnChange() for _ in range(count)]
        waiting = [[waiting_message(waiting_title(self.registry, model, 0))] for model in current["models"]]
        titles = side_titles(self.registry, current, count)
        yield ("", current, *[asked[i] + waiting[i] for i in range(count)], *pad,
               *[lines[i](format_progress(StreamState())) for i in range(count)], *pad, *titles, *pad,
               gr.Row(visible=False), "")
        last: tuple[StreamState, ...] = ()
        try:
            for last in states:
                if run.cancelled:
                    return  # superseded (a new message, New round): close the streams, say nothing more
                chats = [asked[i] + (assistant_messages(state.text) if state.text or state.done else waiting[i])
                         for i, state in enumerate(last)]
                stats = [lines[i](side_line(state, run.side_stops[i].is_set())) for i, state in enumerate(last)]
                yield skip, skip, *chats, *pad, *stats, *pad, *[skip] * 4, skip, skip
        finally:
            close_quietly(states)
            COMPARE_RUNS.finish(session, run)
        if run.cancelled or not last:
            return
        stats = [lines[i](side_line(state, True)) for i, state in enumerate(last)]
        yield skip, skip, *[skip] * 4, *stats, *pad, *[skip] * 4, gr.Row(visible=True), skip

    def stop_all(self, request: gr.Request = None) -> None:
        run = COMPARE_RUNS.current(session_of(request))
        if isinstance(run, SideRun):
            run.stop_all()

    def stop_side(self, side: int, request: gr.Request = None) -> None:
        run = COMPARE_RUNS.current(session_of(request))
        if isinstance(run, SideRun):
            run.stop_side(side)

    # ------------------------------------------------------------------------------------------ votes

    @ui_errors
    def vote(self, outcome: str, current: Optional[Round], system: Optional[str], chat_a: Any, chat_b: Any,
             chat_c: Any, chat_d: Any, scope: Optional[str], request: gr.Request = None) -> list[Any]:
        """Stores the vote, names the models, and refreshes the leaderboard; the next message starts a new round."""
        chats = [chat_a, chat_b, chat_c, chat_d]
        if not current:
            raise refuse("arena_nothing", "vote")
        if current.get("vote") is not None:
            raise refuse("arena_voted", "vote")
        if COMPARE_RUNS.current(session_of(request)) is not None:
            raise refuse("arena_busy", "vote")
        count = len(current["models"])
        opening = [{"role": "system", "content": system}] if system and system.strip() else []
        conversations = [opening + plain_history(chats[side]) for side in range(count)]
        if not all(conversation and conversation[-1]["role"] == "assistant" for conversation in conversations):
            raise refuse("arena_nothing", "vote")
        vote_store.record_vote(getattr(request, "username", None), current["id"], current["models"], conversations,
                               outcome, current["blind"])
        current = {**current, "vote": outcome}
        pad = [gr.skip()] * (len(self.layout.panes) - count)
        return [current, *side_titles(self.registry, current, count), *pad, gr.Row(visible=False),
                html.escape(reveal_line(self.registry, current), quote=False), *self.board.show(scope, request)]

    # ------------------------------------------------------------------------------------------ resetting

    def clear(self, sides: Any, request: gr.Request = None) -> list[Any]:
        """A new round: stops the running one and empties the panes (the models are drawn again on the next
        message)."""
        COMPARE_RUNS.cancel(session_of(request))
        count = int(sides or 2)
        titles = side_titles(self.registry, None, len(self.layout.panes))
        return [None, *[[]] * len(self.layout.panes), *[""] * len(self.layout.panes), *titles[:count],
                *[gr.skip()] * (len(self.layout.panes) - count), gr.Row(visible=False), ""]

    def reshape(self, sides: Any, request: gr.Request = None) -> list[Any]:
        """Another number of sides (or blind switched): the pickers, panes and votes to match, and a new round."""
        return [*self.layout.shown(int(sides or 2)), *self.clear(sides, request)]
