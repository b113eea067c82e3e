"""The arena's leaderboard under Compare: Bradley-Terry ratings from the votes (backend/evaluation/leaderboard.py),
with 95% bootstrap intervals and counts; the user's own votes, or everyone's for an admin (WORKBENCH_ADMINS);
a CSV download of what is shown."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import pandas as pd

from backend.data import votes as vote_store
from backend.evaluation import leaderboard
from backend.guard import user_space
from ui.common.components import handle_errors, ui_event
from ui.i18n.core import say, t, text

MINE, EVERYONE = "mine", "everyone"


@dataclass(frozen=True)
class LeaderboardView:
    scope: gr.Radio
    table: gr.Dataframe
    summary: gr.Markdown
    download: gr.DownloadButton

    @classmethod
    def build(cls) -> "LeaderboardView":
        with gr.Accordion(t("arena_leaderboard"), open=True, elem_id="compare-leaderboard"):
            gr.Markdown(t("arena_leaderboard_intro"))
            with gr.Row():
                # Shown to admins only (on page load): everyone's votes.
                scope = gr.Radio([(text("arena_scope_mine"), MINE), (text("arena_scope_everyone"), EVERYONE)],
                                 value=MINE, label=t("arena_scope"), visible=False, elem_id="compare-scope", scale=2)
                refresh = gr.Button(t("refresh"), size="sm", elem_id="compare-leaderboard-refresh", scale=1)
            summary = gr.Markdown("", elem_id="compare-leaderboard-summary", elem_classes=["stats-line"])
            table = gr.Dataframe(interactive=False, elem_id="compare-leaderboard-table", wrap=True)
            download = gr.DownloadButton(t("arena_csv"), visible=False, elem_id="compare-leaderboard-csv")
        view = cls(scope, table, summary, download)
        quiet = ui_event(summary)
        refresh.click(view.show, inputs=scope, outputs=view.outputs, **quiet)
        scope.input(view.show, inputs=scope, outputs=view.outputs, **quiet)
        gr.on(None, view.on_load, outputs=[scope, *view.outputs], **quiet)  # no triggers: on page load
        return view

    @property
    def outputs(self) -> list[Any]:
        return [self.table, self.summary, self.download]

    @handle_errors
    def on_load(self, request: gr.Request) -> list[Any]:
        admin = user_space.is_admin(getattr(request, "username", None))
        return [gr.Radio(visible=admin), *self.show(MINE, request)]

    @handle_errors
    def show(self, scope: Optional[str], request: gr.Request = None) -> list[Any]:
        """The table, a line of totals and the CSV of the votes in `scope`."""
        username = getattr(request, "username", None)
        everyone = scope == EVERYONE and user_space.is_admin(username)
        votes = vote_store.load_votes(username, everyone=everyone)
        standings = leaderboard.standings(vote_store.battles(votes))
        if not standings:
            return [None, say("arena_no_votes", request), gr.DownloadButton(visible=False)]
        rows = leaderboard.as_rows(standings)
        frame = pd.DataFrame(rows, columns=list(leaderboard.CSV_COLUMNS))
        frame.columns = [say(f"arena_col_{name}", request) for name in leaderboard.CSV_COLUMNS]
        users = len({vote.user for vote in votes})
        summary = say("arena_totals", request, votes=len(votes), models=len(standings), users=users)
        return [frame, summary, gr.DownloadButton(value=write_csv(leaderboard.to_csv(standings)), visible=True)]


def write_csv(content: str) -> str:
    """The CSV in a fresh temp folder, for the download button."""
    path = Path(tempfile.mkdtemp(prefix="workbench-leaderboard-")) / "arena-leaderboard.csv"
    path.write_text(content, encoding="utf-8")
    return str(path)
