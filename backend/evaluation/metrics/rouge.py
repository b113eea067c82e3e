"""ROUGE-1/2/L/Lsum (rouge-score, F1 on 0-1) as a local `evaluate` module that works offline.

Scored as Hugging Face's `rouge` metric does (rouge_score's RougeScorer, by default with `use_stemmer=False` as
`evaluate.load("rouge")` has it; `use_stemmer=True` turns Porter stemming on; rougeLsum splits summaries into
sentences on newlines), then averaged over examples. HF's default instead reports the
median of a bootstrap of that average (`use_aggregator=True`), which moves with its random seed; the plain
mean is exactly reproducible and is what `use_aggregator=False` + mean gives.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import numpy as np
from rouge_score import rouge_scorer

from backend.evaluation import metric_base

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class Rouge(metric_base.TextPairMetric):
    DESCRIPTION = "Mean ROUGE-1/2/L/Lsum F1 from rouge-score (Porter stemming optional), on a 0-1 scale."
    CITATION = "Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries."

    def _compute(self, predictions: list[str], references: list[str], use_stemmer: bool = False) -> dict[str, float]:
        return self.aggregate(self.example_stats(predictions, references, use_stemmer))

    def example_stats(self, predictions: list[str], references: list[str], use_stemmer: bool = False) -> np.ndarray:
        """Per example, the F1 of each ROUGE type (columns in ROUGE_TYPES order)."""
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
        rows = []
        for prediction, reference in zip(predictions, references):
            scores = scorer.score(reference, prediction)  # rouge_score takes (target, prediction)
            rows.append([scores[kind].fmeasure for kind in ROUGE_TYPES])
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), len(ROUGE_TYPES))

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        return metric_base.column_means(stats, ROUGE_TYPES)

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return metric_base.column_scores(stats, ROUGE_TYPES)
