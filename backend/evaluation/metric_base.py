"""What every metric module of backend/evaluation/metrics/ shares: its `evaluate` description made from three class
constants, `compute` as `aggregate(example_stats(...))` for the modules scored from predictions and references,
the per-column means and scores most of them report, and the bootstrap rows of sacrebleu's corpus metrics.

The bases are abstract on purpose: `evaluate.load` takes the first concrete `EvaluationModule` subclass it finds in a
metric file's namespace, so a base imported there never stands in for the file's own metric.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Sequence

import datasets
import evaluate
import numpy as np

if TYPE_CHECKING:
    from sacrebleu.metrics.base import Metric as SacrebleuScorer

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


class SacrebleuMetric(TextPairMetric):
    """A corpus metric of sacrebleu's (BLEU, chrF): a function of n-gram statistics summed over the corpus, so the
    rows are sacrebleu's own per-sentence statistics and `aggregate` over any subset (a bootstrap resample)
    re-sums them instead of re-tokenising, which is how sacrebleu's own bootstrap does it."""

    NAME: ClassVar[str]  # the metric's key in the results

    @abstractmethod
    def scorer(self, sentence: bool = False) -> SacrebleuScorer:
        """The sacrebleu metric object: for the corpus, or (`sentence`) as sacrebleu scores a single sentence."""

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        # sacrebleu's public API only returns the summed score; these two methods are what its own significance
        # tests use to resample without recomputing n-grams.
        stats = self.scorer()._extract_corpus_statistics(list(predictions), [list(references)])
        return np.asarray(stats, dtype=np.int64).reshape(len(predictions), -1)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        summed = [int(value) for value in np.asarray(stats).sum(axis=0)]
        return {self.NAME: float(self.scorer()._compute_score_from_stats(summed).score)}

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        sentence = self.scorer(sentence=True)
        return {self.NAME: [float(sentence._compute_score_from_stats([int(v) for v in row]).score) for row in stats]}
