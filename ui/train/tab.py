"""The Train tab: data upload and column mapping, a preview of exactly what the model sees, hyperparameters,
the memory estimate, Start / Stop / Resume, live loss curves and log, and the table of past runs.

Everything runs through backend.training.service (the same path as `python app.py train`); the training itself
is a separate process, and this tab only reads its run folder (a timer refreshes the curves). It never imports
torch. Only users allowed by backend.guard.user_space.may_train may start runs; presenter mode has no Train tab.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from backend.data import files as datafiles
from backend.guard import user_space
from backend.data import store
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.guard.security import SecuritySettings
from backend.training import runfiles
from backend.training.config import TrainConfig, parse_train_config
from backend.training.recipes import RECIPES, TASKS, ColumnField, column_fields, recipe_for
from backend.training.service import TrainingService
from ui.common.components import handle_errors, live_choices, ui_event
from ui.train.once import OneStartAtATime
from ui.train.progress import curves, progress_text, reason, task_curves
from ui.train.publish import PublishPanel
from ui.i18n.core import STRINGS, headed, say, t, text

REFRESH_S = 1.0
RUN_COLUMNS = ["run", "status", "task", "base", "step", "accuracy / eval loss", "registered as", "reason"]
# The form's numbers: the settings every task shares, then those only some tasks read (Recipe.settings).
SHARED_NUMBERS = ("epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation", "warmup_ratio",
                  "weight_decay", "max_length", "seed", "eval_steps", "early_stopping_patience", "lora_r",
                  "lora_alpha", "lora_dropout")
TASK_NUMBERS = tuple(dict.fromkeys(name for recipe in RECIPES.values() for name in recipe.settings))
HYPERPARAMETERS = [  # (field, label, default, tooltip): defaults are TrainConfig's; label / tooltip translation keys
    (name, t(f"hp_{name}"), TrainConfig.model_fields[name].default, t(f"hp_{name}_info"))
    for name in SHARED_NUMBERS + TASK_NUMBERS
]
COLUMNS = column_fields()  # one picker per column field of any task, shown for the tasks that read it


def may_start(request: Optional[gr.Request]) -> None:
    username = getattr(request, "username", None) if request is not None else None
    if not user_space.may_train(username, SecuritySettings.from_env().auth_enabled):
        raise refuse("may_not_train", "training")


def _user(request: Optional[gr.Request]) -> Optional[str]:
    return getattr(request, "username", None) if request is not None else None


def _page(request: Optional[gr.Request]) -> str:
    """The page a request comes from (its Gradio session), else its user: what one start at a time is kept per."""
    return str(getattr(request, "session_hash", None) or _user(request) or "")


def _columns_choices(path: Optional[str]) -> list[str]:
    if not path:
        return []
    return [str(column) for column in datafiles.read_table(path).columns]


def _guess(columns: list[str], *hints: str) -> Optional[str]:
    lower = {column.lower(): column for column in columns}
    return next((lower[hint] for hint in hints if hint in lower), None)


def keep_upload(path: str, username: Optional[str]) -> str:
    """The upload copied under the user's uploads folder (content-addressed), so the run never reads a temp file."""
    source = Path(path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = user_space.user_dir("uploads", username) / f"train-{digest}{source.suffix.lower()}"
    if not target.exists():
        shutil.copyfile(source, target)
    return str(target)


def _column_label(field: ColumnField) -> Any:
    key = f"train_{field.name}"
    return t(key if key in STRINGS else field.name)


@dataclass(frozen=True)
class TrainTab:
    registry: Registry
    service: TrainingService
    task: gr.Radio
    base: gr.Dropdown
    data: gr.File
    validation: gr.File
    columns: dict[str, gr.Dropdown]  # TrainConfig column field -> its picker (COLUMNS)
    method: gr.Radio
    register_as: gr.Textbox
    numbers: tuple[gr.Number, ...]
    run_id: gr.State
    saved: gr.Dropdown  # a dataset saved on the Data tab, used when no file is uploaded
    share: gr.Checkbox  # with logins on: the registered model is everyone's, not only its owner's
    starts: OneStartAtATime = dataclasses.field(default_factory=OneStartAtATime)  # one click, one run (once.py)
    publish: Optional[PublishPanel] = None  # the finished run's panel (its "Compare with base" button)

    @classmethod
    def build(cls, registry: Registry, service: Optional[TrainingService] = None) -> "TrainTab":
        service = service or TrainingService(registry)
        first = RECIPES[TASKS[0]]
        gr.Markdown(t("train_intro"))
        with gr.Row():
            task = gr.Radio([(text(f"train_task_{name}"), name) for name in TASKS], value=first.task,
                            label=t("task"), elem_id="train-task")
            bases = _base_choices(registry, first.task)
            base = gr.Dropdown(bases, value=bases[0][1] if bases else None, label=t("train_base"),
                               elem_id="train-base", info=t("train_base_info"))
            live_choices(base, lambda chosen: _base_choices(registry, chosen), inputs=[task])
            method = gr.Radio([(text("train_method_full"), "full"), ("LoRA", "lora"), ("QLoRA (4-bit, CUDA)", "qlora")],
                              value=first.default_method, label=t("train_method"), elem_id="train-method",
                              info=t("train_method_info"))
        with gr.Row():
            data = gr.File(label=t("train_data"), file_types=[".csv", ".jsonl", ".parquet"],
                           elem_id="train-data")
            validation = gr.File(label=t("train_validation"),
                                 file_types=[".csv", ".jsonl", ".parquet"], elem_id="train-validation")
            saved = gr.Dropdown([], label=t("train_saved"), elem_id="train-saved",
                                info=t("train_saved_info"))
        with gr.Row():
            columns = {field.name: gr.Dropdown([], label=_column_label(field),
                                               elem_id=f"train-{field.name.removesuffix('_column')}-column",
                                               visible=field.name in {own.name for own in first.columns})
                       for field in COLUMNS}
        with gr.Accordion(t("train_hyperparameters"), open=False):
            with gr.Row():
                numbers = tuple(gr.Number(value=default, label=label, info=tip, elem_id=f"train-{name}",
                                          min_width=160, visible=name not in TASK_NUMBERS or name in first.settings)
                                for name, label, default, tip in HYPERPARAMETERS)
            with gr.Row():
                register_as = gr.Textbox(label=t("train_register_as"), elem_id="train-register-as",
                                         info=t("train_register_as_info"), scale=3)
                share = gr.Checkbox(label=t("train_share"), info=t("train_share_info"), value=False,
                                    elem_id="train-share", scale=2)
        with gr.Row():
            check = gr.Button(t("train_check"), elem_id="train-check")
            start = gr.Button(t("train_start"), variant="primary", elem_id="train-start")
            stop = gr.Button(t("stop"), variant="stop", elem_id="train-stop")
            resume = gr.Button(t("train_resume"), elem_id="train-resume")
        plan_text = gr.Markdown("", elem_id="train-plan")
        preview = gr.HighlightedText(label=t("train_preview"),
                                     color_map={"loss": "green"}, elem_id="train-preview", combine_adjacent=True)
        status = gr.Markdown("", elem_id="train-status")
        plot = gr.LinePlot(curves(None), x="step", y="loss", color="series", label=t("train_loss"),
                           elem_id="train-plot",
                           height=280)
        # The tasks' own curves (DPO's rewards), shown for a run of a task that has them (task_curves).
        task_series = next((recipe.curves for recipe in RECIPES.values() if recipe.curves), ())
        task_plot = gr.LinePlot(curves(None, task_series, "value"), x="step", y="value", color="series",
                                label=t("train_rewards"), elem_id="train-task-plot", height=240, visible=False)
        log = gr.Textbox(label=t("train_log"), lines=8, max_lines=8, autoscroll=True, elem_id="train-log",
                         interactive=False)
        with gr.Accordion(t("train_runs"), open=True):
            runs = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, elem_id="train-runs", max_chars=60)
            with gr.Row():
                reopen_id = gr.Dropdown([], label=t("train_run"), elem_id="train-run-select", scale=3)
                reopen = gr.Button(t("open"), elem_id="train-run-open", scale=1)
                refresh = gr.Button(t("refresh"), elem_id="train-runs-refresh", scale=1)
        run_id = gr.State(None)
        tab = cls(registry, service, task, base, data, validation, columns, method, register_as, numbers, run_id,
                  saved, share)
        # merge, download, push a finished run; compare it with its base
        tab = dataclasses.replace(tab, publish=PublishPanel.build(service, run_id, tab._run_dir, may_start))
        timer = gr.Timer(REFRESH_S, active=False)
        pickers = list(columns.values())

        gr.on(None, tab.saved_choices, outputs=saved, **ui_event(plan_text))  # no triggers: on page load, per user
        saved.input(tab.on_saved, inputs=[task, saved], outputs=[*pickers, plan_text, preview],
                    **ui_event(plan_text))
        task.change(tab.on_task, inputs=[task, data, saved], outputs=[base, method, *pickers, *numbers],
                    **ui_event(plan_text, queue=False))
        data.change(tab.on_data, inputs=[task, data], outputs=[*pickers, plan_text, preview],
                    **ui_event(plan_text))
        check.click(tab.check, inputs=tab.form, outputs=[plan_text, preview], **ui_event(plan_text, progress=True))
        # Start is busy (not clickable) while its start is in flight: a double click started two runs.
        instant = ui_event(status, queue=False)
        start.click(lambda: gr.Button(interactive=False), outputs=start, **instant).then(
            tab.start, inputs=tab.form, outputs=[run_id, status, plot, log, timer, plan_text, preview, task_plot],
            **ui_event(status, progress=True)).then(lambda: gr.Button(interactive=True), outputs=start, **instant)
        stop.click(tab.stop, inputs=run_id, outputs=status, **ui_event(status))
        resume.click(tab.resume, inputs=run_id, outputs=[status, timer], **ui_event(status))
        timer.tick(tab.refresh, inputs=run_id, outputs=[status, plot, log, timer, runs, reopen_id, task_plot],
                   **ui_event(status))
        reopen.click(tab.open_run, inputs=reopen_id, outputs=[run_id, status, plot, log, timer, task_plot],
                     **ui_event(status))
        refresh.click(tab.table, outputs=[runs, reopen_id], **ui_event(status))
        # On page load, per user: the past runs, with headers in the page's language (built, they are English).
        gr.on(None, tab.table, outputs=[runs, reopen_id], **ui_event(runs, queue=False))
        return tab

    @property
    def form(self) -> set:
        return {self.task, self.base, self.data, self.validation, *self.columns.values(), self.method,
                self.register_as, self.saved, self.share, *self.numbers}

    # --------------------------------------------------------------------------------------- handlers

    @handle_errors
    def on_task(self, task: str, data: Optional[str], saved: Optional[str] = None,
                request: Optional[gr.Request] = None) -> tuple:
        choices = _base_choices(self.registry, task)
        if not data and saved:
            data = str(store.dataset_path(_user(request), saved))
        columns = self._column_updates(task, data)
        recipe = recipe_for(task)
        numbers = [gr.update(visible=name not in TASK_NUMBERS or name in recipe.settings)
                   for name, _, _, _ in HYPERPARAMETERS]
        return (gr.update(choices=choices, value=choices[0][1] if choices else None),
                gr.update(value=recipe.default_method), *columns, *numbers)

    @handle_errors
    def on_data(self, task: str, data: Optional[str]) -> tuple:
        return (*self._column_updates(task, data), "", None)  # no stale preview next to new data

    @handle_errors
    def saved_choices(self, request: gr.Request) -> Any:
        """The caller's saved datasets (an admin's list has everyone's: backend/guard/user_space.py)."""
        return gr.update(choices=[info.name for info in store.list_datasets(_user(request))], value=None)

    @handle_errors
    def saved_refresh(self, current: Optional[str], request: gr.Request) -> Any:
        """The list again when the tab is opened (a dataset built on the Data tab since), keeping the pick."""
        names = [info.name for info in store.list_datasets(_user(request))]
        return gr.update(choices=names, value=current if current in names else None)

    @handle_errors
    def on_saved(self, task: str, name: Optional[str], request: gr.Request) -> tuple:
        data = str(store.dataset_path(_user(request), name)) if name else None
        return (*self._column_updates(task, data), "", None)

    def _column_updates(self, task: str, data: Optional[str]) -> list[Any]:
        """Each picker: the file's columns, a guessed choice, shown when the task reads that field."""
        columns = _columns_choices(data)
        own = {field.name: field for field in recipe_for(task).columns}
        guessed = {name: _guess(columns, *field.guesses) for name, field in own.items()}
        updates = []
        for field in COLUMNS:
            mine = own.get(field.name)
            value = None
            if mine is not None and not (mine.yields_to and guessed.get(mine.yields_to)):
                value = guessed[field.name]
            updates.append(gr.update(choices=columns, value=value, visible=mine is not None))
        return updates

    def config_from(self, values: dict, request: Optional[gr.Request], keep: bool = False) -> Any:
        task = values[self.task]
        user = _user(request)
        saved = None if values[self.data] else values[self.saved]
        if not values[self.data] and not saved:
            raise refuse("pick_training_data", "data")
        if not values[self.base]:
            raise refuse("pick_base", "base")
        validation = values[self.validation]
        if saved:  # already in the user's own folder: used where it is
            data = str(store.dataset_path(user, saved))
            info = next(info for info in store.list_datasets(user) if info.name == saved)
            if not validation and "validation" in info.files:
                validation = str(info.files["validation"])
        else:
            data = keep_upload(values[self.data], user) if keep else values[self.data]
            if validation and keep:
                validation = keep_upload(validation, user)
        settings: dict[str, Any] = {"task": task, **self.service.base_settings(values[self.base], task,
                                                                                allow_paths=False), "data": data,
                                    "validation": validation or None, "method": values[self.method],
                                    "register_as": (values[self.register_as] or "").strip() or None,
                                    "share": bool(values[self.share])}
        picked = {name: values[component] for name, component in self.columns.items()}
        for field in recipe_for(task).columns:  # a field that yields to a picked one stays out (sft: messages)
            if picked[field.name] and not (field.yields_to and picked[field.yields_to]):
                settings[field.name] = picked[field.name]
        recipe = recipe_for(task)
        for (name, _, default, _), component in zip(HYPERPARAMETERS, self.numbers):
            if name in TASK_NUMBERS and name not in recipe.settings:
                continue  # another task's setting: its default stays
            value = values[component]
            settings[name] = default if value is None else (int(value) if isinstance(default, int) else value)
        return parse_train_config(settings, "train")

    @handle_errors
    def check(self, values: dict, request: gr.Request) -> tuple:
        plan = self.service.plan(self.config_from(values, request))
        return html.escape(plan.describe()), _highlight(plan.preview.segments)

    @handle_errors
    def start(self, values: dict, request: gr.Request) -> tuple:
        may_start(request)
        with self.starts.starting(_page(request)):  # a second start from this page, at once: refused
            config = self.config_from(values, request, keep=True)
            plan = self.service.plan(config)
            run_dir = self.service.start(config, _user(request), plan=plan)
        info = self.service.info(run_dir)
        return (run_dir.name, progress_text(run_dir, info), curves(run_dir), "", gr.Timer(active=True),
                html.escape(plan.describe()), _highlight(plan.preview.segments), task_curves(run_dir, config.task))

    def _run_dir(self, run_id: Optional[str], request: Optional[gr.Request]) -> Path:
        if not run_id:
            raise refuse("pick_run", "run")
        # The service's root, the one its runs are created and listed under (else $WORKBENCH_RUNS_DIR).
        return user_space.resolve_owned("train", _user(request), run_id, root=self.service.root)

    @handle_errors
    def stop(self, run_id: Optional[str], request: gr.Request) -> str:
        run_dir = self._run_dir(run_id, request)
        return f"{html.escape(self.service.stop(run_dir))} ({run_dir.name})"

    @handle_errors
    def resume(self, run_id: Optional[str], request: gr.Request) -> tuple:
        may_start(request)
        run_dir = self._run_dir(run_id, request)
        position = self.service.resume(run_dir)
        where = say("train_queued", position=position) if position else say("train_resuming")
        return f"{where} ({run_dir.name})", gr.Timer(active=True)

    def refresh(self, run_id: Optional[str], request: gr.Request) -> tuple:
        if not run_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip()
        run_dir = self._run_dir(run_id, request)
        info = self.service.info(run_dir)
        finished = info.status in runfiles.FINAL_STATUSES and info.run_id not in self.service.runs.queue()
        table = self.table(request) if finished else (gr.skip(), gr.skip())
        return (progress_text(run_dir, info), curves(run_dir), runfiles.tail(run_dir / runfiles.LOG, 8000),
                gr.Timer(active=not finished), *table, task_curves(run_dir, info.task))

    @handle_errors
    def open_run(self, run_id: Optional[str], request: gr.Request) -> tuple:
        run_dir = self._run_dir(run_id, request)
        info = self.service.info(run_dir)
        return (run_dir.name, progress_text(run_dir, info), curves(run_dir),
                runfiles.tail(run_dir / runfiles.LOG, 8000), gr.Timer(active=info.status in ("queued", "running")),
                task_curves(run_dir, info.task))

    def table(self, request: Optional[gr.Request] = None) -> tuple:
        runs = self.service.runs.list_runs(_user(request), self.service.root)
        rows = [[run.run_id, run.status, run.task, run.base, f"{run.step}/{run.max_steps}" if run.max_steps else "",
                 _score(run.final), run.registered_as or "", reason(run)[:120]] for run in runs]
        ids = [run.run_id for run in runs]
        return (headed({"headers": RUN_COLUMNS, "data": rows}, request=request),
                gr.update(choices=ids, value=ids[0] if ids else None))


def _score(final: dict) -> str:
    for key in ("accuracy", "rewards/accuracies", "loss"):  # classification, dpo, and every task's loss
        if key in final:
            return f"{final[key]:.3f}"
    return ""


def _highlight(segments: list[tuple[str, bool]]) -> list[tuple[str, Optional[str]]]:
    return [(text, "loss" if loss else None) for text, loss in segments]


def _base_choices(registry: Registry, task: str) -> list[tuple[str, str]]:
    """Local models that can start a run of `task`, fine-tuned ones included (continued training); an SFT
    run's LoRA adapter continues as an adapter, so adapters are offered for SFT only."""
    wanted = recipe_for(task).base_tasks
    return [(spec.display_name, spec.id) for spec in registry.specs()
            if spec.backend == "transformers" and (not spec.adapter or task == "sft")
            and set(wanted) & set(spec.tasks)]
