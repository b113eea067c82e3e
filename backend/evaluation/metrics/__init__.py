"""The metric modules and which ones each evaluation task reports.

Each family is a local `evaluate` module (an `evaluate.Metric` subclass in its own file here), loaded by path so
it works offline. Besides `compute`, every module has the same three methods, which the bootstrap uses:
`example_stats(**inputs)` (one row of numbers per example), `aggregate(stats)` (metrics from any subset of
rows) and `example_scores(stats)` (per-example scores for the results table). What they share (the description,
`compute` from those methods, per-column means and scores) is in backend/evaluation/metric_base.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

METRICS_DIR = Path(__file__).resolve().parent

# Which module files a task reports, in display order.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("classification",),
    "generation": ("bleu", "chrf", "rouge", "exact_match", "chat_match"),
    "perplexity": ("perplexity",),
    # the pipeline tasks (backend/tasks/)
    "ner": ("seqeval_ner",),
    "question_answering": ("squad",),
    "summarization": ("rouge",),
    "translation": ("bleu", "chrf"),
}
# The metric a leaderboard is sorted by, and the ones where lower is better.
HEADLINE: dict[str, str] = {"classification": "accuracy", "generation": "bleu", "perplexity": "perplexity"}
HEADLINE.update({"ner": "entity_f1", "question_answering": "squad_f1", "summarization": "rougeL",
                 "translation": "bleu"})
LOWER_IS_BETTER = frozenset({"perplexity", "mean_perplexity", "nll_per_token"})


def metric_path(name: str) -> Path:
    path = METRICS_DIR / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"no metric module {name!r}; the modules are {sorted(p.stem for p in _modules())}")
    return path


class Aggregates(Protocol):
    """What the bootstrap resamples: metrics from any subset of the per-example rows."""

    def aggregate(self, stats: np.ndarray) -> dict[str, float]: ...


class MetricModule(Aggregates, Protocol):
    """What the scoring calls on a loaded module (the module doc above); the inputs are the task's metric inputs,
    e.g. predictions and references, as keywords."""

    def compute(self, **inputs: object) -> dict[str, float]: ...

    def example_stats(self, **inputs: object) -> np.ndarray: ...

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]: ...


def load_metric(name: str) -> MetricModule:
    """A fresh `evaluate` module instance (instances hold state between add_batch calls: never share one)."""
    import evaluate  # imports torch and transformers: only when something is scored

    # keep_in_memory: no Arrow cache files under ~/.cache for a computation that takes milliseconds.
    return evaluate.load(str(metric_path(name)), keep_in_memory=True)


def _modules() -> list[Path]:
    return [path for path in METRICS_DIR.glob("*.py") if not path.name.startswith("_")]
