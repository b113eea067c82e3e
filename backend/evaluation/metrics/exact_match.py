"""Exact match (0-1) and output lengths as a local `evaluate` module that works offline.

A prediction matches when it equals its reference after stripping leading and trailing whitespace (a model's
trailing newline is not a different answer); case and inner spacing count. Lengths are in whitespace-separated
words, so they compare across models with different tokenizers.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import numpy as np

from backend.evaluation import metric_base


class ExactMatch(metric_base.TextPairMetric):
    DESCRIPTION = "Share of predictions equal to their reference (whitespace-stripped); mean lengths in words."

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """Per example: match (0/1), prediction length, reference length (words)."""
        rows = [[float(p.strip() == r.strip()), len(p.split()), len(r.split())]
                for p, r in zip(predictions, references)]
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), 3)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        stats = np.asarray(stats, dtype=np.float64)
        reference_words = stats[:, 2].sum()
        return {
            "exact_match": float(stats[:, 0].mean()),
            "mean_length": float(stats[:, 1].mean()),
            "mean_reference_length": float(stats[:, 2].mean()),
            # Below 1: the model says less than the references do (BLEU's brevity penalty hits it).
            "length_ratio": float(stats[:, 1].sum() / reference_words) if reference_words else float("nan"),
        }

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return metric_base.column_scores(stats, ("exact_match", "length"))
