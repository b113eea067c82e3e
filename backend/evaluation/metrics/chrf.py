"""chrF (sacrebleu, 0-100) as a local `evaluate` module that works offline.

Like BLEU, corpus chrF comes from character and word n-gram statistics summed over the corpus, so the module
keeps sacrebleu's per-sentence statistics and re-sums any subset. On the whole corpus the result is exactly
`sacrebleu.corpus_chrf(predictions, [references]).score`; per example it is `sacrebleu.sentence_chrf`.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

from sacrebleu.metrics import CHRF

from backend.evaluation import metric_base


class Chrf(metric_base.SacrebleuMetric):
    DESCRIPTION = "Corpus chrF from sacrebleu (character 6-grams, beta 2), on a 0-100 scale."
    CITATION = "Popovic, 2015. chrF: character n-gram F-score for automatic MT evaluation."

    NAME = "chrf"

    def scorer(self, sentence: bool = False) -> CHRF:
        return CHRF()  # sacrebleu.sentence_chrf scores a sentence as the corpus
