"""Evaluation runs: one dataset, one task, one or more models (or the file's own predictions) -> a scored run.

    run = run_evaluation(config, registry, progress=on_progress, cancel=stop_event)
    run.leaderboard()      # one row per model, metrics with 95% intervals
    run.example_table()    # input, reference, prediction and per-example scores

Everything that can be checked without a model is checked first (columns, model ids, what each model can do,
labels a classifier does not know), so a mistake costs no model load. Models then run one after another, in
batches; `progress` is called after every batch with counts and an ETA, and setting `cancel` stops at the next
decode step (generation) or batch, keeps every finished example, scores those and saves the run marked as
cancelled (later models are marked skipped).

`EvaluationJob` runs the same thing in a background thread for a UI that polls.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence, cast

from backend.core.error_codes import refuse
from backend.evaluation import scoring, store
from backend.evaluation.data import Examples, load_table, select_examples
from backend.evaluation.labels import align_references
from backend.evaluation.task_inference import PIPELINE_EVAL_TASKS, run_pipeline_task
from backend.evaluation.types import INPUT_SLOT, PREDICTIONS_ID, EvalConfig, ModelResult, Progress, RunResult
from backend.core.types import InvalidInputError, Task, UnsupportedTaskError, WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from backend.core.registry import Registry

ProgressCallback = Callable[[Progress], None]
DEFAULT_RUNS_DIR = "runs"


def run_evaluation(
    config: EvalConfig,
    registry: Optional["Registry"] = None,
    *,
    table: Optional["pd.DataFrame"] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[threading.Event] = None,
    runs_dir: Optional[str | Path] = DEFAULT_RUNS_DIR,
    out_dir: Optional[str | Path] = None,
) -> RunResult:
    """Runs `config` and saves it to `out_dir`, else to a new folder under `runs_dir` (None and None: not saved).

    `table` is the data already loaded (a UI that showed a preview); otherwise `config.data` is read.
    Raises `WorkbenchError` subclasses for bad input; a model that fails while running is reported in its
    `ModelResult` (status "failed") and the other models still run.
    """
    config = config.validated()
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    if config.models and registry is None:
        raise InvalidInputError("models: running models needs a registry (models.yaml)", field="models")
    models = cast("Registry", registry)  # there whenever a model runs (a file's own predictions need none)
    for model_id in config.models:
        _check_model(models, model_id, config)
    if config.judge:
        from backend.evaluation.compare import check_judge

        check_judge(models, config)
    data = table if table is not None else load_table(config.data)
    examples = select_examples(data, config.task, config.columns, config.limit, config.seed)
    references = {model_id: _references_for(models, model_id, config, examples) for model_id in config.models}
    tracker = _Tracker(len(examples) * len(config.model_ids()), progress)
    results: dict[str, ModelResult] = {}
    for model_id in config.model_ids():
        if cancel.is_set():
            results[model_id] = ModelResult(model_id, "skipped", predictions=[None] * len(examples))
            continue
        tracker.start_model(model_id, len(examples))
        results[model_id] = _run_model(models, config, examples, model_id, references.get(model_id), tracker,
                                       cancel)
    comparison = None
    if config.judge and not cancel.is_set():
        from backend.evaluation.compare import judge_models

        try:
            comparison = judge_models(models, config, examples, results, cancel, tracker.note)
        except Exception as error:  # noqa: BLE001 - a judge that fails to load must not lose the models' results
            message = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"
            for result in results.values():
                result.notices.append(f"the judge '{config.judge}' failed: {message}")
    run = RunResult(run_id=store.new_run_id(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    config=config, examples=examples, models=results, cancelled=cancel.is_set(),
                    seconds=time.perf_counter() - started, comparison=comparison)
    if out_dir is not None or runs_dir is not None:
        run.path = store.save_run(run, Path(out_dir) if out_dir is not None else Path(runs_dir or "") / run.run_id)
    return run


class EvaluationJob:
    """`run_evaluation` in a daemon thread: poll `progress`, call `cancel()`, then `result()`."""

    def __init__(self, config: EvalConfig, registry: Optional["Registry"] = None,
                 progress: Optional[ProgressCallback] = None, *, table: Optional["pd.DataFrame"] = None,
                 runs_dir: Optional[str | Path] = DEFAULT_RUNS_DIR, out_dir: Optional[str | Path] = None) -> None:
        """`table`, `runs_dir` and `out_dir` go to `run_evaluation`; `progress` is also called, if given."""
        self.cancel_event = threading.Event()
        self.progress: Optional[Progress] = None
        self.error: Optional[BaseException] = None
        self._result: Optional[RunResult] = None

        def record(update: Progress) -> None:
            self.progress = update
            if progress is not None:
                progress(update)

        def work() -> None:
            try:
                self._result = run_evaluation(config, registry, table=table, progress=record, cancel=self.cancel_event,
                                              runs_dir=runs_dir, out_dir=out_dir)
            except BaseException as error:  # noqa: BLE001 - handed to whoever calls result()
                self.error = error

        self._thread = threading.Thread(target=work, name="evaluation", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def cancel(self) -> None:
        self.cancel_event.set()

    def result(self, timeout: Optional[float] = None) -> RunResult:
        """The finished run (after a cancel: what was done); re-raises the run's error."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the evaluation is still running")
        if self.error is not None:
            raise self.error
        assert self._result is not None
        return self._result


