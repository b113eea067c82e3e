"""The Evaluate tab's form: its constants, the form's values as plain data (`EvalForm`), and the widgets that
hold them (`FormPanel`: builds them, reads them into an `EvalForm`, and puts a saved run's settings back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import gradio as gr
import pandas as pd

from backend.core.error_codes import refuse
from backend.evaluation.data import EVAL_TASKS, ColumnMapping, DataSource
from backend.evaluation.types import INPUT_SLOT, MAX_BOOTSTRAP, EvalConfig
from backend.core.types import InvalidInputError
from ui.common.components import parse_seed, parse_whole
from ui.evaluate.task_forms import GENERATING, PIPELINE_TASKS, ROUGE_TASKS, column_labels, is_pipeline
from ui.i18n.core import file_summary, t, text

PREVIEW_ROWS = 8
ALL_MODELS = ""  # the examples' model selector value meaning "every model"
NONE = ""  # an optional column left unset
TASK_CHOICES = [(text(f"eval_task_{task}"), task)
                for task in ("classification", "generation", "perplexity", *PIPELINE_TASKS)]
# Which registry tasks make a model eligible for an evaluation task (a pipeline task: only its own).
MODEL_TASKS: dict[str, tuple[str, ...]] = {
    "classification": ("classify", "zero_shot", "chat", "generate"),
    "generation": ("chat", "generate"),
    "perplexity": ("chat", "generate"),
    **{task: (registry_task,) for task, registry_task in PIPELINE_TASKS.items()},
}
# The models a task switch keeps selected: those made for the task (a chat model chosen for generation is not
# carried over to classification, where it would score labels: that stays a deliberate choice).
NATIVE_TASKS: dict[str, tuple[str, ...]] = {
    "classification": ("classify", "zero_shot"),
    "generation": ("chat", "generate"),
    "perplexity": ("chat", "generate"),
    **{task: (registry_task,) for task, registry_task in PIPELINE_TASKS.items()},
}
LABEL_PROMPT_PLACEHOLDER = text("eval_label_prompt_placeholder")


@dataclass(frozen=True)
class DataView:
    """What the tab shows about a loaded dataset before a run."""

    source: DataSource
    rows: int
    columns: list[str]
    preview: pd.DataFrame
    guess: ColumnMapping

    def describe(self) -> str:
        """The upload's summary line, in the language of the request being served."""
        return file_summary(self.source.describe(), self.rows, self.columns)


@dataclass(frozen=True)
class EvalForm:
    """The form's values, as plain Python (what a test passes instead of widgets)."""

    task: str
    input_column: Optional[str] = None
    reference_column: Optional[str] = None
    predictions_column: Optional[str] = None
    score_file: bool = False  # score the predictions already in the file (no model)
    models: tuple[str, ...] = ()
    prompt_template: Optional[str] = None
    max_new_tokens: int = 64
    batch_size: int = 8
    limit: Optional[int] = None
    seed: Optional[int] = None
    bootstrap: int = 1000
    rouge_stemmer: bool = False  # generation: ROUGE with Porter stemming
    # generation (ui/evaluate/judging.py): the turns before the input, a judge model and its rubric (None: default)
    conversation_column: Optional[str] = None
    judge: Optional[str] = None
    judge_rubric: Optional[str] = None

    def config(self, source: Optional[DataSource]) -> EvalConfig:
        """The validated `EvalConfig` (errors name the field)."""
        if source is None:
            raise refuse("upload_or_hub", "data")
        if self.task not in EVAL_TASKS:
            raise InvalidInputError(f"task: pick one of {', '.join(EVAL_TASKS)}")
        scoring = self.score_file and self.task != "perplexity"
        if scoring and not self.predictions_column:
            raise refuse("pick_predictions", "predictions_column")
        if not scoring and not self.models:
            raise refuse("pick_models", "models")
        template = (self.prompt_template or "").strip("\n") or None
        if self.task == "perplexity" or scoring or is_pipeline(self.task):  # a pipeline task has no prompt
            template = None
        columns = ColumnMapping(
            input=self.input_column or None,
            reference=None if self.task == "perplexity" else self.reference_column or None,
            predictions=self.predictions_column or None if scoring else None,
            conversation=self.conversation_column or None if self.task == "generation" and not scoring else None,
        )
        judge = self.judge or None if self.task == "generation" and not scoring else None
        return EvalConfig(task=self.task, data=source, columns=columns,  # type: ignore[arg-type]
                          models=() if scoring else tuple(self.models), prompt_template=template,
                          max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, limit=self.limit,
                          seed=self.seed, bootstrap=self.bootstrap,
                          rouge_stemmer=bool(self.rouge_stemmer) and self.task in ROUGE_TASKS,
                          judge=judge, judge_rubric=self.judge_rubric if judge else None).validated()


