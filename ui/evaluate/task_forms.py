"""The Evaluate tab's pipeline tasks: NER (seqeval), question answering (SQuAD), summarization and translation.

What only these tasks need, next to the form the other tasks share (forms.py): which registry task makes a model
eligible (a model is listed only if it does the task), what the input and reference columns mean for each task,
the widgets of their own (QA's context column, translation's languages, a line saying what is scored), and how
those widgets fill the same `EvalConfig` that `python app.py eval --task ...` builds (backend/evaluation/cli.py),
so the tab and the command line run one code path: `backend.evaluation.runner.run_evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import gradio as gr

from backend.core.registry import Registry
from backend.evaluation.types import EvalConfig
from ui.i18n.core import t, text

# Evaluation task -> the registry task (models.yaml `tasks:`) a model must do to be listed for it. The runner
# asks the same of each model (`registry.spec(model, task)`) before it loads anything.
PIPELINE_TASKS: dict[str, str] = {
    "ner": "ner",
    "question_answering": "question_answering",
    "summarization": "summarize",
    "translation": "translate",
}
GENERATING = frozenset({"generation", "summarization", "translation"})  # max new tokens applies
ROUGE_TASKS = frozenset({"generation", "summarization"})  # the ROUGE stemming box applies
# What each task's columns hold: (input label key, reference label key).
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "ner": ("eval_tokens_column", "eval_tags_column"),
    "question_answering": ("eval_question_column", "eval_answers_column"),
    "summarization": ("eval_source_column", "eval_target_column"),
    "translation": ("eval_source_column", "eval_target_column"),
}


def is_pipeline(task: str) -> bool:
    return task in PIPELINE_TASKS


def column_labels(task: str) -> Optional[tuple[str, str]]:
    """(input label, reference label) of a pipeline task's columns, worded; None for the other tasks."""
    keys = COLUMN_LABELS.get(task)
    return (text(keys[0]), text(keys[1])) if keys else None


def language_pairs_of(registry: Optional[Registry], models: list[str]) -> list[tuple[str, str]]:
    """The (source, target) pairs the chosen translation models declare (read from config.json, nothing loaded),
    in order, without repeats; empty when none declares any (a causal LM translates what it is asked to)."""
    from backend.tasks.seq2seq import language_pairs

    pairs: list[tuple[str, str]] = []
    if registry is None:
        return pairs
    known = {spec.id: spec for spec in registry.specs()}
    for model_id in models or []:
        spec = known.get(model_id)
        if spec is None or PIPELINE_TASKS["translation"] not in spec.tasks:
            continue
        for pair in language_pairs(spec) or []:
            if pair not in pairs:
                pairs.append(pair)
    return pairs


@dataclass(frozen=True)
class TaskMapping:
    """The pipeline tasks' own fields, as plain data (what a test passes instead of widgets)."""

    context_column: Optional[str] = None  # question answering: the passage (the input column is the question)
    source_language: str = ""  # translation: the pair asked of the model (e.g. en, de)
    target_language: str = ""

    def apply(self, config: EvalConfig) -> EvalConfig:
        """`config` (from the shared form) with these fields where its task uses them, validated: the same
        values `app.py eval --context-column C --source-language L --target-language L` gives."""
        task = config.task
        context = (self.context_column or None) if task == "question_answering" else None
        translating = task == "translation"
        return replace(config, columns=replace(config.columns, context=context),
                       source_language=(self.source_language or "").strip() if translating else "",
                       target_language=(self.target_language or "").strip() if translating else "").validated()


