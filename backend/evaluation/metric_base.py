"""What every metric module of backend/evaluation/metrics/ shares: its `evaluate` description made from three class
constants, `compute` as `aggregate(example_stats(...))` for the modules scored from predictions and references, and
the per-column means and scores most of them report.

The bases are abstract on purpose: `evaluate.load` takes the first concrete `EvaluationModule` subclass it finds in a
metric file's namespace, so a base imported there never stands in for the file's own metric.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar, Sequence

import datasets
import evaluate
import numpy as np

TEXT_PAIRS = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})
TEXT_PAIRS_INPUTS = "predictions: list of strings; references: list of strings (one per prediction)"


class DescribedMetric(evaluate.Metric, metaclass=ABCMeta):
    """An `evaluate` module described by its class constants, with the bootstrap's two methods (package doc of
    backend/evaluation/metrics/). Upper-case names: `evaluate` has properties called description, citation..."""

    DESCRIPTION: ClassVar[str]
    CITATION: ClassVar[str] = ""
    INPUTS: ClassVar[str] = TEXT_PAIRS_INPUTS
    FEATURES: ClassVar[datasets.Features] = TEXT_PAIRS

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(description=self.DESCRIPTION, citation=self.CITATION,
                                   inputs_description=self.INPUTS, features=self.FEATURES)

    @abstractmethod
    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        """The metrics of any subset of the per-example rows (a bootstrap resample)."""

    @abstractmethod
    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        """Per-example scores for the results table."""


class TextPairMetric(DescribedMetric):
    """A metric of predictions against references (one string each), computed from per-example rows."""

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return self.aggregate(self.example_stats(predictions, references))

    @abstractmethod
    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """One row of numbers per example."""


def column_means(stats: np.ndarray, names: Sequence[str], scale: float = 1.0) -> dict[str, float]:
    """Each column's mean over the rows (times `scale`), named in column order."""
    means = np.asarray(stats, dtype=np.float64).mean(axis=0) * scale
    return {name: float(value) for name, value in zip(names, means)}


def column_scores(stats: np.ndarray, names: Sequence[str], scale: float = 1.0) -> dict[str, list[float]]:
    """Each row's value in the first len(names) columns (times `scale`), named in column order."""
    stats = np.asarray(stats)
    return {name: [float(value) * scale for value in stats[:, column]] for column, name in enumerate(names)}
