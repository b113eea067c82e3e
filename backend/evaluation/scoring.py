"""Scores one model's outputs: the task's metrics, per-example scores, and bootstrap confidence intervals.

The headline numbers come from each metric module's `compute` (the `evaluate` path). The intervals are a seeded
percentile bootstrap over examples: every resample draws example indices with replacement, and every metric is
recomputed from the resampled per-example statistics (for BLEU and chrF that re-sums n-gram counts, so a corpus
metric is recomputed, not averaged). All metrics share the same resamples.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from backend.evaluation.data import EvalTask
from backend.core.json_types import JSONObject
from backend.evaluation.metrics import TASK_METRICS, Aggregates, load_metric
from backend.guard.table_limits import TableLimits


@dataclass
class Scores:
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    example_scores: dict[str, list[float]] = field(default_factory=dict)
    details: JSONObject = field(default_factory=dict)  # a module's `report`: classification's per class table
    notices: list[str] = field(default_factory=list)


BOOTSTRAP_REPORT_EVERY = 100  # resamples between progress reports


def score(
    task: EvalTask,
    inputs: Mapping[str, Sequence[object]],
    *,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: Optional[int] = 0,
    labels: Optional[Sequence[str]] = None,
    cancel: Optional[threading.Event] = None,
    on_resample: Optional[Callable[[int, int], None]] = None,
    options: Optional[Mapping[str, Mapping[str, object]]] = None,
) -> Scores:
    """Metrics for `inputs` ({"predictions", "references"}, or {"nll", "tokens"} for perplexity).

    `labels` orders the classes of a classification report (the model's own label order). The bootstrap reports
    `on_resample(done, total)` as it goes and stops at `cancel` (the run then has no intervals, and says so).
    `options` are keyword arguments for a metric module, by its name (e.g. {"rouge": {"use_stemmer": True}}).
    """
    count = len(next(iter(inputs.values())))
    if count == 0:
        return Scores(metrics={})
    names = TASK_METRICS[task]
    modules = [load_metric(name) for name in names]
    result = Scores(metrics={})
    stats = []
    for name, module in zip(names, modules):
        extra = (options or {}).get(name, {})
        result.metrics.update(module.compute(**inputs, **extra))
        module_stats = module.example_stats(**inputs, **extra)
        stats.append(module_stats)
        result.example_scores.update(module.example_scores(module_stats))
        report = getattr(module, "report", None)
        if report is not None:
            result.details.update(report(**inputs, labels=list(labels) if labels else None,
                                         max_classes=TableLimits.from_env().max_classes_shown))
    if bootstrap and count > 1:
        cancel = cancel or threading.Event()
        if cancel.is_set():
            result.notices.append("no confidence intervals: the run was cancelled before the bootstrap")
        else:
            result.intervals = bootstrap_intervals(modules, stats, bootstrap, confidence, seed, cancel, on_resample)
            if cancel.is_set():
                result.notices.append("no confidence intervals: the bootstrap was cancelled")
    return result


def bootstrap_intervals(
    modules: Sequence[Aggregates], stats: Sequence[np.ndarray], resamples: int, confidence: float, seed: Optional[int],
    cancel: Optional[threading.Event] = None, on_resample: Optional[Callable[[int, int], None]] = None,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every metric over `resamples` resamples of the examples (paired across metrics).

    `cancel` is looked at before every resample: a cancelled bootstrap returns no intervals at once (a partial
    one would be a different, less certain interval under the same name).
    """
    count = len(stats[0])
    rng = np.random.default_rng(0 if seed is None else seed)
    draws: dict[str, list[float]] = {}
    for done in range(resamples):
        if cancel is not None and cancel.is_set():
            return {}
        if on_resample is not None and done % BOOTSTRAP_REPORT_EVERY == 0:
            on_resample(done, resamples)
        indices = rng.integers(0, count, size=count)
        for module, module_stats in zip(modules, stats):
            for name, value in module.aggregate(module_stats[indices]).items():
                draws.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for name, values in draws.items():
        finite = np.asarray([value for value in values if math.isfinite(value)])
        if len(finite):
            low, high = np.percentile(finite, [tail, 100 - tail])
            intervals[name] = (float(low), float(high))
    return intervals
