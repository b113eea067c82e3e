"""The judge and the pairwise A/B comparison: strict formats, out-of-format answers counted, both orders, intervals.

The judge here is `ScriptedJudge`, an engine that implements the Engine protocol and answers from a script. It is
used ONLY as the judge, whose verdicts are the test's input: a tiny real model with random weights cannot follow
a grading format, so the expected counts, rates and intervals could not be computed by hand. Everything else
(prompting, batching through `generate_texts`, parsing, combining, the bootstrap, Wilson intervals) is the real
code. The end-to-end runs with real tiny models are in tests/test_evaluation_compare.py.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import pytest
from scipy.stats import binomtest

from backend.core.config import ModelSpec
from backend.core.types import Delta, Final, GenerationParams, GenerationStats, LabelScore, Message
from backend.evaluation.judge import DEFAULT_RUBRIC, engine_generate, grade, parse_grade
from backend.evaluation.pairwise import DEFAULT_PAIR_RUBRIC, combine, compare_pair, parse_position, wilson
from backend.core.types import InvalidInputError


class ScriptedJudge:
    """A judge engine whose answer to a prompt is `script(prompt)` (see the module docstring for why)."""

    def __init__(self, script: Callable[[str], str]) -> None:
        self.spec = ModelSpec(id="scripted-judge", source="scripted", tasks=["chat"])
        self.tasks = frozenset({"chat"})
        self.max_context: Optional[int] = None
        self.script = script
        self.prompts: list[str] = []

    def stream_chat(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Any]:
        assert params.temperature == 0.0 and messages[-1].role == "user"  # greedy, one user turn
        self.prompts.append(messages[-1].content)
        text = self.script(messages[-1].content)
        yield Delta(text)
        yield Final(text, GenerationStats(1, 1, 0.0, None, 0.0, "stop"))

    def stream_generate(self, prompt: str, params: GenerationParams) -> Iterator[Any]:
        raise AssertionError("a judge is asked through its chat template")

    def classify(self, texts: Sequence[str], labels: Sequence[str] | None = None) -> list[list[LabelScore]]:
        raise AssertionError("not a classifier")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def describe(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def answer_in(prompt: str, heading: str) -> str:
    """The text under `heading` in a filled rubric (up to the next blank line)."""
    return prompt.split(heading + "\n", 1)[1].split("\n\n", 1)[0]


# ----------------------------------------------------------------------------------------------- formats


def test_grades_parse_only_in_the_strict_format() -> None:
    assert parse_grade("Score: 7\nReason: right city, wrong date.") == parse_grade(
        "Score: 7\nReason: right city, wrong date.")
    graded = parse_grade("  Score: 10\nReason: exact.\n")
    assert (graded.score, graded.reason) == (10, "exact.")
    assert parse_grade('{"score": 3, "reason": "mostly wrong"}').score == 3
    for out_of_format in ("7", "Score: 7", "Score: 11\nReason: too high", "Score: 0\nReason: too low",
                          "I think Score: 7\nReason: x", "Score: seven\nReason: x", '{"score": 7}',
                          '{"score": "7", "reason": "a string score"}', '{"score": 7, "reason": "x", "extra": 1}',
                          '{"score": true, "reason": "x"}', "", "Reason: x\nScore: 7"):
        graded = parse_grade(out_of_format)
        assert graded.score is None and not graded.parsed and graded.raw == out_of_format, out_of_format


def test_pair_verdicts_parse_only_in_the_strict_format() -> None:
    assert parse_position("Winner: 1\nReason: closer to the reference") == "1"
    assert parse_position("Winner: TIE\nReason: both right") == "tie"
    assert parse_position('{"winner": "2", "reason": "x"}') == "2"
    for bad in ("Winner: A\nReason: x", "1", "Winner: 1", "The winner is 1", '{"winner": 3, "reason": "x"}'):
        assert parse_position(bad) is None, bad


def test_the_two_orders_combine_by_the_documented_rule() -> None:
    # (pick with A shown first, pick with B shown first) -> outcome for A
    assert combine("1", "2") == "A"  # A picked in both positions
    assert combine("2", "1") == "B"
    assert combine("1", "1") == "tie"  # always the first answer: position bias, cancelled out
    assert combine("2", "2") == "tie"
    assert combine("tie", "2") == "tie" and combine("1", "tie") == "tie"
    assert combine(None, "2") is None and combine("1", None) is None


def test_wilson_interval_equals_scipy() -> None:
    for successes, total in ((3, 4), (0, 5), (5, 5), (17, 40)):
        expected = binomtest(successes, total).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(successes, total) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert all(math.isnan(v) for v in wilson(0, 0))


# ----------------------------------------------------------------------------------------------- grading


def test_judge_scores_with_mean_interval_and_counts_out_of_format_answers() -> None:
    scripted = {"Paris": "Score: 9\nReason: correct.", "Rome": "Score: 2\nReason: wrong city.",
                "Berlin": "I would give it a 5", "Lyon": '{"score": 4, "reason": "a city in France"}'}
    judge = ScriptedJudge(lambda prompt: scripted[answer_in(prompt, "Assistant's answer:")])
    answers: list[Optional[str]] = ["Paris", "Rome", "Berlin", "Lyon", None]  # the last: the model gave no reply
    summary = grade(engine_generate(judge), "scripted-judge", ["Capital of France?"] * 5, ["Paris"] * 5, answers,
                    bootstrap=500, seed=3)
    assert [summary.scores()[i] for i in (0, 1, 3)] == [9.0, 2.0, 4.0]
    assert math.isnan(summary.scores()[2]) and math.isnan(summary.scores()[4])
    assert (summary.scored, summary.n_unparsed) == (3, 1)
    assert summary.mean == pytest.approx(5.0)  # (9 + 2 + 4) / 3: the unparsed answer is not a score
    low, high = summary.interval or (0, 0)
    assert 2.0 <= low <= 5.0 <= high <= 9.0 and low < high
    # The same resamples as the project's bootstrap: a mean over the three scores.
    rng = np.random.default_rng(3)
    draws = [np.mean(np.asarray([9.0, 2.0, 4.0])[rng.integers(0, 3, size=3)]) for _ in range(500)]
    assert (low, high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])))
    assert len(judge.prompts) == 4  # nothing asked for the missing reply
    assert "Capital of France?" in judge.prompts[0] and "Reference answer:\nParis" in judge.prompts[0]
    assert summary.to_dict()["unparsed_answers"] == ["I would give it a 5"]


def test_a_rubric_without_its_slots_is_refused() -> None:
    with pytest.raises(InvalidInputError) as refused:
        grade(engine_generate(ScriptedJudge(lambda p: "")), "j", ["q"], ["r"], ["a"], rubric="Grade {answer}.")
    assert refused.value.code == "judge_rubric_slots" and refused.value.field == "judge_rubric"
    assert "{question}" in DEFAULT_RUBRIC and "{answer_1}" in DEFAULT_PAIR_RUBRIC


# ----------------------------------------------------------------------------------------------- pairwise


def test_pairwise_counts_wins_ties_losses_in_both_orders() -> None:
    """A fair judge (picks the answer equal to the reference) and a position-biased one (always answer 1)."""

    def fair(prompt: str) -> str:
        reference = answer_in(prompt, "Reference answer:")
        first, second = answer_in(prompt, "Answer 1:"), answer_in(prompt, "Answer 2:")
        if first == "garbled" or second == "garbled":
            return "Answer 1 is better"  # out of format
        if (first == reference) == (second == reference):
            return "Winner: tie\nReason: equally good"
        return f"Winner: {1 if first == reference else 2}\nReason: matches the reference"

    references = ["Paris", "Rome", "Berlin", "Madrid", "Oslo", "Bern"]
    replies_a = ["Paris", "Rome", "Munich", "Madrid", "Oslo", "garbled"]
    replies_b = ["Lyon", "Milan", "Berlin", "Madrid", None, "Bern"]
    judge = ScriptedJudge(fair)
    summary = compare_pair(engine_generate(judge), "fair", "A-model", "B-model", ["q"] * 6, references, replies_a,
                           replies_b)
    # Rows: A wins, A wins, B wins, tie (both right), not judged (B gave no reply), out of format.
    assert summary.outcomes == ["A", "A", "B", "tie", None, None]
    assert (summary.count("A"), summary.count("tie"), summary.count("B"), summary.counted) == (2, 1, 1, 4)
    assert summary.n_unparsed == 1
    assert summary.rates() == {"win_rate": 0.5, "tie_rate": 0.25, "loss_rate": 0.25}
    assert summary.intervals()["win_rate"] == pytest.approx(wilson(2, 4))
    # Both orders were asked for every judged row: A's reply first, then B's first.
    assert len(judge.prompts) == 10
    assert answer_in(judge.prompts[0], "Answer 1:") == "Paris" and answer_in(judge.prompts[1], "Answer 1:") == "Lyon"
    assert summary.a_first[:4] == ["1", "1", "2", "tie"] and summary.b_first[:4] == ["2", "2", "1", "tie"]

    biased = compare_pair(engine_generate(ScriptedJudge(lambda p: "Winner: 1\nReason: first is best")), "biased",
                          "A-model", "B-model", ["q"] * 6, references, replies_a, replies_b)
    assert biased.outcomes == ["tie", "tie", "tie", "tie", None, "tie"]  # the swap cancels the bias
    assert biased.count("A") == biased.count("B") == 0 and biased.n_unparsed == 0


def test_pairwise_summary_round_trips_through_json() -> None:
    import json

    from backend.evaluation.pairwise import PairwiseSummary

    summary = PairwiseSummary("j", "a", "b", ["A", None, "tie"], ["1", None, "tie"], ["2", None, "1"], 0.9, 1)
    again = PairwiseSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert again.to_dict() == summary.to_dict() and again.intervals()["win_rate"] == wilson(1, 2, 0.9)
