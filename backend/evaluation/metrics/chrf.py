"""chrF (sacrebleu, 0-100) as a local `evaluate` module that works offline.

Like BLEU, corpus chrF comes from character and word n-gram statistics summed over the corpus, so the module
keeps sacrebleu's per-sentence statistics and re-sums any subset. On the whole corpus the result is exactly
`sacrebleu.corpus_chrf(predictions, [references]).score`; per example it is `sacrebleu.sentence_chrf`.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import numpy as np
from sacrebleu.metrics import CHRF

from backend.evaluation import metric_base


class Chrf(metric_base.TextPairMetric):
    DESCRIPTION = "Corpus chrF from sacrebleu (character 6-grams, beta 2), on a 0-100 scale."
    CITATION = "Popovic, 2015. chrF: character n-gram F-score for automatic MT evaluation."

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """One row of sacrebleu chrF statistics (n-gram hits and totals per order) per example."""
        stats = CHRF()._extract_corpus_statistics(list(predictions), [list(references)])
        return np.asarray(stats, dtype=np.int64).reshape(len(predictions), -1)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        summed = [int(value) for value in np.asarray(stats).sum(axis=0)]
        return {"chrf": float(CHRF()._compute_score_from_stats(summed).score)}

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        chrf = CHRF()
        return {"chrf": [float(chrf._compute_score_from_stats([int(v) for v in row]).score) for row in stats]}
