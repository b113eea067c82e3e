"""Entity-level precision, recall and F1 for NER (seqeval) as a local `evaluate` module that works offline.

Entities are read from BIO tag sequences by seqeval's own `get_entities` (its default, non-strict mode). Micro
P/R/F1 come from entity counts summed over examples (true positives, predicted, gold), so on the whole corpus they
are exactly `seqeval.metrics.precision_score / recall_score / f1_score`, and any bootstrap subset is recomputed
from counts. Tags arrive as text, one sequence per example (see backend/evaluation/sequences.py).

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

from backend.evaluation import metric_base
from backend.evaluation.sequences import parse_list


class SeqevalNer(metric_base.TextPairMetric):
    DESCRIPTION = "Entity-level micro precision / recall / F1 (seqeval), on a 0-1 scale."
    CITATION = "Nakayama, 2018. seqeval: A Python framework for sequence labeling evaluation."
    INPUTS = "predictions, references: per example, the BIO tags (a list as text, or tags separated by spaces)"

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """Per example: entities predicted correctly, entities predicted, gold entities."""
        rows = []
        for prediction, reference in zip(predictions, references):
            predicted = set(get_entities(parse_list(prediction)))
            gold = set(get_entities(parse_list(reference)))
            rows.append([len(predicted & gold), len(predicted), len(gold)])
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), 3)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        correct, predicted, gold = np.asarray(stats, dtype=np.float64).sum(axis=0)
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"entity_precision": float(precision), "entity_recall": float(recall), "entity_f1": float(f1)}

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return {"entity_f1": [self.aggregate(row[None, :])["entity_f1"] for row in np.asarray(stats)]}
