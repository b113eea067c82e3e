"""What an evaluation run is asked to do, what it reports while running, and what it produces.

Plain data with JSON round trips (results.json is `RunResult.to_dict()`), and tables (pandas) for a UI.
Nothing here imports torch or `evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, TypedDict, Unpack

from backend.core.error_codes import refuse
from backend.core.json_types import JSONObject, json_list, json_object
from backend.evaluation.data import EVAL_TASKS, ColumnMapping, DataSource, EvalTask, Examples
from backend.evaluation.judge import JUDGE_MAX_NEW_TOKENS, RUBRIC_SLOTS, check_rubric
from backend.evaluation.metrics import HEADLINE, LOWER_IS_BETTER
from backend.evaluation.pairwise import PAIR_SLOTS, PairwiseSummary
from backend.evaluation.result_files import ModelResultFile, ModelStatus, RunResultFile, json_object_of, \
    metric_float, metric_floats
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

PREDICTIONS_ID = "predictions"  # the "model" id of predictions read from the file
DEFAULT_PROMPT_TEMPLATE = "{input}"
INPUT_SLOT = "{input}"
MAX_BATCH_SIZE = 256


# Resamples for the intervals: 10,000 gives percentile intervals stable to about 0.001; more only costs time
# (20,000 took 38 s of CPU on a 2,000-example run).
MAX_BOOTSTRAP = 10_000


@dataclass(frozen=True)
class EvalConfig:
    """One run: the task, the data and its columns, the models (none: score the file's predictions column)."""

    task: EvalTask
    data: DataSource
    columns: ColumnMapping
    models: tuple[str, ...] = ()
    # Generation: each input becomes a prompt through this template. Classification with a chat/generate model
    # (label scoring): the prompt the labels follow; None means that scorer's own default.
    prompt_template: Optional[str] = None
    # Generation with a chat model: wrap the prompt as a user message in the model's chat template.
    # None: yes for models whose tasks include `chat`, no for `generate`-only models.
    chat_template: Optional[bool] = None
    max_new_tokens: int = 64
    batch_size: int = 8
    limit: Optional[int] = None
    seed: Optional[int] = None  # sampling of `limit` rows; also seeds the bootstrap
    bootstrap: int = 1000  # resamples for the confidence intervals; 0 turns them off
    confidence: float = 0.95
    classification_mode: Optional[str] = None  # supervised / zero_shot / llm; None: what each model does
    source_language: str = ""  # translation: the pair asked of a `translate` model (e.g. en, de)
    target_language: str = ""
    # ROUGE with Porter stemming; off by default, as in `evaluate`'s rouge (use_stemmer=False).
    rouge_stemmer: bool = False
    # Generation: a registry model that grades every reply against its reference (backend/evaluation/judge.py),
    # and with two models compares them in both orders (pairwise.py); None: no judge. Rubrics: None = defaults.
    judge: Optional[str] = None
    judge_rubric: Optional[str] = None
    pair_rubric: Optional[str] = None
    judge_max_new_tokens: int = JUDGE_MAX_NEW_TOKENS  # the judge's answer: a score (or winner) line and a reason

    def metric_options(self) -> dict[str, dict[str, object]]:
        """Keyword options for metric modules, by module name (backend/evaluation/metrics), from this run."""
        return {"rouge": {"use_stemmer": self.rouge_stemmer}}

    @property
    def scores_file_predictions(self) -> bool:
        return not self.models and bool(self.columns.predictions)

    def model_ids(self) -> tuple[str, ...]:
        return self.models or ((PREDICTIONS_ID,) if self.columns.predictions else ())

    def validated(self) -> "EvalConfig":
        """Returns self, or raises InvalidInputError naming the field (no data or model touched)."""
        if self.task not in EVAL_TASKS:
            raise InvalidInputError(f"task: must be one of {', '.join(EVAL_TASKS)}, got {self.task!r}", field="task")
        if self.models and self.columns.predictions:
            raise InvalidInputError("models: give models to run, or a predictions column to score, not both",
                                    field="models")
        if not self.models and not self.columns.predictions:
            raise refuse("no_models", "models")
        if len(set(self.models)) != len(self.models):
            raise InvalidInputError("models: a model is listed twice", field="models")
        if self.task == "perplexity" and self.columns.predictions:
            raise InvalidInputError("predictions column: perplexity is measured with a model; give --model")
        template = self.prompt_template
        if template is not None and INPUT_SLOT not in template:
            raise InvalidInputError(f"prompt template: must contain {INPUT_SLOT} where the input goes, "
                                    f"got {template!r}")
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_int("max_new_tokens", self.max_new_tokens, 1, 8192)
        _check_int("bootstrap", self.bootstrap, 0, MAX_BOOTSTRAP)
        if self.limit is not None:
            _check_int("limit", self.limit, 1, 10**9)
        if not isinstance(self.rouge_stemmer, bool):
            raise InvalidInputError(f"rouge_stemmer: must be true or false, got {self.rouge_stemmer!r}",
                                    field="rouge_stemmer")
        if self.judge is not None:
            if self.task != "generation":
                raise InvalidInputError(f"judge: a judge grades generated replies, not {self.task}", field="judge")
            if self.judge in self.models:
                raise refuse("judge_is_candidate", "judge", model=self.judge)
            check_rubric(self.judge_rubric, RUBRIC_SLOTS, "judge_rubric")
            check_rubric(self.pair_rubric, PAIR_SLOTS, "pair_rubric")
            _check_int("judge_max_new_tokens", self.judge_max_new_tokens, 1, 8192)
        if not 0.5 <= self.confidence < 1:
            raise refuse("in_range", "confidence", low=0.5, high=1, range="[0.5, 1)", got=self.confidence)
        return self

    def with_overrides(self, **changes: Unpack[EvalConfigChanges]) -> "EvalConfig":
        return replace(self, **changes).validated()

    def to_dict(self) -> JSONObject:
        return {
            "task": self.task,
            "data": self.data.to_dict(),
            "columns": self.columns.to_dict(),
            "models": [*self.models],
            "prompt_template": self.prompt_template,
            "chat_template": self.chat_template,
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
            "limit": self.limit,
            "seed": self.seed,
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "classification_mode": self.classification_mode,
            "rouge_stemmer": self.rouge_stemmer,
            "source_language": self.source_language,
            "target_language": self.target_language,
            "judge": self.judge,
            "judge_rubric": self.judge_rubric,
            "pair_rubric": self.pair_rubric,
            "judge_max_new_tokens": self.judge_max_new_tokens,
        }

    @staticmethod
    def from_dict(data: JSONObject) -> "EvalConfig":
        # The other fields as `to_dict` wrote them (a run's own results.json), passed on as they are.
        plain: dict[str, Any] = {key: value for key, value in data.items() if key not in ("data", "columns", "models")}
        # Runs saved before the option existed were scored with stemming (the app's default then).
        plain.setdefault("rouge_stemmer", data.get("task") in ("generation", "summarization"))
        return EvalConfig(data=DataSource.from_dict(json_object(data.get("data"))),
                          columns=ColumnMapping.from_dict(json_object(data.get("columns"))),
                          models=tuple(str(model) for model in json_list(data.get("models"))), **plain)


class EvalConfigChanges(TypedDict, total=False):
    """Fields `EvalConfig.with_overrides` may set (every field of EvalConfig)."""

    task: EvalTask
    data: DataSource
    columns: ColumnMapping
    models: tuple[str, ...]
    prompt_template: Optional[str]
    chat_template: Optional[bool]
    max_new_tokens: int
    batch_size: int
    limit: Optional[int]
    seed: Optional[int]
    bootstrap: int
    confidence: float
    classification_mode: Optional[str]
    source_language: str
    target_language: str
    rouge_stemmer: bool
    judge: Optional[str]
    judge_rubric: Optional[str]
    pair_rubric: Optional[str]
    judge_max_new_tokens: int


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise refuse("whole_between", name, low=low, high=high, got=value)


@dataclass(frozen=True)
class Progress:
    """Reported after every batch. `done` / `total` count examples over all models of the run."""

    done: int
    total: int
    model_id: str
    model_done: int
    model_total: int
    elapsed_s: float
    eta_s: Optional[float]  # None until the first batch has given a speed
    message: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class ModelResult:
    """One model's part of a run. Lists are aligned with the run's examples; None / NaN where not done."""

    model_id: str
    status: ModelStatus
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    predictions: list[Optional[str]] = field(default_factory=list)
    example_scores: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # classification: per_class, confusion_matrix
    completed: int = 0
    seconds: float = 0.0
    error: Optional[str] = None
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> JSONObject:
        return json_object_of({
            "status": self.status,
            "metrics": self.metrics,
            "intervals": {key: list(value) for key, value in self.intervals.items()},
            "completed": self.completed,
            "seconds": self.seconds,
            "error": self.error,
            "notices": self.notices,
            "details": self.details,
            "predictions": self.predictions,
            "example_scores": self.example_scores,
        })

    @staticmethod
    def from_dict(model_id: str, data: ModelResultFile) -> "ModelResult":
        return ModelResult(
            model_id=model_id,
            status=data.get("status", "complete"),
            metrics=metric_floats(data.get("metrics") or {}),
            intervals={key: (metric_float(value[0]), metric_float(value[1])) for key, value in
                       (data.get("intervals") or {}).items()},
            predictions=list(data.get("predictions") or []),
            example_scores={key: [metric_float(v) for v in values] for key, values in
                            (data.get("example_scores") or {}).items()},
            details=data.get("details") or {},
            completed=int(data.get("completed") or 0),
            seconds=float(data.get("seconds") or 0.0),
            error=data.get("error"),
            notices=list(data.get("notices") or []),
        )


@dataclass
class RunResult:
    """A whole run: its configuration, its examples and one `ModelResult` per model."""

    run_id: str
    created: str  # ISO 8601, UTC
    config: EvalConfig
    examples: Examples
    models: dict[str, ModelResult]
    cancelled: bool = False
    seconds: float = 0.0
    path: Optional[Path] = None  # the run's folder once saved
    comparison: Optional[PairwiseSummary] = None  # two models and a judge: A (the first model) vs B

    @property
    def task(self) -> EvalTask:
        return self.config.task

    @property
    def failed(self) -> list[ModelResult]:
        return [result for result in self.models.values() if result.status == "failed"]

    def leaderboard(self, intervals: bool = True) -> "pd.DataFrame":
        """One row per model: status, examples scored, every metric (and its interval); best first."""
        import pandas as pd

        rows = []
        for result in self.models.values():
            row: dict[str, str | float] = {"model": result.model_id, "status": result.status,
                                           "examples": result.completed}
            for name, value in result.metrics.items():
                row[name] = value
                if intervals and name in result.intervals:
                    row[f"{name}_low"], row[f"{name}_high"] = result.intervals[name]
            rows.append(row)
        frame = pd.DataFrame(rows)
        headline = HEADLINE[self.task]
        if headline in frame.columns:
            frame = frame.sort_values(headline, ascending=headline in LOWER_IS_BETTER, na_position="last",
                                      kind="stable").reset_index(drop=True)
        return frame

    def example_table(self, model_id: Optional[str] = None) -> "pd.DataFrame":
        """Per example and model: row, input, reference, prediction and per-example scores (long format)."""
        import pandas as pd

        frames = []
        for result in self.models.values():
            if model_id is not None and result.model_id != model_id:
                continue
            count = len(self.examples)
            columns: dict[str, Sequence[object]] = {
                "model": [result.model_id] * count,
                "row": self.examples.rows,
                "input": self.examples.inputs,
                "reference": self.examples.references,
                "prediction": (result.predictions + [None] * count)[:count],
            }
            for name, values in result.example_scores.items():
                columns[name] = values
            frames.append(pd.DataFrame(columns))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["model", "row", "input", "reference", "prediction"])

    def to_dict(self) -> JSONObject:
        """The results.json shape (RunResultFile): {"task", "models": {id: {"metrics": ...}}, plus the rest of the
        run}."""
        return json_object_of({
            "task": self.task,
            "run_id": self.run_id,
            "created": self.created,
            "cancelled": self.cancelled,
            "seconds": self.seconds,
            "data": self.config.data.describe(),
            "config": self.config.to_dict(),
            "notices": self.examples.notices,
            "models": {model_id: result.to_dict() for model_id, result in self.models.items()},
            "examples": {"rows": self.examples.rows, "inputs": self.examples.inputs,
                         "references": self.examples.references, "conversations": self.examples.conversations},
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
        })

    @staticmethod
    def from_dict(data: RunResultFile, path: Optional[Path] = None) -> "RunResult":
        examples = data.get("examples") or {}
        return RunResult(
            run_id=data["run_id"],
            created=data.get("created", ""),
            config=EvalConfig.from_dict(data["config"]),
            examples=Examples(rows=list(examples.get("rows") or []), inputs=list(examples.get("inputs") or []),
                              references=list(examples.get("references") or []),
                              notices=list(data.get("notices") or []),
                              conversations=examples.get("conversations")),
            models={model_id: ModelResult.from_dict(model_id, value)
                    for model_id, value in (data.get("models") or {}).items()},
            cancelled=bool(data.get("cancelled")),
            seconds=float(data.get("seconds") or 0.0),
            path=path,
            comparison=PairwiseSummary.from_dict(pair) if (pair := data.get("comparison")) else None,
        )
