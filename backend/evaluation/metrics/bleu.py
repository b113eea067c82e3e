"""BLEU (sacrebleu, 0-100) as a local `evaluate` module that works offline.

Corpus BLEU is a function of n-gram counts summed over the corpus, so the module keeps sacrebleu's own
per-sentence statistics: `aggregate` over any subset (a bootstrap resample) re-sums them instead of
re-tokenising, which is how sacrebleu's own bootstrap does it. On the whole corpus the result is exactly
`sacrebleu.corpus_bleu(predictions, [references]).score`; per example it is `sacrebleu.sentence_bleu`.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

from sacrebleu.metrics import BLEU

from backend.evaluation import metric_base


class Bleu(metric_base.SacrebleuMetric):
    DESCRIPTION = "Corpus BLEU from sacrebleu (13a tokenisation, exponential smoothing), on a 0-100 scale."
    CITATION = "Post, 2018. A Call for Clarity in Reporting BLEU Scores."

    NAME = "bleu"

    def scorer(self, sentence: bool = False) -> BLEU:
        return BLEU(effective_order=True) if sentence else BLEU()  # effective order: sacrebleu.sentence_bleu's
