"""The Evaluate tab's results: leaderboard, chart, per-class report, confusion matrix, examples and downloads of
the run on show (a finished run or a reopened one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import gradio as gr

from backend.data import files as datafiles
from backend.evaluation.metrics import LOWER_IS_BETTER
from backend.evaluation.types import RunResult
from backend.guard.table_limits import SHOWN_CELL_CHARS
from ui.common.components import ui_errors, ui_event
from ui.evaluate.controller import EvaluateController
from ui.evaluate.forms import ALL_MODELS
from ui.evaluate.views import (
    CONFUSION_CSS,
    EXAMPLES_SHOWN,
    chart_frame,
    confusion_html,
    export_examples,
    filter_examples,
    headline,
    leaderboard_table,
    per_class_table,
    run_summary,
)
from ui.i18n.core import headed, say, t, text


@dataclass(frozen=True)
class ResultsPanel:
    """The widgets that show one run; `run_state` holds the folder of the run on show."""

    ctl: EvaluateController
    run_info: gr.Markdown
    results_box: gr.Column
    leaderboard: gr.Dataframe
    all_metrics: gr.Checkbox
    chart: gr.BarPlot
    report_box: gr.Column
    report_model: gr.Dropdown
    per_class: gr.Dataframe
    confusion: gr.HTML
    examples_filter: gr.Textbox
    examples_model: gr.Dropdown
    examples_info: gr.Markdown
    examples: gr.Dataframe
    download_csv: gr.DownloadButton
    download_json: gr.DownloadButton
    run_state: gr.State

    @classmethod
    def build(cls, ctl: EvaluateController) -> "ResultsPanel":
        run_info = gr.Markdown("", elem_id="eval-run-info")
        with gr.Column(visible=False, elem_id="eval-results") as results_box:
            leaderboard = gr.Dataframe(label=t("eval_leaderboard"), interactive=False,
                                       wrap=True, elem_id="eval-leaderboard")
            all_metrics = gr.Checkbox(label=t("eval_all_metrics"), value=False, elem_id="eval-all-metrics")
            with gr.Row(equal_height=False):
                chart = gr.BarPlot(None, x="model", y="score", label=t("eval_chart"), elem_id="eval-chart", scale=4)
                with gr.Column(scale=3, visible=False, elem_id="eval-report") as report_box:
                    report_model = gr.Dropdown(choices=[], label=t("eval_report_model"), interactive=True,
                                               elem_id="eval-report-model")
                    per_class = gr.Dataframe(label=t("eval_per_class"), interactive=False, elem_id="eval-per-class")
                    confusion = gr.HTML("", elem_id="eval-confusion", css_template=CONFUSION_CSS, js_on_load=None)
            with gr.Row(equal_height=False):
                examples_filter = gr.Textbox(label=t("eval_filter"), elem_id="eval-filter", scale=4,
                                             placeholder=t("eval_filter_placeholder"))
                examples_model = gr.Dropdown(choices=[(text("eval_all_models"), ALL_MODELS)], value=ALL_MODELS,
                                             label=t("model"),
                                             interactive=True, elem_id="eval-examples-model", scale=2)
                with gr.Column(scale=1, min_width=170):
                    download_csv = gr.DownloadButton(t("eval_download_csv"), visible=False, size="sm",
                                                     elem_id="eval-download-csv")
                    download_json = gr.DownloadButton(t("eval_download_json"), visible=False, size="sm",
                                                      elem_id="eval-download-json")
            examples_info = gr.Markdown("", elem_id="eval-examples-info")
            examples = gr.Dataframe(label=t("eval_examples"), interactive=False, wrap=True, max_height=420,
                                    elem_id="eval-examples")
        panel = cls(ctl, run_info, results_box, leaderboard, all_metrics, chart, report_box, report_model,
                    per_class, confusion, examples_filter, examples_model, examples_info, examples, download_csv,
                    download_json, gr.State(None))
        panel.wire()
        return panel

    @property
    def outputs(self) -> list:
        return [self.run_info, self.results_box, self.leaderboard, self.all_metrics, self.chart, self.report_box,
                self.report_model, self.per_class, self.confusion, self.examples_filter, self.examples_model,
                self.examples_info, self.examples, self.download_csv, self.download_json, self.run_state]

    def wire(self) -> None:
        self.report_model.change(self.on_report_model, inputs=[self.run_state, self.report_model],
                                 outputs=[self.per_class, self.confusion], **ui_event(self.per_class))
        self.all_metrics.input(self.on_all_metrics, inputs=[self.run_state, self.all_metrics],
                               outputs=self.leaderboard, **ui_event(self.leaderboard))
        gr.on([self.examples_filter.change, self.examples_filter.submit, self.examples_model.change],
              self.on_filter, inputs=[self.run_state, self.examples_filter, self.examples_model],
              outputs=[self.examples_info, self.examples, self.download_csv, self.download_json],
              trigger_mode="always_last", **ui_event(self.examples))

    # ------------------------------------------------------------------------------------------ updates

    def show(self, run: Optional[RunResult]) -> dict:
        """Updates for `outputs` that show `run` (None: nothing, the results hidden)."""
        if run is None:
            return {self.run_info: "", self.results_box: gr.Column(visible=False), self.leaderboard: None,
                    self.chart: None, self.report_box: gr.Column(visible=False),
                    self.report_model: gr.Dropdown(choices=[], value=None), self.per_class: None,
                    self.confusion: "", self.examples_filter: "",
                    self.examples_model: gr.Dropdown(choices=[(text("eval_all_models"), ALL_MODELS)], value=ALL_MODELS),
                    self.examples_info: "", self.examples: None, self.download_csv: gr.DownloadButton(visible=False),
                    self.download_json: gr.DownloadButton(visible=False), self.run_state: None}
        name = headline(run)
        ids = list(run.models)
        classification = run.task == "classification"
        first = next((model_id for model_id in leaderboard_table(run)["model"]
                      if run.models[model_id].details.get("confusion_matrix")), ids[0] if ids else None)
        return {
            self.run_info: run_summary(run),
            self.results_box: gr.Column(visible=True),
            self.leaderboard: headed(leaderboard_table(run)),  # headers in the request's language
            self.all_metrics: False,
            self.chart: gr.BarPlot(chart_frame(run), y_title=name, x_title="model",
                                   label=f"{name} per model" + (" (lower is better)" if name in LOWER_IS_BETTER
                                                                else ""),
                                   y_lim=[0, 1] if classification else None,
                                   sort="y" if name in LOWER_IS_BETTER else "-y"),
            self.report_box: gr.Column(visible=classification),
            self.report_model: gr.Dropdown(choices=ids, value=first),
            self.per_class: headed(per_class_table(run, first)) if classification else None,
            self.confusion: confusion_html(run, first) if classification else "",
            self.examples_filter: "",
            self.examples_model: gr.Dropdown(choices=[(text("eval_all_models"), ALL_MODELS), *[(i, i) for i in ids]],
                                             value=ALL_MODELS),
            **self.example_updates(run, "", ALL_MODELS),
            self.run_state: str(run.path) if run.path else None,
        }

    def example_updates(self, run: RunResult, text: str, model_id: str) -> dict:
        table = filter_examples(run, text, model_id)
        shown = datafiles.clip_cells(table.head(EXAMPLES_SHOWN).round(4), SHOWN_CELL_CHARS)
        total = len(run.examples) * (1 if model_id else len(run.models))
        note = (say("eval_rows_match", shown=len(table), total=total) if (text or "").strip()
                else say("eval_rows", shown=len(table)))
        if len(table) > len(shown):
            note += say("eval_rows_first", shown=len(shown))
        return {
            self.examples_info: note,
            self.examples: headed(shown),  # the downloads keep the English column names
            self.download_csv: gr.DownloadButton(value=str(export_examples(run, table, "csv", text, model_id)),
                                                 visible=True),
            self.download_json: gr.DownloadButton(value=str(export_examples(run, table, "json", text, model_id)),
                                                  visible=True),
        }

    # ----------------------------------------------------------------------------------------- handlers

    @ui_errors
    def on_report_model(self, path: Optional[str], model_id: Optional[str]) -> tuple:
        if not path:
            return None, ""
        run = self.ctl.load(path)
        return headed(per_class_table(run, model_id)), confusion_html(run, model_id)

    @ui_errors
    def on_all_metrics(self, path: Optional[str], everything: bool) -> Any:
        return headed(leaderboard_table(self.ctl.load(path), all_metrics=bool(everything))) if path else None

    @ui_errors
    def on_filter(self, path: Optional[str], text: str, model_id: str) -> dict:
        if not path:
            return {self.examples_info: "", self.examples: None}
        return self.example_updates(self.ctl.load(path), text, model_id or ALL_MODELS)
