"""The shape of an evaluation run's results.json as written and read back (`RunResult.to_dict` / `from_dict`),
and the JSON conversions both directions use: NaN and infinities are written as null and read back as NaN."""

from __future__ import annotations

import math
from typing import Literal, Mapping, Optional, TypedDict

from backend.core.json_types import JSONObject, JSONValue
from backend.evaluation.data import EvalTask
from backend.evaluation.pairwise import PairwiseFile

ModelStatus = Literal["complete", "cancelled", "failed", "skipped"]


class ModelResultFile(TypedDict, total=False):
    """A model's entry in results.json (`ModelResult.to_dict()`; NaN and infinities written as null)."""

    status: ModelStatus
    metrics: dict[str, Optional[float]]
    intervals: dict[str, list[Optional[float]]]
    completed: int
    seconds: float
    error: Optional[str]
    notices: list[str]
    details: JSONObject
    predictions: list[Optional[str]]
    example_scores: dict[str, list[Optional[float]]]


class ExamplesFile(TypedDict, total=False):
    rows: list[int]
    inputs: list[str]
    references: list[str]
    conversations: Optional[list[list[dict[str, str]]]]


class RunResultFile(TypedDict, total=False):
    """results.json: `RunResult.to_dict()` as written, read back by `RunResult.from_dict`."""

    task: EvalTask
    run_id: str
    created: str
    cancelled: bool
    seconds: float
    data: str  # the data source described
    config: JSONObject  # EvalConfig.to_dict()
    notices: list[str]
    models: dict[str, ModelResultFile]
    examples: ExamplesFile
    comparison: Optional[PairwiseFile]


def json_safe(value: object) -> JSONValue:
    """NaN and infinities are not JSON: they become null (read back as NaN). A value JSON has no form for is a
    TypeError here, as it would be in `json.dumps`."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return json_object_of(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if value is None or isinstance(value, (str, int)):
        return value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_object_of(values: Mapping[object, object]) -> JSONObject:
    return {str(key): json_safe(item) for key, item in values.items()}


def metric_float(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)  # a metric value: a number or None


def metric_floats(values: Mapping[str, Optional[float]]) -> dict[str, float]:
    return {key: metric_float(value) for key, value in values.items()}
