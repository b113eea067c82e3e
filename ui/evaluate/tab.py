"""The Evaluate tab's wiring: the data panel, the form, Run / Cancel with a progress bar, the results and the
past runs, each a small dataclass; the handlers are methods (Gradio lists them by name)."""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Union

import gradio as gr
from gradio.context import Context

from backend.data import files as datafiles
from backend.data import store
from backend.evaluation.data import DataSource
from backend.evaluation.types import INPUT_SLOT, RunResult
from backend.core.registry import Registry
from ui.common.components import handle_errors, live_choices, ui_errors, ui_event
from ui.evaluate.controller import EvaluateController
from ui.evaluate.forms import LABEL_PROMPT_PLACEHOLDER, NONE, DataView, FormPanel, column_choices, task_labels
# The Run button's queue (runs at once), shared with "Compare with base" (prefill.py)
from ui.evaluate.prefill import CONCURRENCY_ID, CONCURRENCY_LIMIT
from ui.evaluate.judging import ComparePanel, JudgePanel, judge_options
from ui.evaluate.results import ResultsPanel
from ui.evaluate.runs import RunsPanel
from ui.evaluate.task_forms import GENERATING, ROUGE_TASKS, TaskFieldsPanel, is_pipeline
from ui.evaluate.views import PROGRESS_CSS, progress_html
from ui.i18n.core import say, t, text

INITIAL_TASK = "generation"
NO_DATA = text("eval_no_data")
EVAL_SPLITS = ("test", "data", "validation", "train")  # which split of a saved dataset is evaluated, first found


