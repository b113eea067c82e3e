"""SQuAD exact match and F1 (0-100) as a local `evaluate` module that works offline.

The official SQuAD v1.1 evaluation, as Hugging Face's `squad` metric runs it: answers are normalised (lower case,
punctuation and the articles a / an / the removed, whitespace collapsed); exact match and token-overlap F1 take
the best over an example's gold answers; both are averaged over examples and reported on a 0-100 scale. A
reference may hold several gold answers (a list, or SQuAD's answers dict, as text: backend/evaluation/sequences.py).

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import datasets
import evaluate
import numpy as np

from backend.evaluation.sequences import parse_list

_FEATURES = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official script's normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, truth: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def golds(reference: str) -> list[str]:
    """The gold answers of one reference: a list (as text) or one plain answer."""
    return parse_list(reference, split=False) or [""]


class Squad(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="SQuAD v1.1 exact match and F1 (best over gold answers), on a 0-100 scale.",
            citation="Rajpurkar et al., 2016. SQuAD: 100,000+ Questions for Machine Comprehension of Text.",
            inputs_description="predictions: list of answer strings; references: per example one answer, or a "
                               "list of gold answers as text",
            features=_FEATURES,
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return self.aggregate(self.example_stats(predictions, references))

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """Per example: exact match (0/1) and F1 (0-1), each the best over the gold answers."""
        rows = []
        for prediction, reference in zip(predictions, references):
            answers = golds(reference)
            rows.append([max(float(normalize_answer(prediction) == normalize_answer(a)) for a in answers),
                         max(f1(prediction, a) for a in answers)])
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), 2)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        means = np.asarray(stats, dtype=np.float64).mean(axis=0) * 100
        return {"squad_exact_match": float(means[0]), "squad_f1": float(means[1])}

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        stats = np.asarray(stats)
        return {"squad_exact_match": [float(v) * 100 for v in stats[:, 0]],
                "squad_f1": [float(v) * 100 for v in stats[:, 1]]}
