"""Accuracy, precision / recall / F1 (macro, micro, weighted), a per-class report and a confusion matrix, as a
local `evaluate` module that works offline. Scores are scikit-learn's, on a 0-1 scale.

`compute` calls scikit-learn (with `zero_division=0`: a class never predicted has precision 0, not a warning).
`aggregate`, used for bootstrap resamples, computes the same definitions from per-class counts in numpy:
scikit-learn takes ~17 ms per resample for these four calls, which makes 1,000 resamples too slow for a UI. The
test suite checks that both give the same numbers.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, TypedDict

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, precision_recall_fscore_support

from backend.evaluation import metric_base

AVERAGES = ("macro", "micro", "weighted")
class ConfusionMatrix(TypedDict):
    labels: list[str]  # rows (true) and columns (predicted), OTHER last when classes were folded into it
    matrix: list[list[int]]
    classes: int  # all classes, shown or not


class ClassificationReport(TypedDict):
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1-score, support
    confusion_matrix: ConfusionMatrix


OTHER = "(other)"  # the confusion matrix's row and column for the classes it does not show one by one


class Classification(metric_base.TextPairMetric):
    DESCRIPTION = "Accuracy and precision/recall/F1 (macro, micro, weighted) from scikit-learn, on a 0-1 scale."
    CITATION = "Pedregosa et al., 2011. Scikit-learn: Machine Learning in Python."
    INPUTS = "predictions: list of predicted labels; references: list of true labels (strings)"

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scores = {"accuracy": float(accuracy_score(references, predictions))}
        for average in AVERAGES:
            precision, recall, f1, _ = precision_recall_fscore_support(
                references, predictions, average=average, zero_division=0
            )
            scores[f"precision_{average}"] = float(precision)
            scores[f"recall_{average}"] = float(recall)
            scores[f"f1_{average}"] = float(f1)
        return scores

    def report(self, predictions: list[str], references: list[str], labels: Optional[list[str]] = None,
               max_classes: Optional[int] = None) -> ClassificationReport:
        """Per-class precision / recall / F1 / support and the confusion matrix (rows: true, columns: predicted).

        With more than `max_classes` classes the matrix keeps the most frequent true labels and sums the rest
        into one OTHER row and column: it grows as classes x classes, and 2,000 labels made a 4-million-cell table.
        """
        order = list(labels) if labels else sorted(set(references) | set(predictions))
        order += sorted((set(references) | set(predictions)) - set(order))  # labels outside the given order
        per_class = classification_report(references, predictions, labels=order, output_dict=True,
                                          zero_division=0)
        shown = order
        if max_classes is not None and len(order) > max_classes:
            support = Counter(references)
            top = set(sorted(order, key=lambda label: -support[label])[:max_classes])
            shown = [label for label in order if label in top]
            other = f"{OTHER} ({len(order) - len(shown):,} labels)"
            references = [label if label in top else other for label in references]
            predictions = [label if label in top else other for label in predictions]
            shown = [*shown, other]
        matrix = confusion_matrix(references, predictions, labels=shown)
        return {
            "per_class": {label: {key: float(value) for key, value in per_class[label].items()} for label in order},
            "confusion_matrix": {"labels": shown, "matrix": matrix.tolist(), "classes": len(order)},
        }

    def example_stats(self, predictions: list[str], references: list[str]) -> np.ndarray:
        """Per example: the true and the predicted class as indices into the sorted labels."""
        order = {label: index for index, label in enumerate(sorted(set(references) | set(predictions)))}
        rows = [[order[true], order[predicted]] for true, predicted in zip(references, predictions)]
        return np.asarray(rows, dtype=np.int64).reshape(len(predictions), 2)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        true, predicted = stats[:, 0], stats[:, 1]
        classes = int(stats.max()) + 1 if len(stats) else 0
        # Three counts per class, not a classes x classes matrix: linear in the classes (2,000 labels made each
        # resample build a 4-million-cell matrix).
        hits = np.bincount(true[true == predicted], minlength=classes).astype(np.float64)
        support = np.bincount(true, minlength=classes).astype(np.float64)
        predicted_count = np.bincount(predicted, minlength=classes).astype(np.float64)
        present = (support > 0) | (predicted_count > 0)  # scikit-learn's labels=None: classes seen in either
        hits, support, predicted_count = hits[present], support[present], predicted_count[present]
        precision = _ratio(hits, predicted_count)
        recall = _ratio(hits, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        total = support.sum()
        micro = float(hits.sum() / total) if total else 0.0  # single-label: micro P = R = F1 = accuracy
        weights = support / total if total else support
        scores = {"accuracy": micro}
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            scores[f"{name}_macro"] = float(values.mean()) if len(values) else 0.0
            scores[f"{name}_micro"] = micro
            scores[f"{name}_weighted"] = float((values * weights).sum())
        return scores

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return {"correct": [float(true == predicted) for true, predicted in stats]}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