# ------------------------------------------------------------------------------------------ checks


def _check_model(registry: Registry, model_id: str, config: EvalConfig) -> None:
    """The model exists and can do the task (ModelNotFoundError names the models there are)."""
    spec = registry.spec(model_id)
    if config.task == "classification":
        from backend.services.classification import mode_for

        mode_for(registry, model_id, config.classification_mode)
    elif config.task in PIPELINE_EVAL_TASKS:
        registry.spec(model_id, PIPELINE_EVAL_TASKS[config.task])  # names the models that can
    elif not spec.is_generative:
        able = ", ".join(s.id for s in registry.specs() if s.is_generative) or "none"
        raise UnsupportedTaskError(f"model '{model_id}' cannot do {config.task} (its tasks: "
                                   f"{', '.join(spec.tasks)}); models that can: {able}")


def _references_for(registry: Registry, model_id: str, config: EvalConfig, examples: Examples) -> Optional[list[str]]:
    """Classification against a model's own labels: the references in its spelling, checked before loading."""
    if config.task != "classification":
        return None
    from backend.services.classification import mode_for
    from backend.core.config import read_checkpoint_config

    if mode_for(registry, model_id, config.classification_mode) != "supervised":
        if len(set(examples.references)) < 2:
            raise InvalidInputError(f"reference column: '{config.columns.reference}' holds a single label; "
                                    "scoring labels needs at least two")
        return [reference.strip() for reference in examples.references]
    id2label = read_checkpoint_config(registry.spec(model_id)).get("id2label") or {}
    if not id2label:
        return None  # not on this machine yet: checked against the loaded model instead
    known = [id2label[key] for key in sorted(id2label, key=int)]
    return align_references(examples.references, known, model_id, config.columns.reference)


# ------------------------------------------------------------------------------------------ one model


