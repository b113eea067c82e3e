"""The Evaluate tab's "Past runs": the saved runs, reopening one, comparing two."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import gradio as gr

from backend.core.error_codes import refuse
from backend.evaluation.types import RunResult
from ui.common.components import ui_errors, ui_event
from ui.evaluate.controller import EvaluateController
from ui.evaluate.views import compare_summary, leaderboard_table, run_choices, runs_table
from ui.i18n.core import headed, t


@dataclass(frozen=True)
class RunsPanel:
    ctl: EvaluateController
    runs: gr.Dataframe
    open_choice: gr.Dropdown
    open_button: gr.Button
    refresh_button: gr.Button
    compare_a: gr.Dropdown
    compare_b: gr.Dropdown
    compare_button: gr.Button
    compare_summary: gr.Markdown
    compare_row: gr.Row
    compare_left: gr.Dataframe
    compare_right: gr.Dataframe

    @classmethod
    def build(cls, ctl: EvaluateController) -> "RunsPanel":
        # Empty until the page loads: the list is each user's own, and a value set here would be everyone's.
        summaries: list = []
        with gr.Accordion(t("eval_past_runs"), open=True, elem_id="eval-past-runs"):
            runs = gr.Dataframe(runs_table(summaries), label=t("eval_saved_runs"), interactive=False,
                                max_height=260, elem_id="eval-runs")
            with gr.Row(equal_height=False):
                open_choice = gr.Dropdown(choices=run_choices(summaries), value=None, label=t("eval_open_run"),
                                          interactive=True, elem_id="eval-open-run", scale=6)
                with gr.Column(scale=1, min_width=140):
                    open_button = gr.Button(t("open"), size="sm", variant="primary", elem_id="eval-open")
                    refresh_button = gr.Button(t("eval_refresh_list"), size="sm", elem_id="eval-runs-refresh")
            with gr.Row(equal_height=True):
                compare_a = gr.Dropdown(choices=run_choices(summaries), value=None, label=t("eval_compare_a"),
                                        interactive=True, elem_id="eval-compare-a", scale=3)
                compare_b = gr.Dropdown(choices=run_choices(summaries), value=None, label=t("eval_compare_b"),
                                        interactive=True, elem_id="eval-compare-b", scale=3)
                compare_button = gr.Button(t("eval_compare"), elem_id="eval-compare", scale=1)
            summary = gr.Markdown("", elem_id="eval-compare-summary")
            with gr.Row(equal_height=False, visible=False) as compare_row:
                left = gr.Dataframe(label=t("eval_left_run"), interactive=False, wrap=True, elem_id="eval-compare-left")
                right = gr.Dataframe(label=t("eval_right_run"), interactive=False, wrap=True,
                                     elem_id="eval-compare-right")
        panel = cls(ctl, runs, open_choice, open_button, refresh_button, compare_a, compare_b, compare_button,
                    summary, compare_row, left, right)
        refresh_button.click(panel.runs_updates, outputs=panel.outputs, **ui_event(runs, queue=False))
        compare_button.click(panel.on_compare, inputs=[compare_a, compare_b],
                             outputs=[summary, compare_row, left, right], **ui_event(summary))
        return panel

    @property
    def outputs(self) -> list:
        return [self.runs, self.open_choice, self.compare_a, self.compare_b]

    def runs_updates(self, request: gr.Request) -> dict:
        """The runs of the user of this request (every user's for an admin)."""
        summaries = self.ctl.past_runs(request.username)
        choices = run_choices(summaries)
        return {self.runs: headed(runs_table(summaries)), self.open_choice: gr.Dropdown(choices=choices),
                self.compare_a: gr.Dropdown(choices=choices), self.compare_b: gr.Dropdown(choices=choices)}

    @ui_errors
    def on_compare(self, left_id: Optional[str], right_id: Optional[str], request: gr.Request) -> tuple:
        if not left_id or not right_id:
            raise refuse("pick_two_runs", "compare")
        left = self.ctl.open_run(left_id, request.username)
        right = self.ctl.open_run(right_id, request.username)
        return (compare_summary(left, right), gr.Row(visible=True),
                gr.Dataframe(headed(leaderboard_table(left)), label=_run_label(left)),
                gr.Dataframe(headed(leaderboard_table(right)), label=_run_label(right)))


def _run_label(run: RunResult) -> str:
    return f"{run.run_id} · {run.config.data.describe()}"