@dataclass(frozen=True)
class FormPanel:
    """The widgets of the task, the columns, the models and the run's settings."""

    source: gr.State  # DataSource.to_dict() of the data on show
    task: gr.Radio
    input_col: gr.Dropdown
    reference_col: gr.Dropdown
    predictions_col: gr.Dropdown
    score_file: gr.Checkbox
    models: gr.Dropdown
    prompt: gr.Textbox
    max_new_tokens: gr.Slider
    batch_size: gr.Slider
    limit: gr.Number
    seed: gr.Number
    bootstrap: gr.Number
    rouge_stemmer: gr.Checkbox

    @classmethod
    def build(cls, task_value: str, model_choices: list[tuple[str, str]], default_models: list[str],
              after_columns: Optional[Callable[[], None]] = None) -> "FormPanel":
        """The widgets; `after_columns` places more fields right under the column mapping (a task's own)."""
        with gr.Row(equal_height=True):
            task = gr.Radio(TASK_CHOICES, value=task_value, label=t("task"), elem_id="eval-task", scale=3)
            models = gr.Dropdown(choices=model_choices, value=default_models, multiselect=True, label=t("models"),
                                 info=t("eval_models_info"), elem_id="eval-models",
                                 interactive=True, scale=4)
            batch_size = gr.Slider(1, 256, value=8, step=1, label=t("batch_size"), elem_id="eval-batch-size", scale=2)
        with gr.Row(equal_height=True):
            input_col = gr.Dropdown(choices=[], value=None, label=t("eval_input_column"), interactive=True,
                                    elem_id="eval-input-col")
            reference_col = gr.Dropdown(choices=[], value=None, label=t("eval_reference_column"), interactive=True,
                                        elem_id="eval-reference-col")
            score_file = gr.Checkbox(label=t("eval_score_file"), value=False,
                                     elem_id="eval-score-file")
            predictions_col = gr.Dropdown(choices=[], value=None, label=t("eval_predictions_column"), interactive=True,
                                          visible=False, elem_id="eval-predictions-col")
        if after_columns is not None:
            after_columns()
        with gr.Row(equal_height=True):
            prompt = gr.Textbox(value=INPUT_SLOT, label=t("eval_prompt"), lines=1,
                                max_lines=6, elem_id="eval-prompt", scale=4)
            max_new_tokens = gr.Slider(1, 1024, value=64, step=1, label=t("max_new_tokens"),
                                       elem_id="eval-max-new-tokens", scale=2)
            limit = gr.Number(value=0, precision=0, minimum=0, label=t("eval_limit"), info=t("eval_limit_info"),
                              elem_id="eval-limit", scale=1)
            seed = gr.Number(value=-1, precision=0, minimum=-1, label=t("seed"), info=t("eval_seed_info"),
                             elem_id="eval-seed", scale=1)
            bootstrap = gr.Number(value=1000, precision=0, minimum=0, maximum=MAX_BOOTSTRAP,
                                  label=t("eval_bootstrap"),
                                  info=t("eval_bootstrap_info", most=f"{MAX_BOOTSTRAP:,}"),
                                  elem_id="eval-bootstrap", scale=1)
        rouge_stemmer = gr.Checkbox(label=t("eval_rouge_stemmer"), value=False,
                                    visible=task_value in ROUGE_TASKS, elem_id="eval-rouge-stemmer")
        return cls(gr.State(None), task, input_col, reference_col, predictions_col, score_file, models, prompt,
                   max_new_tokens, batch_size, limit, seed, bootstrap, rouge_stemmer)

    @property
    def inputs(self) -> set:
        return {self.source, self.task, self.input_col, self.reference_col, self.predictions_col, self.score_file,
                self.models, self.prompt, self.max_new_tokens, self.batch_size, self.limit, self.seed,
                self.bootstrap, self.rouge_stemmer}

    def read(self, data: dict) -> tuple[Optional[DataSource], EvalForm]:
        source = DataSource.from_dict(data[self.source]) if data[self.source] else None
        form = EvalForm(
            task=data[self.task], input_column=data[self.input_col] or None,
            reference_column=data[self.reference_col] or None, predictions_column=data[self.predictions_col] or None,
            score_file=bool(data[self.score_file]), models=tuple(data[self.models] or ()),
            prompt_template=data[self.prompt],
            max_new_tokens=parse_whole(data[self.max_new_tokens], "max new tokens", 64, 1),
            batch_size=parse_whole(data[self.batch_size], "batch size", 8, 1),
            limit=parse_whole(data[self.limit], "sample size", None, 0) or None,
            seed=parse_seed(data[self.seed]),
            bootstrap=parse_whole(data[self.bootstrap], "bootstrap resamples", 1000, 0),
            rouge_stemmer=bool(data[self.rouge_stemmer]))
        return source, form

    @property
    def settings(self) -> list:
        """The widgets `show` sets (everything but the data and the columns)."""
        return [self.task, self.score_file, self.models, self.prompt, self.max_new_tokens, self.batch_size,
                self.limit, self.seed, self.bootstrap, self.rouge_stemmer]

    def show(self, config: EvalConfig, columns: list[str]) -> dict:
        """Updates that put a saved run's values into the form (the models, prompt and scoring mode come from
        the tab's task updates); `columns` are the column choices."""
        task, scoring, mapping = config.task, config.scores_file_predictions, config.columns
        optional = column_choices(columns)
        labels = task_labels(task)
        return {
            self.task: task,
            self.max_new_tokens: gr.Slider(value=config.max_new_tokens, visible=task in GENERATING and not scoring),
            self.batch_size: config.batch_size,
            self.limit: config.limit or 0,
            self.seed: -1 if config.seed is None else config.seed,
            self.bootstrap: config.bootstrap,
            self.rouge_stemmer: gr.Checkbox(value=config.rouge_stemmer, visible=task in ROUGE_TASKS),
            self.input_col: gr.Dropdown(choices=columns, value=mapping.input, label=labels["input"]),
            self.reference_col: gr.Dropdown(choices=optional, value=mapping.reference or NONE,
                                            label=labels["reference"], visible=task != "perplexity"),
            self.predictions_col: gr.Dropdown(choices=optional, value=mapping.predictions or NONE, visible=scoring),
        }


def column_choices(columns: list[str]) -> list[tuple[str, str]]:
    """An optional column's choices: "(none)" first."""
    return [(text("eval_none"), NONE), *[(column, column) for column in columns]]


def task_labels(task: str) -> dict[str, str]:
    """The labels of the widgets whose meaning changes with the task."""
    pipeline = column_labels(task)
    if pipeline is not None:
        return {"input": pipeline[0], "reference": pipeline[1], "prompt": text("eval_prompt")}
    return {
        "reference": text("label_column") if task == "classification" else text("eval_reference_column"),
        "input": text("text_column") if task == "perplexity" else text("eval_input_column"),
        "prompt": text("eval_prompt_classification") if task == "classification" else text("eval_prompt"),
    }
