"""Pairwise A/B: a judge compares two models' replies to the same prompt, in both orders.

Judges favour a position (often the first answer shown). Every example is therefore judged twice: once with
A's reply shown first and B's second, once with B's first and A's second. The rule that combines the two:

- A wins when both orders pick A; B wins (A loses) when both pick B;
- anything else is a tie: the two orders disagree (the verdict followed the position, not the answer), or
  either order said tie;
- an example where either answer is out of format is not counted in wins / ties / losses: it is reported as
  `n_unparsed`, so a judge that cannot follow the format shows up instead of looking like a tie.

Win, tie and loss rates are over the counted examples, each with a Wilson score interval (a binomial
proportion's interval that stays inside [0, 1] and behaves for small n and rates near 0 or 1).

The judge answers in one strict format: "Winner: 1" / "Winner: 2" / "Winner: tie", then "Reason: ...", or the
JSON object {"winner": "1" | "2" | "tie", "reason": "..."}; 1 and 2 are the positions, never the models' names.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal, Optional, Sequence, TypedDict

from backend.evaluation.judge import Generate, check_rubric, fill

DEFAULT_PAIR_RUBRIC = """You are a strict grader. Two assistants answered the same question. Compare both answers with
the reference answer and decide which is better in meaning and correctness.

Question (with the conversation before it, if any):
{question}

Reference answer:
{reference}

Answer 1:
{answer_1}

Answer 2:
{answer_2}

Reply in exactly this format and nothing else:
Winner: <1, 2 or tie>
Reason: <one sentence>"""
PAIR_SLOTS = ("{question}", "{reference}", "{answer_1}", "{answer_2}")
Position = Literal["1", "2", "tie"]
Outcome = Literal["A", "B", "tie"]
_RATES: tuple[tuple[str, Outcome], ...] = (("win_rate", "A"), ("tie_rate", "tie"), ("loss_rate", "B"))
_WINNER_FORMAT = re.compile(r"Winner:[ \t]*(1|2|tie)[ \t]*\r?\n+[ \t]*Reason:[ \t]*(\S.*)", re.DOTALL | re.IGNORECASE)


def parse_position(answer: str) -> Optional[Position]:
    """The position the judge picked ("1", "2", "tie"), or None when its answer is out of format."""
    text = answer.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        winner = str(data.get("winner")).lower() if isinstance(data, dict) and set(data) == {"winner", "reason"} \
            and isinstance(data.get("reason"), str) and data["reason"].strip() else None
        return winner if winner in ("1", "2", "tie") else None  # type: ignore[return-value]
    match = _WINNER_FORMAT.fullmatch(text)
    return match.group(1).lower() if match else None  # type: ignore[return-value]


def combine(a_first: Optional[Position], b_first: Optional[Position]) -> Optional[Outcome]:
    """The example's outcome from the two orders' picks (the rule in the module docstring); None: unparsed."""
    if a_first is None or b_first is None:
        return None
    picked_first = {"1": "A", "2": "B", "tie": "tie"}[a_first]  # A was shown as answer 1
    picked_second = {"1": "B", "2": "A", "tie": "tie"}[b_first]  # B was shown as answer 1
    return picked_first if picked_first == picked_second else "tie"  # type: ignore[return-value]


def wilson(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of successes / total (NaN, NaN when total is 0)."""
    if total == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    rate = successes / total
    denominator = 1 + z * z / total
    centre = (rate + z * z / (2 * total)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


class PairwiseFile(TypedDict, total=False):
    """`PairwiseSummary.to_dict()`: the run's "comparison" in results.json (read back by `from_dict`)."""

    judge: str
    model_a: str
    model_b: str
    wins: int
    ties: int
    losses: int
    counted: int
    n_unparsed: int
    confidence: float
    rates: dict[str, float]
    intervals: dict[str, list[float]]
    outcomes: list[Optional[Outcome]]
    a_first: list[Optional[Position]]
    b_first: list[Optional[Position]]


@dataclass
class PairwiseSummary:
    """A vs B over a run's examples: per-example outcomes and positions, counts, rates and intervals."""

    judge: str
    model_a: str
    model_b: str
    outcomes: list[Optional[Outcome]]  # None: not judged (a missing reply) or out of format
    a_first: list[Optional[Position]] = field(default_factory=list)
    b_first: list[Optional[Position]] = field(default_factory=list)
    confidence: float = 0.95
    n_unparsed: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for value in self.outcomes if value == outcome)

    @property
    def counted(self) -> int:
        return sum(1 for value in self.outcomes if value is not None)

    def rates(self) -> dict[str, float]:
        total = self.counted
        return {name: (self.count(outcome) / total if total else float("nan")) for name, outcome in _RATES}

    def intervals(self) -> dict[str, tuple[float, float]]:
        return {name: wilson(self.count(outcome), self.counted, self.confidence) for name, outcome in _RATES}

    def to_dict(self) -> PairwiseFile:
        return {"judge": self.judge, "model_a": self.model_a, "model_b": self.model_b,
                "wins": self.count("A"), "ties": self.count("tie"), "losses": self.count("B"),
                "counted": self.counted, "n_unparsed": self.n_unparsed, "confidence": self.confidence,
                "rates": self.rates(), "intervals": {k: list(v) for k, v in self.intervals().items()},
                "outcomes": self.outcomes, "a_first": self.a_first, "b_first": self.b_first}

    @staticmethod
    def from_dict(data: PairwiseFile) -> "PairwiseSummary":
        return PairwiseSummary(data["judge"], data["model_a"], data["model_b"], list(data.get("outcomes") or []),
                               list(data.get("a_first") or []), list(data.get("b_first") or []),
                               float(data.get("confidence") or 0.95), int(data.get("n_unparsed") or 0))


def compare_pair(generate: Generate, judge_id: str, model_a: str, model_b: str, questions: Sequence[str],
                 references: Sequence[str], replies_a: Sequence[Optional[str]], replies_b: Sequence[Optional[str]],
                 rubric: Optional[str] = None, confidence: float = 0.95) -> PairwiseSummary:
    """Judges every example where both models replied, in both orders, and combines the two verdicts."""
    rubric = rubric or DEFAULT_PAIR_RUBRIC
    check_rubric(rubric, PAIR_SLOTS, "pair_rubric")
    both = [i for i, (a, b) in enumerate(zip(replies_a, replies_b)) if a is not None and b is not None]
    prompts = []
    for index in both:  # A first, then B first, side by side so one batch holds both orders
        shared = {"question": questions[index], "reference": references[index]}
        prompts.append(fill(rubric, **shared, answer_1=replies_a[index] or "", answer_2=replies_b[index] or ""))
        prompts.append(fill(rubric, **shared, answer_1=replies_b[index] or "", answer_2=replies_a[index] or ""))
    answers = generate(prompts) if prompts else []
    count = len(replies_a)
    summary = PairwiseSummary(judge_id, model_a, model_b, [None] * count, [None] * count, [None] * count,
                              confidence)
    for slot, index in enumerate(both):
        first, second = answers[2 * slot], answers[2 * slot + 1]
        if first is None or second is None:  # cancelled before the judge answered
            continue
        summary.a_first[index], summary.b_first[index] = parse_position(first), parse_position(second)
        summary.outcomes[index] = combine(summary.a_first[index], summary.b_first[index])
        if summary.outcomes[index] is None:
            summary.n_unparsed += 1
    return summary
