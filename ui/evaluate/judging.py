"""The generation part of the Evaluate form that closes the loop: the conversation column (suites saved from
Chat run as they were asked), a judge with its rubric, "compare with base", and the side-by-side view of a run
with two models (the judge's counts, the pairwise result, the per-example differences).

All the work is backend.evaluation's (conversation.py, judge.py, pairwise.py, compare.py); this module only
holds the widgets and turns their values into the form's (`JudgeChoice`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import gradio as gr

from backend.data import files as datafiles
from backend.evaluation.compare import example_diffs
from backend.evaluation.judge import DEFAULT_RUBRIC
from backend.evaluation.types import EvalConfig, RunResult
from backend.guard.table_limits import SHOWN_CELL_CHARS
from ui.evaluate.views import EXAMPLES_SHOWN
from ui.i18n.core import say, t, text

NONE = ""  # no judge / no conversation column
GENERATION = "generation"


@dataclass(frozen=True)
class JudgeChoice:
    """The values of this part of the form, as plain data (what a test passes instead of widgets)."""

    conversation_column: Optional[str] = None
    judge: Optional[str] = None
    judge_rubric: Optional[str] = None  # None or the default text: the built-in rubric
    with_base: bool = False

    @property
    def rubric(self) -> Optional[str]:
        rubric = (self.judge_rubric or "").strip()
        return None if not rubric or rubric == DEFAULT_RUBRIC.strip() else self.judge_rubric


@dataclass(frozen=True)
class JudgePanel:
    """Widgets of the conversation column, the judge and compare-with-base (shown for generation only)."""

    conversation_col: gr.Dropdown
    box: gr.Accordion
    judge: gr.Dropdown
    rubric: gr.Textbox
    with_base: gr.Checkbox

    @classmethod
    def build(cls, judge_choices: list[tuple[str, str]], visible: bool) -> "JudgePanel":
        conversation_col = gr.Dropdown(choices=[], value=None, label=t("eval_conversation_column"),
                                       info=t("eval_conversation_info"), interactive=True, visible=visible,
                                       elem_id="eval-conversation-col")
        with gr.Accordion(t("eval_judge_settings"), open=False, visible=visible, elem_id="eval-judge-box") as box:
            with gr.Row(equal_height=True):
                judge = gr.Dropdown(choices=judge_options(judge_choices), value=NONE, label=t("eval_judge"),
                                    interactive=True, elem_id="eval-judge", scale=2)
                with_base = gr.Checkbox(label=t("eval_with_base"), value=False, elem_id="eval-with-base", scale=2)
            rubric = gr.Textbox(value=DEFAULT_RUBRIC, label=t("eval_judge_rubric"), lines=4, max_lines=16,
                                elem_id="eval-judge-rubric")
        return cls(conversation_col, box, judge, rubric, with_base)

    @property
    def inputs(self) -> set:
        return {self.conversation_col, self.judge, self.rubric, self.with_base}

    def read(self, data: dict) -> JudgeChoice:
        """The values in `data` (a widget missing from it, as in a caller that predates this panel: unset)."""
        return JudgeChoice(conversation_column=data.get(self.conversation_col) or None,
                           judge=data.get(self.judge) or None, judge_rubric=data.get(self.rubric),
                           with_base=bool(data.get(self.with_base)))

    def task_updates(self, task: str) -> dict:
        shown = task == GENERATION
        return {self.conversation_col: gr.Dropdown(visible=shown), self.box: gr.Accordion(visible=shown)}

    def column_updates(self, columns: Optional[list[str]], guess: Optional[str], task: Optional[str] = None) -> dict:
        """The conversation column's choices for newly loaded data (None: no data); with `task`, its visibility."""
        choices = [(text("eval_none"), NONE), *[(c, c) for c in columns or []]]
        choices, value = (choices, guess or NONE) if columns else ([], None)
        update = gr.Dropdown(choices=choices, value=value)
        if task is not None:
            update = gr.Dropdown(choices=choices, value=value, visible=task == GENERATION)
        return {self.conversation_col: update}

    def show(self, config: EvalConfig) -> dict:
        """A saved run's judge settings back in the form (its columns: `column_updates`)."""
        return {self.judge: config.judge or NONE, self.rubric: config.judge_rubric or DEFAULT_RUBRIC,
                self.with_base: False}


def judge_options(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(text("eval_no_judge"), NONE), *choices]


@dataclass(frozen=True)
class ComparePanel:
    """A run of several models side by side: the judge's counts, the pairwise result, per-example differences."""

    box: gr.Column
    summary: gr.Markdown
    diffs: gr.Dataframe

    @classmethod
    def build(cls) -> "ComparePanel":
        with gr.Column(visible=False, elem_id="eval-side-by-side") as box:
            gr.Markdown(t("eval_compare_title"), elem_id="eval-side-title")
            summary = gr.Markdown("", elem_id="eval-side-summary")
            diffs = gr.Dataframe(label=t("eval_diffs"), interactive=False, wrap=True, max_height=420,
                                 elem_id="eval-diffs")
        return cls(box, summary, diffs)

    @property
    def outputs(self) -> list:
        return [self.box, self.summary, self.diffs]

    def show(self, run: Optional[RunResult]) -> dict:
        """Updates for `outputs`: shown when `run` has a judge or more than one model."""
        if run is None or (len(run.models) < 2 and not run.config.judge):
            return {self.box: gr.Column(visible=False), self.summary: "", self.diffs: None}
        table = datafiles.clip_cells(example_diffs(run).head(EXAMPLES_SHOWN).round(4), SHOWN_CELL_CHARS)
        return {self.box: gr.Column(visible=True), self.summary: compare_summary(run), self.diffs: table}


def compare_summary(run: RunResult) -> str:
    """The judge's counts per model and the pairwise line, as Markdown lines."""
    lines = []
    for result in run.models.values():
        judged = result.details.get("judge")
        if judged:
            lines.append(say("eval_judge_line", judge=judged["judge"], model=result.model_id,
                             scored=judged["scored"], unparsed=judged["n_unparsed"]))
    pair = run.comparison
    if pair is not None:
        rate, (low, high) = pair.rates()["win_rate"], pair.intervals()["win_rate"]

        def percent(value: float) -> str:
            return "-" if math.isnan(value) else f"{value:.0%}"

        lines.append(say("eval_pairwise_line", a=pair.model_a, b=pair.model_b, judge=pair.judge,
                         wins=pair.count("A"), ties=pair.count("tie"), losses=pair.count("B"), counted=pair.counted,
                         win=percent(rate), low=percent(low), high=percent(high),
                         confidence=f"{pair.confidence:.0%}", unparsed=pair.n_unparsed))
    return "\n\n".join(lines)
