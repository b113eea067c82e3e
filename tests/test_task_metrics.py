"""The pipeline tasks' metrics equal their libraries on crafted cases: seqeval for NER, the official SQuAD v1.1
evaluation for QA (lm-evaluation-harness ships a copy of its functions, used here as the reference)."""

from __future__ import annotations

import json

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from backend.evaluation.metrics import load_metric
from backend.evaluation.scoring import score
from backend.evaluation.sequences import parse_list

# Gold and predicted BIO tags: exact hits, a wrong type, a wrong boundary, an I- without B- (seqeval's default
# mode still counts it as an entity), a sentence with no entities, and one where nothing was predicted.
GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"], ["O", "O"], ["B-MISC", "O", "B-PER"],
        ["I-LOC", "I-LOC", "O"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "I-ORG", "O"], ["O", "B-LOC"], ["O", "O", "O"],
        ["I-LOC", "I-LOC", "O"]]


def test_ner_metric_equals_seqeval() -> None:
    metric = load_metric("seqeval_ner")
    result = metric.compute(predictions=[json.dumps(p) for p in PRED], references=[" ".join(g) for g in GOLD])
    assert result["entity_precision"] == pytest.approx(precision_score(GOLD, PRED))
    assert result["entity_recall"] == pytest.approx(recall_score(GOLD, PRED))
    assert result["entity_f1"] == pytest.approx(f1_score(GOLD, PRED))
    assert 0 < result["entity_f1"] < 1


def test_ner_scoring_has_intervals_and_per_example_f1() -> None:
    scores = score("ner", {"predictions": [" ".join(p) for p in PRED], "references": [" ".join(g) for g in GOLD]},
                   bootstrap=200, seed=1)
    low, high = scores.intervals["entity_f1"]
    assert low <= scores.metrics["entity_f1"] <= high
    assert scores.example_scores["entity_f1"][0] == pytest.approx(f1_score([GOLD[0]], [PRED[0]]))


def test_list_cells_in_every_shape_parse() -> None:
    assert parse_list('["B-PER", "O"]') == parse_list("['B-PER', 'O']") == parse_list("['B-PER' 'O']") \
        == parse_list("B-PER O") == ["B-PER", "O"]
    assert parse_list('{"text": ["Paris", "the city"], "answer_start": [3, 0]}', split=False) == ["Paris", "the city"]
    assert parse_list("in Paris", split=False) == ["in Paris"]


def official_squad(predictions: list[str], answers: list[list[str]]) -> tuple[float, float]:
    """SQuAD v1.1's evaluate(): max over ground truths, averaged, times 100."""
    from lm_eval.tasks.qasper.metrics import f1_abstractive, normalize_answer

    exact = f1 = 0.0
    for prediction, truths in zip(predictions, answers):
        exact += max(float(normalize_answer(prediction) == normalize_answer(t)) for t in truths)
        f1 += max(f1_abstractive([prediction], [t]) for t in truths)
    return 100 * exact / len(predictions), 100 * f1 / len(predictions)


def test_qa_metric_equals_the_official_squad_evaluation() -> None:
    predictions = ["The Eiffel Tower", "in 1889", "Gustave  Eiffel!", "Paris, France", "nothing like it", ""]
    answers = [["Eiffel Tower"], ["1889", "in the year 1889"], ["Gustave Eiffel"], ["Paris"], ["a bridge"],
               ["London"]]
    metric = load_metric("squad")
    result = metric.compute(predictions=predictions, references=[json.dumps(a) for a in answers])
    exact, f1 = official_squad(predictions, answers)
    assert result["squad_exact_match"] == pytest.approx(exact) == pytest.approx(100 * 2 / 6)
    assert result["squad_f1"] == pytest.approx(f1)
    # Paris, France vs Paris: precision 1/2, recall 1 → F1 2/3 for that example.
    assert metric.example_scores(metric.example_stats(predictions, [json.dumps(a) for a in answers]))[
        "squad_f1"][3] == pytest.approx(200 / 3)