@dataclass(frozen=True)
class TaskFieldsPanel:
    """The widgets only the pipeline tasks show: a context column (QA), the languages (translation), and a line
    saying what the task scores and what its columns hold."""

    hint: gr.Markdown
    context_col: gr.Dropdown
    source_language: gr.Dropdown
    target_language: gr.Dropdown

    @classmethod
    def build(cls, task_value: str) -> "TaskFieldsPanel":
        """The widgets, not yet placed: `render()` puts them where the form wants them (under the columns)."""
        hint = gr.Markdown(task_hint(task_value), visible=is_pipeline(task_value), elem_id="eval-task-hint",
                           render=False)
        context_col = gr.Dropdown(choices=[], value=None, label=t("eval_context_column"), interactive=True,
                                  visible=task_value == "question_answering", elem_id="eval-passage-col",
                                  render=False)
        source_language = gr.Dropdown(choices=[], value=None, label=t("eval_source_language"),
                                      info=t("eval_languages_info"), allow_custom_value=True, interactive=True,
                                      visible=task_value == "translation", elem_id="eval-source-lang", render=False)
        target_language = gr.Dropdown(choices=[], value=None, label=t("eval_target_language"),
                                      allow_custom_value=True, interactive=True,
                                      visible=task_value == "translation", elem_id="eval-target-lang", render=False)
        return cls(hint, context_col, source_language, target_language)

    def render(self) -> None:
        """Places the widgets in the Blocks being built: the line about the task, then one row of fields."""
        self.hint.render()
        with gr.Row(equal_height=True):
            self.context_col.render()
            self.source_language.render()
            self.target_language.render()

    @property
    def inputs(self) -> set:
        return {self.context_col, self.source_language, self.target_language}

    @property
    def task_outputs(self) -> list:
        return [self.hint, self.context_col, self.source_language, self.target_language]

    def read(self, data: dict) -> TaskMapping:
        return TaskMapping(context_column=data[self.context_col] or None,
                           source_language=data[self.source_language] or "",
                           target_language=data[self.target_language] or "")

    def data_updates(self, columns: Optional[list[str]], guess: Optional[str]) -> dict:
        """New data: the context column's choices and its likely value."""
        return {self.context_col: gr.Dropdown(choices=columns or [], value=guess if columns else None)}

    def task_updates(self, task: str, registry: Optional[Registry], models: list[str],
                     languages: tuple[str, str] = ("", "")) -> dict:
        """Which of these widgets a task shows; for translation, the languages the chosen models declare (the
        first pair unless `languages` already holds one of them)."""
        updates: dict = {
            self.hint: gr.Markdown(task_hint(task), visible=is_pipeline(task)),
            self.context_col: gr.Dropdown(visible=task == "question_answering"),
        }
        return {**updates, **self.language_updates(task, registry, models, languages)}

    def language_updates(self, task: str, registry: Optional[Registry], models: list[str],
                         languages: tuple[str, str] = ("", ""), keep: bool = False) -> dict:
        """Translation's language boxes: the pairs `models` declare, the first one picked unless `languages` is
        one of them (or `keep`: a saved run's pair, shown as it was)."""
        shown = task == "translation"
        if not shown:
            return {self.source_language: gr.Dropdown(visible=False), self.target_language: gr.Dropdown(visible=False)}
        pairs = language_pairs_of(registry, models)
        source, target = languages
        if pairs and (source, target) not in pairs and not (keep and source and target):
            source, target = pairs[0]
        return {
            self.source_language: gr.Dropdown(choices=sorted({start for start, _ in pairs}), value=source or None,
                                              visible=True),
            self.target_language: gr.Dropdown(choices=[to for start, to in pairs if start == source] or
                                              sorted({to for _, to in pairs}), value=target or None, visible=True),
        }

    def show(self, config: EvalConfig, columns: list[str], registry: Optional[Registry]) -> dict:
        """A saved run's own fields put back into the widgets."""
        task = config.task
        return {
            self.hint: gr.Markdown(task_hint(task), visible=is_pipeline(task)),
            self.context_col: gr.Dropdown(choices=columns, value=config.columns.context,
                                          visible=task == "question_answering"),
            **self.language_updates(task, registry, list(config.models),
                                    (config.source_language, config.target_language), keep=True),
        }


def task_hint(task: str) -> str:
    """What a pipeline task scores and what its columns must hold; empty for the other tasks."""
    return text(f"eval_hint_{task}") if is_pipeline(task) else ""