@dataclass(frozen=True)
class DataPanel:
    """Where the data comes from (an upload, a Hub dataset or one saved on the Data tab) and its preview."""

    upload: gr.File
    hub_id: gr.Textbox
    hub_config: gr.Textbox
    hub_split: gr.Textbox
    hub_load: gr.Button
    info: gr.Markdown
    preview: gr.Dataframe
    saved: gr.Dropdown

    @classmethod
    def build(cls) -> "DataPanel":
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs(elem_id="eval-source"):
                    with gr.Tab(t("eval_upload_tab"), id="eval-upload-tab", elem_id="eval-upload-tab"):
                        upload = gr.File(label=t("eval_upload", mb=datafiles.MAX_FILE_BYTES // 2**20),
                                         file_types=list(datafiles.SUPPORTED_EXTENSIONS), height=120,
                                         elem_id="eval-file")
                    with gr.Tab(t("eval_hub_tab"), id="eval-hub-tab", elem_id="eval-hub-tab"):
                        hub_id = gr.Textbox(label=t("dataset_id"), placeholder=t("eval_hub_placeholder"),
                                            elem_id="eval-hub-id")
                        with gr.Row():
                            hub_config = gr.Textbox(label=t("config"), placeholder=t("optional"),
                                                    elem_id="eval-hub-config")
                            hub_split = gr.Textbox(label=t("split"), value="test", elem_id="eval-hub-split")
                        hub_load = gr.Button(t("eval_hub_load"), elem_id="eval-hub-load", size="sm")
                    with gr.Tab(t("eval_saved_tab"), id="eval-saved-tab", elem_id="eval-saved-tab"):
                        saved = gr.Dropdown([], label=t("eval_saved"), elem_id="eval-saved",
                                            info=t("eval_saved_info"))
                info = gr.Markdown(NO_DATA, elem_id="eval-data-info")
            with gr.Column(scale=3, min_width=400):
                preview = gr.Dataframe(label=t("eval_preview"), interactive=False, wrap=True, max_height=300,
                                       elem_id="eval-preview")
        return cls(upload, hub_id, hub_config, hub_split, hub_load, info, preview, saved)


@dataclass(frozen=True)
class EvaluateTab:
    ctl: EvaluateController
    data: DataPanel
    form: FormPanel
    tasks: TaskFieldsPanel  # the pipeline tasks' own fields (ui/evaluate/task_forms.py)
    run_button: gr.Button
    cancel_button: gr.Button
    progress: gr.HTML
    results: ResultsPanel
    runs: RunsPanel
    judge: JudgePanel
    compare: ComparePanel

    @classmethod
    def build(cls, registry: Optional[Registry], runs_dir: Optional[Union[str, Path]] = None) -> "EvaluateTab":
        ctl = EvaluateController(registry, runs_dir)
        gr.Markdown(t("eval_intro"), elem_id="eval-intro")
        data = DataPanel.build()
        tasks = TaskFieldsPanel.build(INITIAL_TASK)
        form = FormPanel.build(INITIAL_TASK, ctl.model_choices(INITIAL_TASK), ctl.default_models(INITIAL_TASK),
                               after_columns=tasks.render)
        live_choices(form.models, ctl.model_choices, inputs=[form.task])
        judge = JudgePanel.build(ctl.judge_choices(), INITIAL_TASK == "generation")
        live_choices(judge.judge, lambda: judge_options(ctl.judge_choices()))
        with gr.Row():
            run_button = gr.Button(t("eval_run"), variant="primary", elem_id="eval-run", scale=4)
            cancel_button = gr.Button(t("cancel"), variant="stop", elem_id="eval-cancel", scale=1)
        progress = gr.HTML("", elem_id="eval-progress", css_template=PROGRESS_CSS, js_on_load=None)
        results = ResultsPanel.build(ctl)
        compare = ComparePanel.build()
        runs = RunsPanel.build(ctl)
        tab = cls(ctl, data, form, tasks, run_button, cancel_button, progress, results, runs, judge, compare)
        tab.wire()
        return tab

    @property
    def data_outputs(self) -> list:
        return [self.form.source, self.data.info, self.data.preview, self.form.input_col, self.form.reference_col,
                self.form.predictions_col, self.judge.conversation_col, self.tasks.context_col]

    @property
    def task_outputs(self) -> list:
        form = self.form
        return [form.models, form.reference_col, form.input_col, form.score_file, form.predictions_col, form.prompt,
                form.max_new_tokens, form.rouge_stemmer, self.judge.conversation_col, self.judge.box,
                *self.tasks.task_outputs]

    def wire(self) -> None:
        data, form = self.data, self.form
        # Clear first, so that a failed load does not leave the old preview up.
        data.upload.change(self.clear_data, outputs=self.data_outputs, **ui_event(data.info, queue=False)).then(
            self.on_upload, inputs=[data.upload, form.task], outputs=self.data_outputs, **ui_event(data.info))
        data.hub_load.click(self.clear_data, outputs=self.data_outputs, **ui_event(data.info, queue=False)).then(
            self.on_hub, inputs=[data.hub_id, data.hub_config, data.hub_split, form.task],
            outputs=self.data_outputs, **ui_event(data.info, True))
        data.saved.input(self.clear_data, outputs=self.data_outputs, **ui_event(data.info, queue=False)).then(
            self.on_saved, inputs=[data.saved, form.task], outputs=self.data_outputs, **ui_event(data.info))
        task_inputs = [form.task, form.score_file, form.models, form.prompt, form.source]
        tasks = self.tasks
        # Other models picked for translation: the languages they declare.
        form.models.input(self.on_models, inputs=[form.task, form.models, tasks.source_language,
                                                  tasks.target_language],
                          outputs=[tasks.source_language, tasks.target_language], **ui_event(form.models))
        form.task.input(self.on_task, inputs=task_inputs, outputs=self.task_outputs, **ui_event(form.models))
        form.score_file.input(self.on_score_file, inputs=task_inputs, outputs=self.task_outputs,
                              **ui_event(form.models))
        self.run_button.click(
            self.on_run, inputs=form.inputs | self.judge.inputs | self.tasks.inputs,
            outputs=[self.progress, *self.results.outputs, *self.compare.outputs, *self.runs.outputs],
            concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(self.progress)
        ).failure(lambda: "", outputs=self.progress, **ui_event(self.progress, queue=False))  # no stale "Starting…"
        # Cancel does not cancel the run's event: the run must end normally to score and show what was done.
        # Not queued: it runs at once while the run holds its queue slot; the job stops after its current batch.
        self.cancel_button.click(self.on_cancel, inputs=None, outputs=None,
                                 **ui_event(self.cancel_button, queue=False))
        self.runs.open_button.click(self.on_open, inputs=self.runs.open_choice,
                                    outputs=[self.progress, *self.results.outputs, *self.compare.outputs,
                                             *self.data_outputs, *self.task_outputs, *self.form.settings,
                                             self.judge.judge, self.judge.rubric, self.judge.with_base,
                                             *self.tasks.task_outputs],
                                    **ui_event(self.results.run_info))
        root = Context.root_block
        if root is not None:
            root.unload(self.on_cancel)  # a closed or reloaded page stops its run instead of computing for nobody
            root.load(self.runs.runs_updates, outputs=self.runs.outputs, **ui_event(self.runs.runs, queue=False))
            root.load(self.saved_choices, outputs=data.saved, **ui_event(data.info, queue=False))

    # ---------------------------------------------------------------------------------------------- data

    def data_updates(self, view: Optional[DataView]) -> dict:
        form = self.form
        if view is None:
            empty = gr.Dropdown(choices=[], value=None)
            return {form.source: None, self.data.info: NO_DATA, self.data.preview: None,
                    form.input_col: empty, form.reference_col: empty, form.predictions_col: empty,
                    **self.judge.column_updates(None, None), **self.tasks.data_updates(None, None)}
        optional = column_choices(view.columns)
        return {
            **self.judge.column_updates(view.columns, view.guess.conversation),
            form.source: view.source.to_dict(),
            self.data.info: html.escape(view.describe(), quote=False),
            self.data.preview: view.preview,
            form.input_col: gr.Dropdown(choices=view.columns, value=view.guess.input),
            form.reference_col: gr.Dropdown(choices=optional, value=view.guess.reference or NONE),
            form.predictions_col: gr.Dropdown(choices=optional, value=view.guess.predictions or NONE),
            **self.tasks.data_updates(view.columns, view.guess.context),
        }

    def clear_data(self) -> dict:
        return self.data_updates(None)

    @ui_errors
    def on_upload(self, path: Optional[str], task_value: str) -> dict:
        view = self.ctl.inspect(DataSource(path=path), task_value) if path else None
        return self.data_updates(view)

    @ui_errors
    def on_hub(self, dataset_id: str, config: str, split: str, task_value: str) -> dict:
        return self.data_updates(self.ctl.inspect(self.ctl.hub_source(dataset_id, config, split), task_value))

    @handle_errors
    def saved_choices(self, request: gr.Request) -> gr.Dropdown:
        """The caller's saved datasets (an admin's list has everyone's: backend/guard/user_space.py)."""
        names = [info.name for info in store.list_datasets(getattr(request, "username", None))]
        return gr.Dropdown(choices=names, value=None)

    @ui_errors
    def on_saved(self, name: Optional[str], task_value: str, request: gr.Request) -> dict:
        if not name:
            return self.data_updates(None)
        user = getattr(request, "username", None)
        info = next((info for info in store.list_datasets(user) if info.name == name), None)
        split = next((split for split in EVAL_SPLITS if info and split in info.files), None)
        path = store.dataset_path(user, name, split)  # "no saved dataset named ..." for another user's
        return self.data_updates(self.ctl.inspect(DataSource(path=str(path)), task_value))

    # ------------------------------------------------------------------------------- task / scoring mode

    @ui_errors
    def on_task(self, task_value: str, scoring: bool, chosen: list, template: str,
                data_source: Optional[dict]) -> dict:
        """A new task: which widgets apply, which models fit it (only models made for it stay selected), and
        the likely reference column."""
        return self.task_updates(task_value, scoring, chosen, template, data_source, native_only=True)

    @ui_errors
    def on_score_file(self, task_value: str, scoring: bool, chosen: list, template: str,
                      data_source: Optional[dict]) -> dict:
        """Scoring the file's predictions on or off: the same task, so the chosen models stay."""
        return self.task_updates(task_value, scoring, chosen, template, None, native_only=False)

    def task_updates(self, task_value: str, scoring: bool, chosen: list, template: str,
                     data_source: Optional[dict], native_only: bool) -> dict:
        form = self.form
        scoring = bool(scoring) and task_value != "perplexity"
        choices = self.ctl.model_choices(task_value)
        kept = self.ctl.kept_models(task_value, chosen, native_only)
        pipeline = is_pipeline(task_value)
        if task_value == "generation":
            template = template or INPUT_SLOT
        elif task_value == "classification" and template == INPUT_SLOT:
            template = ""
        labels = task_labels(task_value)
        updates = {
            form.models: gr.Dropdown(choices=choices, value=kept, multiselect=True, visible=not scoring),
            form.reference_col: gr.Dropdown(visible=task_value != "perplexity", label=labels["reference"]),
            form.input_col: gr.Dropdown(label=labels["input"]),
            form.score_file: gr.Checkbox(visible=task_value != "perplexity", value=scoring),
            form.predictions_col: gr.Dropdown(visible=scoring),
            form.prompt: gr.Textbox(
                value=template, visible=task_value != "perplexity" and not scoring and not pipeline,
                label=labels["prompt"],
                placeholder=LABEL_PROMPT_PLACEHOLDER if task_value == "classification" else None),
            form.max_new_tokens: gr.Slider(visible=task_value in GENERATING and not scoring),
            form.rouge_stemmer: gr.Checkbox(visible=task_value in ROUGE_TASKS),
            **self.judge.task_updates(task_value),
            **self.tasks.task_updates(task_value, self.ctl.registry, kept),
        }
        if data_source:  # the likely reference column differs per task ("label" / "answer")
            view = self.ctl.inspect(DataSource.from_dict(data_source), task_value)
            updates[form.reference_col] = gr.Dropdown(choices=column_choices(view.columns),
                                                      value=view.guess.reference or NONE, label=labels["reference"],
                                                      visible=task_value != "perplexity")
            updates.update(self.judge.column_updates(view.columns, view.guess.conversation, task_value))
            if pipeline:  # NER's tokens, QA's question and passage go by other names than a generation input
                updates[form.input_col] = gr.Dropdown(choices=view.columns, value=view.guess.input,
                                                      label=labels["input"])
                updates[self.tasks.context_col] = gr.Dropdown(choices=view.columns, value=view.guess.context,
                                                              visible=task_value == "question_answering")
        return updates

    # ------------------------------------------------------------------ run, with a progress bar; cancel

    @ui_errors
    def on_run(self, data: dict, request: gr.Request) -> Iterator[dict]:
        data_source, form = self.form.read(data)
        choice = self.judge.read(data)
        form = replace(form, conversation_column=choice.conversation_column, judge=choice.judge,
                       judge_rubric=choice.rubric,
                       models=self.ctl.with_base(form.models) if choice.with_base else form.models)
        config = self.tasks.read(data).apply(form.config(data_source))
        for item in self.ctl.stream(config, session=request.session_hash or "", username=request.username):
            if isinstance(item, RunResult):
                yield {self.progress: progress_html(None, item), **self.results.show(item),
                       **self.compare.show(item), **self.runs.runs_updates(request)}
            elif item is None:
                yield {self.progress: progress_html(None), **self.results.show(None), **self.compare.show(None)}
            else:
                yield {self.progress: progress_html(item)}

    def on_cancel(self, request: gr.Request) -> None:
        self.ctl.cancel(request.session_hash or "")

    @ui_errors
    def on_open(self, run_id: Optional[str], request: gr.Request) -> dict:
        """Shows a saved run, and puts its data (when still on the server) and its settings into the form, so
        what is on screen always belongs together and Run repeats it."""
        run = self.ctl.open_run(run_id or "", request.username)
        config = run.config
        mapping = config.columns
        columns = [column for column in (mapping.input, mapping.reference, mapping.predictions, mapping.context,
                                         mapping.conversation)
                   if column]
        data = self.data_updates(None)
        if config.data.path and Path(config.data.path).is_file():
            view = self.ctl.inspect(config.data, config.task)
            data, columns = self.data_updates(view), view.columns
        elif config.data.hub_id:  # not fetched now: Run loads it again
            data = {**data, self.form.source: config.data.to_dict(),
                    self.data.info: html.escape(say("eval_hub_data", request, name=config.data.describe()),
                                                quote=False)}
        else:
            data[self.data.info] = html.escape(say("eval_data_gone", request, name=config.data.describe()),
                                               quote=False)
        scoring = config.scores_file_predictions
        shown = self.task_updates(config.task, scoring, list(config.models), config.prompt_template or "", None,
                                  native_only=False)
        return {self.progress: "", **self.results.show(run), **self.compare.show(run), **data, **shown,
                **self.form.show(config, columns), **self.judge.column_updates(columns, mapping.conversation,
                                                                               config.task),
                **self.judge.show(config), **self.tasks.show(config, columns, self.ctl.registry)}

    @ui_errors
    def on_models(self, task_value: str, chosen: list, source: Optional[str], target: Optional[str]) -> dict:
        """Translation: the language pairs the chosen models declare (a pair already picked stays)."""
        return self.tasks.language_updates(task_value, self.ctl.registry, list(chosen or []),
                                           (source or "", target or ""))


def build_evaluate_tab(registry: Optional[Registry], runs_dir: Optional[Union[str, Path]] = None) -> EvaluateController:
    """Renders the Evaluate tab's content (call inside `with gr.Tab(...)`); returns its controller.

    Runs are saved to `runs_dir`, else $WORKBENCH_RUNS_DIR, else `runs` (the command line's default too).
    """
    return EvaluateTab.build(registry, runs_dir).ctl
