"""The evaluation metric modules give exactly what sacrebleu, rouge-score and scikit-learn give on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, precision_recall_fscore_support

from backend.evaluation import scoring
from backend.evaluation.metrics import TASK_METRICS, load_metric

PREDICTIONS = [
    "The cat sat on the mat.",
    "A quick brown fox jumped over the lazy dogs",
    "Paris is the capital of France.",
    "running runners ran quickly\nthe second sentence is here",
    "",
    "completely unrelated words",
]
REFERENCES = [
    "The cat is sitting on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France.",
    "the runner runs quickly\nhere is a second sentence",
    "an empty prediction",
    "nothing in common at all",
]


@pytest.fixture(scope="module")
def metrics() -> dict:
    return {name: load_metric(name) for names in TASK_METRICS.values() for name in names}


def test_bleu_and_chrf_equal_sacrebleu(metrics: dict) -> None:
    assert metrics["bleu"].compute(predictions=PREDICTIONS, references=REFERENCES) == {
        "bleu": sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score}
    assert metrics["chrf"].compute(predictions=PREDICTIONS, references=REFERENCES) == {
        "chrf": sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score}
    # Per example: sacrebleu's sentence-level scores.
    bleu = metrics["bleu"]
    assert bleu.example_scores(bleu.example_stats(PREDICTIONS, REFERENCES))["bleu"] == [
        sacrebleu.sentence_bleu(p, [r]).score for p, r in zip(PREDICTIONS, REFERENCES)]
    chrf = metrics["chrf"]
    assert chrf.example_scores(chrf.example_stats(PREDICTIONS, REFERENCES))["chrf"] == [
        sacrebleu.sentence_chrf(p, [r]).score for p, r in zip(PREDICTIONS, REFERENCES)]


def test_bleu_of_a_subset_is_recomputed_from_counts_not_averaged(metrics: dict) -> None:
    bleu = metrics["bleu"]
    stats = bleu.example_stats(PREDICTIONS, REFERENCES)
    subset = [0, 1, 1, 3]  # a bootstrap resample repeats examples
    assert bleu.aggregate(stats[subset])["bleu"] == sacrebleu.corpus_bleu(
        [PREDICTIONS[i] for i in subset], [[REFERENCES[i] for i in subset]]).score


def test_rouge_equals_rouge_score_with_stemming_and_newline_sentences(metrics: dict) -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    expected = [scorer.score(r, p) for p, r in zip(PREDICTIONS, REFERENCES)]
    result = metrics["rouge"].compute(predictions=PREDICTIONS, references=REFERENCES)
    for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert result[kind] == pytest.approx(np.mean([e[kind].fmeasure for e in expected]), abs=1e-15)
    # The multi-sentence example: rougeLsum (newline-split summary LCS) differs from rougeL.
    assert expected[3]["rougeLsum"].fmeasure != expected[3]["rougeL"].fmeasure


def test_exact_match_and_lengths(metrics: dict) -> None:
    result = metrics["exact_match"].compute(predictions=["Paris ", "paris", "a b c"],
                                            references=["Paris", "Paris", "a b"])
    assert result["exact_match"] == pytest.approx(1 / 3)  # whitespace around is ignored, case is not
    assert result["mean_length"] == pytest.approx(5 / 3)
    assert result["length_ratio"] == pytest.approx(5 / 4)


def test_classification_equals_scikit_learn(metrics: dict) -> None:
    rng = np.random.default_rng(7)
    labels = np.array(["cat", "dog", "bird", "fish"])
    references = list(labels[rng.integers(0, 3, 60)])  # "fish" is only ever predicted, never true
    predictions = list(labels[rng.integers(0, 4, 60)])
    result = metrics["classification"].compute(predictions=predictions, references=references)
    assert result["accuracy"] == accuracy_score(references, predictions)
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(references, predictions, average=average, zero_division=0)
        assert (result[f"precision_{average}"], result[f"recall_{average}"], result[f"f1_{average}"]) == (p, r, f)
    report = metrics["classification"].report(predictions, references, labels=["dog", "cat"])
    order = ["dog", "cat", "bird", "fish"]  # the given order first, then the rest
    assert report["confusion_matrix"] == {"labels": order, "classes": 4,
                                          "matrix": confusion_matrix(references, predictions, labels=order).tolist()}
    expected = classification_report(references, predictions, labels=order, output_dict=True, zero_division=0)
    assert report["per_class"]["bird"] == pytest.approx(expected["bird"])


def test_classification_resample_path_matches_scikit_learn(metrics: dict) -> None:
    """`aggregate` (numpy, used by the bootstrap) gives scikit-learn's numbers on any subset."""
    module = metrics["classification"]
    rng = np.random.default_rng(3)
    labels = np.array(["a", "b", "c", "d"])
    references, predictions = list(labels[rng.integers(0, 4, 40)]), list(labels[rng.integers(0, 4, 40)])
    stats = module.example_stats(predictions, references)
    for _ in range(20):
        subset = rng.integers(0, 40, 40)
        sub_refs, sub_preds = [references[i] for i in subset], [predictions[i] for i in subset]
        expected = module.compute(predictions=sub_preds, references=sub_refs)
        assert module.aggregate(stats[subset]) == pytest.approx(expected, abs=1e-12)


def test_perplexity_is_token_level_over_the_corpus(metrics: dict) -> None:
    result = metrics["perplexity"].compute(nll=[6.0, 3.0], tokens=[3, 1])
    assert result["perplexity"] == pytest.approx(math.exp(9.0 / 4))  # every token weighs the same
    assert result["mean_perplexity"] == pytest.approx((math.exp(2.0) + math.exp(3.0)) / 2)


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate() -> None:
    inputs = {"predictions": PREDICTIONS * 3, "references": REFERENCES * 3}
    first = scoring.score("generation", inputs, bootstrap=200, seed=5)
    again = scoring.score("generation", inputs, bootstrap=200, seed=5)
    other = scoring.score("generation", inputs, bootstrap=200, seed=6)
    assert first.intervals == again.intervals and first.intervals != other.intervals
    for name in ("bleu", "chrf", "rougeL", "exact_match"):
        low, high = first.intervals[name]
        assert low <= first.metrics[name] <= high and low < high
    assert first.metrics["bleu"] == sacrebleu.corpus_bleu(inputs["predictions"], [inputs["references"]]).score
