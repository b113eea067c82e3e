"""Metrics for chat replies: normalised exact match is SQuAD's normalize_answer comparison, `contains` matches
whole words; both are reported for generation runs with bootstrap intervals.

The reference implementation: `evaluate.load("squad")` fetches its script from the Hub, which nothing here may do,
so the comparison is with the official SQuAD v1.1 normalisation as installed libraries ship it
(lm-evaluation-harness's copy, as tests/test_task_metrics.py does) and with this project's `squad` evaluate module
(its exact match on one gold answer is the same comparison, on a 0-100 scale).
"""

from __future__ import annotations

import pytest
from lm_eval.tasks.qasper.metrics import normalize_answer as official_normalize

from backend.evaluation.metrics import TASK_METRICS, load_metric
from backend.evaluation.metrics.chat_match import contains
from backend.evaluation.scoring import score

REPLIES = ["The Eiffel Tower!", "  paris  ", "An apple a day", "Paris, France", "parisian", "THE  answer is: 42.",
           "", "a"]
REFERENCES = ["Eiffel Tower", "Paris", "apple day", "Paris", "Paris", "answer is 42", "nothing", "the"]


def test_normalised_exact_match_equals_squad_exact_match() -> None:
    result = load_metric("chat_match").compute(predictions=REPLIES, references=REFERENCES)
    official = [float(official_normalize(p) == official_normalize(r)) for p, r in zip(REPLIES, REFERENCES)]
    squad = load_metric("squad").compute(predictions=REPLIES, references=REFERENCES)
    assert result["normalized_exact_match"] == pytest.approx(sum(official) / len(official))
    assert result["normalized_exact_match"] * 100 == pytest.approx(squad["squad_exact_match"])
    # Hand-checked: rows 0 (case, punctuation, article), 1 (spaces), 2 (articles), 5, 7 ("a" vs "the": both empty).
    assert official == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]


def test_contains_matches_whole_normalised_words() -> None:
    assert contains("I think the capital is Paris.", "paris")
    assert contains("Paris, France", "Paris")
    assert not contains("parisian", "Paris")  # a word boundary, not a substring
    assert not contains("anything", "the")  # an empty normalised reference is contained in nothing
    assert contains("It is 42, the answer is 42.", "answer is 42")
    metric = load_metric("chat_match")
    scores = metric.example_scores(metric.example_stats(REPLIES, REFERENCES))
    assert scores["contains"] == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_generation_runs_report_both_with_intervals() -> None:
    assert "chat_match" in TASK_METRICS["generation"]
    scores = score("generation", {"predictions": REPLIES * 3, "references": REFERENCES * 3}, bootstrap=200, seed=1)
    assert scores.metrics["contains"] == pytest.approx(5 / 8)
    assert scores.metrics["normalized_exact_match"] == pytest.approx(5 / 8)
    for name in ("contains", "normalized_exact_match"):
        low, high = scores.intervals[name]
        assert low <= scores.metrics[name] <= high and low < high
