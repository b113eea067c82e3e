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

import numpy as np

from backend.evaluation import metric_base
from backend.evaluation.sequences import parse_list

_PUNCTUATION = set(string.punctuation)
_COLUMNS = ("squad_exact_match", "squad_f1")  # example_stats' columns, as reported (0-100)


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


class Squad(metric_base.TextPairMetric):
    DESCRIPTION = "SQuAD v1.1 exact match and F1 (best over gold answers), on a 0-100 scale."
    CITATION = "Rajpurkar et al., 2016. SQuAD: 100,000+ Questions for Machine Comprehension of Text."
    INPUTS = ("predictions: list of answer strings; references: per example one answer, or a list of gold "
              "answers as text")

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """Per example: exact match (0/1) and F1 (0-1), each the best over the gold answers."""
        rows = []
        for prediction, reference in zip(predictions, references):
            answers = golds(reference)
            rows.append([max(float(normalize_answer(prediction) == normalize_answer(a)) for a in answers),
                         max(f1(prediction, a) for a in answers)])
        return np.asarray(rows, dtype=np.float64).reshape(len(predictions), 2)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        return metric_base.column_means(stats, _COLUMNS, scale=100)

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return metric_base.column_scores(stats, _COLUMNS, scale=100)
