"""Metrics for chat replies (0-1), as a local `evaluate` module that works offline.

A chat model answers in a sentence ("The capital of France is Paris."), so an exact match on the raw text says
little. Two checks that suit replies, both on SQuAD's normalised text (lower case, punctuation dropped, the
articles a / an / the dropped, whitespace collapsed: `normalize_answer`, the official SQuAD v1.1 function, as in
squad.py here):

- `normalized_exact_match`: the normalised reply equals the normalised reference;
- `contains`: the normalised reference occurs in the normalised reply as whole words ("paris" is in "capital
  is paris", not in "parisian"); an empty normalised reference is contained in nothing.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import numpy as np

from backend.evaluation import metric_base
from backend.evaluation.metrics.squad import normalize_answer

_COLUMNS = ("normalized_exact_match", "contains")  # example_stats' columns


def contains(prediction: str, reference: str) -> bool:
    """Whether the normalised reference occurs in the normalised prediction, on word boundaries."""
    wanted = normalize_answer(reference)
    return bool(wanted) and f" {wanted} " in f" {normalize_answer(prediction)} "


class ChatMatch(metric_base.TextPairMetric):
    DESCRIPTION = ("Normalised exact match (SQuAD's normalize_answer) and whole-word containment of the "
                   "reference in the reply.")

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """Per example: normalised exact match (0/1), contains (0/1)."""
        rows = [[float(normalize_answer(p) == normalize_answer(r)), float(contains(p, r))]
                for p, r in zip(predictions, references)]
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), 2)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        return metric_base.column_means(stats, _COLUMNS)

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return metric_base.column_scores(stats, _COLUMNS)