@dataclass
class _Outputs:
    """What a model produced, aligned with the examples; `done[i]` is False where a cancel came first."""

    done: list[bool]
    inputs: Mapping[str, Sequence[object]]  # the metric modules' inputs, for every example (only done ones are used)
    predictions: list[Optional[str]]
    labels: Optional[list[str]] = None
    extra_scores: dict[str, list[float]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def _run_model(registry: Registry, config: EvalConfig, examples: Examples, model_id: str,
               references: Optional[list[str]], tracker: "_Tracker", cancel: threading.Event) -> ModelResult:
    started = time.perf_counter()
    try:
        if model_id == PREDICTIONS_ID and config.scores_file_predictions:
            outputs = _file_predictions(config, examples, tracker)
        elif config.task == "generation":
            outputs = _generate(registry, config, examples, model_id, tracker, cancel)
        elif config.task == "perplexity":
            outputs = _perplexity(registry, config, examples, model_id, tracker, cancel)
        elif config.task in PIPELINE_EVAL_TASKS:
            finished, inputs, predictions, notices = run_pipeline_task(registry, config, examples, model_id,
                                                                       tracker.advance, cancel)
            outputs = _Outputs(done=finished, inputs=inputs, predictions=predictions, notices=notices)
        else:
            outputs = _classify(registry, config, examples, model_id, references, tracker, cancel)
        done = [index for index, finished in enumerate(outputs.done) if finished]
        scores = scoring.score(config.task, {key: [values[i] for i in done] for key, values in outputs.inputs.items()},
                               bootstrap=config.bootstrap, confidence=config.confidence, seed=config.seed,
                               labels=outputs.labels, cancel=cancel, on_resample=tracker.resampling,
                               options=config.metric_options())
    except Exception as error:  # noqa: BLE001 - one model failing (bad load, out of memory) must not lose the others
        message = str(error) if isinstance(error, WorkbenchError) else f"{type(error).__name__}: {error}"
        return ModelResult(model_id, "failed", predictions=[None] * len(examples), error=message,
                           seconds=time.perf_counter() - started)
    per_example = {**scores.example_scores, **outputs.extra_scores}
    return ModelResult(
        model_id=model_id,
        status="complete" if len(done) == len(examples) else "cancelled",
        metrics=scores.metrics,
        intervals=scores.intervals,
        predictions=outputs.predictions,
        example_scores={name: _spread(values, done, len(examples)) if len(values) == len(done) else values
                        for name, values in per_example.items()},
        details=scores.details,
        completed=len(done),
        seconds=time.perf_counter() - started,
        notices=[*outputs.notices, *scores.notices],
    )


def _spread(values: list[float], done: list[int], count: int) -> list[float]:
    """Per-example scores of the done examples, placed back among all examples (NaN where not done)."""
    full = [float("nan")] * count
    for index, value in zip(done, values):
        full[index] = value
    return full


def _file_predictions(config: EvalConfig, examples: Examples, tracker: "_Tracker") -> _Outputs:
    predictions = [prediction.strip() for prediction in examples.predictions or []]
    references = [reference.strip() for reference in examples.references]
    if config.task == "generation":  # texts are compared as written; labels ignore stray whitespace
        predictions, references = list(examples.predictions or []), list(examples.references)
    tracker.advance(len(examples))
    return _Outputs(done=[True] * len(examples), inputs={"predictions": predictions, "references": references},
                    predictions=list(predictions))


def _generate(registry: Registry, config: EvalConfig, examples: Examples, model_id: str, tracker: "_Tracker",
              cancel: threading.Event) -> _Outputs:
    from backend.evaluation.conversation import prompt_messages
    from backend.evaluation.inference import Prompt, generate_texts

    spec = registry.spec(model_id)
    task: Task = "generate" if "generate" in spec.tasks else "chat"
    chat = config.chat_template if config.chat_template is not None else "chat" in spec.tasks
    template = config.prompt_template or INPUT_SLOT
    # str.replace, not str.format: inputs and templates may hold other braces (JSON, code).
    texts = [template.replace(INPUT_SLOT, text) for text in examples.inputs]
    prompts: list[Prompt] = list(texts)
    if examples.conversations is not None:  # the turns before the input go through the chat template too
        if not chat:
            raise refuse("conversation_needs_chat", "conversation_column", model=model_id)
        asked = config.columns.input is not None
        prompts = [prompt_messages(history, text if asked else None)
                   for history, text in zip(examples.conversations, texts)]
    with registry.lease(model_id, task) as engine:
        predictions, notices = generate_texts(engine, prompts, max_new_tokens=config.max_new_tokens,
                                              batch_size=config.batch_size, chat=chat, cancel=cancel,
                                              on_batch=tracker.advance)
    done = [prediction is not None for prediction in predictions]
    return _Outputs(done=done, inputs={"predictions": [p or "" for p in predictions],
                                       "references": list(examples.references)},
                    predictions=predictions, notices=notices)


def _perplexity(registry: Registry, config: EvalConfig, examples: Examples, model_id: str, tracker: "_Tracker",
                cancel: threading.Event) -> _Outputs:
    from backend.evaluation.inference import text_log_likelihoods

    spec = registry.spec(model_id)
    with registry.lease(model_id, "generate" if "generate" in spec.tasks else "chat") as engine:
        scored, notices = text_log_likelihoods(engine, examples.inputs, batch_size=config.batch_size,
                                               cancel=cancel, on_batch=tracker.advance)
    return _Outputs(done=[value is not None for value in scored],
                    inputs={"nll": [value[0] if value else 0.0 for value in scored],
                            "tokens": [value[1] if value else 0 for value in scored]},
                    predictions=[None] * len(examples), notices=notices)


def _classify(registry: Registry, config: EvalConfig, examples: Examples, model_id: str,
              references: Optional[list[str]], tracker: "_Tracker", cancel: threading.Event) -> _Outputs:
    from backend.services.classification import DEFAULT_PROMPT_TEMPLATE, classify_texts, mode_for

    mode = mode_for(registry, model_id, config.classification_mode)
    candidates = sorted(set(references)) if mode != "supervised" and references else None
    prompt_template = DEFAULT_PROMPT_TEMPLATE
    if mode == "llm" and config.prompt_template:
        from backend.engines.label_scoring import TEXT_SLOT

        prompt_template = config.prompt_template.replace(INPUT_SLOT, TEXT_SLOT)
    reported = 0

    def on_progress(fraction: float, description: str) -> None:
        nonlocal reported
        now = round(fraction * len(examples))
        tracker.advance(now - reported)
        reported = now

    result = classify_texts(registry, model_id, list(examples.inputs), candidates, mode,
                            prompt_template=prompt_template, batch_size=config.batch_size, progress=on_progress,
                            cancel=cancel)
    labels = list(result.labels)
    if references is None:  # the labels were not known before loading: check them now
        references = align_references(examples.references, labels, model_id, config.columns.reference)
    count = len(examples)
    missing = count - result.completed
    predictions: list[Optional[str]] = [ranked[0].label for ranked in result.scores] + [None] * missing
    confidence = [ranked[0].score for ranked in result.scores] + [float("nan")] * missing
    return _Outputs(done=[index < result.completed for index in range(count)],
                    inputs={"predictions": [p or "" for p in predictions], "references": references},
                    predictions=predictions, labels=labels, extra_scores={"confidence": confidence},
                    notices=result.notices())


# ------------------------------------------------------------------------------------------ progress


class _Tracker:
    """Counts finished examples over the whole run and reports them with an ETA.

    The ETA uses the time between batches only: the wait for a model to load (before its first batch) says
    nothing about how fast the remaining examples will go.
    """

    def __init__(self, total: int, callback: Optional[ProgressCallback]) -> None:
        self.total = total
        self.callback = callback
        self.started = time.perf_counter()
        self.done = 0
        self.model_id = ""
        self.model_done = 0
        self.model_total = 0
        self._last_batch_end: Optional[float] = None
        self._busy_s = 0.0  # time spent on batches after each model's first one
        self._timed = 0  # examples finished in that time

    def start_model(self, model_id: str, count: int) -> None:
        self.model_id, self.model_done, self.model_total = model_id, 0, count
        self._last_batch_end = None
        loading = "scoring the file's predictions" if model_id == PREDICTIONS_ID else "loading the model if needed"
        self._report(f"{model_id}: starting ({loading})")

    def advance(self, count: int) -> None:
        if count <= 0:
            return
        now = time.perf_counter()
        if self._last_batch_end is not None:
            self._busy_s += now - self._last_batch_end
            self._timed += count
        self._last_batch_end = now
        self.done += count
        self.model_done += count
        self._report(f"{self.model_id}: {self.model_done:,} / {self.model_total:,} examples")

    def note(self, message: str) -> None:
        """A step after the models' examples (the judge's grading) that has no count of its own."""
        self._report(message)

    def resampling(self, done: int, total: int) -> None:
        """The bootstrap's progress (after the model's examples are all counted)."""
        self._report(f"{self.model_id}: confidence intervals, {done:,} / {total:,} resamples")

    def _report(self, message: str) -> None:
        if self.callback is None:
            return
        elapsed = time.perf_counter() - self.started
        remaining = self.total - self.done
        if self._timed:
            eta: Optional[float] = self._busy_s / self._timed * remaining
        else:
            eta = elapsed / self.done * remaining if self.done else None
        self.callback(Progress(done=self.done, total=self.total, model_id=self.model_id,
                               model_done=self.model_done, model_total=self.model_total, elapsed_s=elapsed,
                               eta_s=eta, message=message))
