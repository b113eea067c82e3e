""""Compare with base" on a finished run: what the Evaluate tab is prefilled with (`EvalPrefill`), from the run's
folder and the registry. Plain data, no widgets: the Evaluate tab turns it into its form's values
(ui/evaluate/tab.py `EvaluateTab.prefill`) and ui/__init__.py wires the Train tab's button to it.

The evaluation set is the run's own validation file (TrainConfig.validation). A run that split its validation rows
off the training data has no such file (the split is not stored), so the data is left to the user, who is told so.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import gradio as gr

from backend.core.config import read_checkpoint_config
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.data import store
from backend.evaluation.compare import base_of
from backend.evaluation.data import DataSource
from backend.evaluation.types import INPUT_SLOT
from backend.training import runfiles
from backend.training.config import TrainConfig, load_train_config
from backend.training.runs import RunInfo
from backend.training.service import TrainingService
from ui.common.components import ui_errors, ui_event
from ui.evaluate.forms import NONE, column_choices, task_labels
from ui.i18n.core import say

if TYPE_CHECKING:
    from ui.evaluate.tab import EvaluateTab

RunFolder = Callable[[Optional[str], Optional[gr.Request]], Path]  # the Train tab's owned-run lookup
CONCURRENCY_ID = "evaluation"  # the Evaluate tab's Run and this one click share one queue
CONCURRENCY_LIMIT = 4  # runs at once (each in its own thread; the registry serialises work per model)

# The evaluation task for a training task: a chat model trained with SFT or DPO is compared on its replies.
EVAL_TASKS = {"classification": "classification", "sft": "generation", "dpo": "generation"}


@dataclass(frozen=True)
class EvalPrefill:
    """The Evaluate form for one run: its model and base (compared), the task, the data and its columns."""

    run_id: str
    model: str  # the run's registered model
    base: str  # the model it was fine-tuned from
    task: str  # an evaluation task (EVAL_TASKS)
    data: Optional[str] = None  # the run's validation file; None: the user picks the data
    input_column: Optional[str] = None
    reference_column: Optional[str] = None

    @property
    def ready(self) -> bool:
        """Everything is known: the evaluation may start at once."""
        return self.data is not None


def prefill_for_run(registry: Registry, info: RunInfo, config: TrainConfig) -> EvalPrefill:
    """What "Compare with base" evaluates for the run `info` (its `config`); refuses a run with nothing to compare:
    not completed, not registered, no known base, or (a classifier) a base with other labels."""
    if info.status != "completed":
        raise refuse("compare_run_unfinished", "run", run=info.run_id, status=info.status)
    model = info.registered_as
    if not model or model not in {spec.id for spec in registry.specs()}:
        raise refuse("compare_run_unregistered", "run", run=info.run_id)
    base = base_of(registry, model)
    task = EVAL_TASKS.get(config.task)
    if task is None:
        raise refuse("compare_run_unregistered", "run", run=info.run_id)
    if task == "classification":
        ours, theirs = run_labels(info.run_dir), model_labels(registry, base)
        if not ours or ours != theirs:
            raise refuse("compare_labels_differ", "run", run=info.run_id, base=base,
                         labels=", ".join(sorted(ours)) or "?", base_labels=", ".join(sorted(theirs)) or "-")
        columns = (config.text_column, config.label_column)
    elif config.task == "dpo":  # the prompt, and the preferred reply as the reference
        columns = (config.prompt_column, config.chosen_column)
    else:  # sft: a prompt and a response column (a messages column: the Evaluate tab's guess)
        columns = (config.prompt_column, config.response_column)
    data = config.validation if config.validation and Path(config.validation).is_file() else None
    return EvalPrefill(run_id=info.run_id, model=model, base=base, task=task, data=data,
                       input_column=columns[0], reference_column=columns[1])


def _label_names(checkpoint: dict) -> set[str]:
    return {str(label).casefold() for label in (checkpoint.get("label2id") or {})}


def run_labels(run_dir: Path) -> set[str]:
    """The labels of a classifier run's model (a LoRA classifier is saved merged, so its config.json has them)."""
    try:
        return _label_names(json.loads((run_dir / runfiles.MODEL / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return set()


def model_labels(registry: Registry, model_id: str) -> set[str]:
    return _label_names(read_checkpoint_config(registry.spec(model_id)))


# ------------------------------------------------------------------------ the Evaluate form, and the wiring

def prefill_updates(tab: "EvaluateTab", prefill: EvalPrefill, request: Optional[gr.Request] = None) -> dict:
    """The Evaluate form's updates for `prefill`: its task, the run's model with "compare with base" on, the run's
    validation file loaded with the run's columns (or no data, and the user told to pick it), old results off."""
    form, judge = tab.form, tab.judge
    view = tab.ctl.inspect(DataSource(path=prefill.data), prefill.task) if prefill.data else None
    columns = view.columns if view is not None else []
    template = INPUT_SLOT if prefill.task == "generation" else ""
    labels = task_labels(prefill.task)
    key = "eval_prefill_ready" if view is not None else "eval_prefill_pick_data"
    note = say(key, request, model=prefill.model, base=prefill.base, run=prefill.run_id)
    info = note + ("\n\n" + view.describe() if view is not None else "")

    guess = view.guess if view is not None else None

    def pick(wanted: Optional[str], guessed: Optional[str]) -> Optional[str]:
        return wanted if wanted in columns else guessed

    return {
        **tab.data_updates(view),
        **tab.task_updates(prefill.task, False, [prefill.model], template, None, native_only=False),
        **judge.column_updates(columns, guess.conversation if guess else None, prefill.task),
        form.task: prefill.task,
        form.input_col: gr.Dropdown(choices=columns, value=pick(prefill.input_column, guess.input if guess else None),
                                    label=labels["input"]),
        form.reference_col: gr.Dropdown(choices=column_choices(columns) if columns else [],
                                        value=pick(prefill.reference_column, guess.reference if guess else None) or
                                        (NONE if columns else None), label=labels["reference"], visible=True),
        judge.with_base: True,
        tab.data.info: html.escape(info, quote=False),
        tab.progress: "", **tab.results.show(None), **tab.compare.show(None),
        # The saved datasets as they are now (one built since the page opened is among them), to pick the data.
        tab.data.saved: gr.Dropdown(choices=[saved.name for saved in store.list_datasets(
            getattr(request, "username", None))], value=None),
    }


def wire_compare_with_base(button: gr.Button, run_id: gr.State, run_folder: RunFolder, service: TrainingService,
                           tabs: gr.Tabs, tab: "EvaluateTab", evaluate_id: str) -> None:
    """One click on `button` (the Train tab's finished run `run_id`): the Evaluate tab (`evaluate_id` of `tabs`)
    prefilled to compare the run's model with its base, and run at once when the run has its validation file."""
    ready = gr.State(False)
    registry = tab.ctl.registry
    outputs = sorted({*tab.data_outputs, *tab.task_outputs, tab.form.task, tab.judge.with_base, tab.progress,
                      tab.data.saved, *tab.results.outputs, *tab.compare.outputs, ready, tabs}, key=id)

    @ui_errors
    def prefill(run: Optional[str], request: gr.Request) -> dict:
        if registry is None:
            raise refuse("pick_run", "run")
        run_dir = run_folder(run, request)
        chosen = prefill_for_run(registry, service.info(run_dir),
                                 load_train_config(run_dir / runfiles.CONFIG))
        return {**prefill_updates(tab, chosen, request), ready: chosen.ready, tabs: gr.Tabs(selected=evaluate_id)}

    def run_if_ready(data: dict, request: gr.Request) -> Iterator[dict]:
        if data[ready]:  # else the user picks the data and clicks Run
            yield from tab.on_run(data, request)

    button.click(prefill, inputs=run_id, outputs=outputs, **ui_event(tab.data.info)).success(
        run_if_ready, inputs=tab.form.inputs | tab.judge.inputs | tab.tasks.inputs | {ready},
        outputs=[tab.progress, *tab.results.outputs, *tab.compare.outputs, *tab.runs.outputs],
        concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(tab.progress))
