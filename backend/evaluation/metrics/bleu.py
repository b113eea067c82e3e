"""BLEU (sacrebleu, 0-100) as a local `evaluate` module that works offline.

Corpus BLEU is a function of n-gram counts summed over the corpus, so the module keeps sacrebleu's own
per-sentence statistics: `aggregate` over any subset (a bootstrap resample) re-sums them instead of
re-tokenising, which is how sacrebleu's own bootstrap does it. On the whole corpus the result is exactly
`sacrebleu.corpus_bleu(predictions, [references]).score`; per example it is `sacrebleu.sentence_bleu`.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import numpy as np
from sacrebleu.metrics import BLEU

from backend.evaluation import metric_base


class Bleu(metric_base.TextPairMetric):
    DESCRIPTION = "Corpus BLEU from sacrebleu (13a tokenisation, exponential smoothing), on a 0-100 scale."
    CITATION = "Post, 2018. A Call for Clarity in Reporting BLEU Scores."

    # Shared by every module of this package: per-example statistics, and metrics from any subset of them.
    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """One row of sacrebleu sufficient statistics per example: lengths, then n-gram matches and totals."""
        # sacrebleu's public API only returns the summed score; these two methods are what its own
        # significance tests use to resample without recomputing n-grams.
        stats = BLEU()._extract_corpus_statistics(list(predictions), [list(references)])
        return np.asarray(stats, dtype=np.int64).reshape(len(predictions), -1)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        summed = [int(value) for value in np.asarray(stats).sum(axis=0)]
        return {"bleu": float(BLEU()._compute_score_from_stats(summed).score)}

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        sentence = BLEU(effective_order=True)  # what sacrebleu.sentence_bleu uses for single sentences
        return {"bleu": [float(sentence._compute_score_from_stats([int(v) for v in row]).score) for row in stats]}
