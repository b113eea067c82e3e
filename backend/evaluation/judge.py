"""A judge model grades each reply against its reference: a score from 1 to 10 with its reason.

The judge is any generative model of the registry (local or remote), asked greedily through its chat template
with a rubric: editable, `DEFAULT_RUBRIC` unless given, with the slots {question}, {reference} and {answer}.
Its answer must be in one strict format, either

    Score: 7
    Reason: names the right city but adds a wrong date.

or the JSON object {"score": 7, "reason": "..."}; a score outside 1-10, extra text before or after, or any other
shape is out of format. Such answers are not guessed at: they are counted (`n_unparsed`) and reported, and the
mean score (with a percentile bootstrap interval, backend/evaluation/scoring.py's) is over the parsed ones.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence, TypedDict

import numpy as np

from backend.core.error_codes import refuse

if TYPE_CHECKING:
    from backend.engines.base import Engine

DEFAULT_RUBRIC = """You are a strict grader. Compare the assistant's answer with the reference answer.

Question (with the conversation before it, if any):
{question}

Reference answer:
{reference}

Assistant's answer:
{answer}

Grade how well the answer matches the reference in meaning and correctness, from 1 (wrong or unrelated) to 10
(fully correct and complete). Reply in exactly this format and nothing else:
Score: <a whole number from 1 to 10>
Reason: <one sentence>"""
RUBRIC_SLOTS = ("{question}", "{reference}", "{answer}")
JUDGE_MAX_NEW_TOKENS = 160  # a score line and one sentence of reason
SCORE_NAME = "judge_score"
# Strict: the whole answer is these two lines (the reason may run on), nothing before.
_SCORE_FORMAT = re.compile(r"Score:[ \t]*(\d{1,2})[ \t]*\r?\n+[ \t]*Reason:[ \t]*(\S.*)", re.DOTALL)

Generate = Callable[[list[str]], list[Optional[str]]]  # judge prompts -> answers (None: cancelled)


@dataclass(frozen=True)
class Grade:
    """One judge answer: the score and reason when in format, else None and "" (raw kept for the report)."""

    score: Optional[int]
    reason: str
    raw: str

    @property
    def parsed(self) -> bool:
        return self.score is not None


class JudgeDetails(TypedDict):
    """A model's judge figures in results.json (its ModelResult.details["judge"])."""

    judge: str
    scored: int
    n_unparsed: int
    reasons: list[Optional[str]]  # per example
    unparsed_answers: list[str]  # the first 20 answers out of format


@dataclass
class JudgeSummary:
    """One model's grades over a run's examples (None where the model or the judge gave no reply)."""

    judge: str
    grades: list[Optional[Grade]]
    mean: float = float("nan")
    interval: Optional[tuple[float, float]] = None
    scored: int = 0
    n_unparsed: int = 0

    def scores(self) -> list[float]:
        """Per example: the score, NaN where there is none."""
        return [float(g.score) if g is not None and g.score is not None else float("nan") for g in self.grades]

    def to_dict(self) -> JudgeDetails:
        return {"judge": self.judge, "scored": self.scored, "n_unparsed": self.n_unparsed,
                "reasons": [g.reason if g is not None else None for g in self.grades],
                "unparsed_answers": [g.raw for g in self.grades if g is not None and not g.parsed][:20]}


def check_rubric(rubric: Optional[str], slots: Sequence[str] = RUBRIC_SLOTS, field_name: str = "judge_rubric") -> None:
    """A rubric must have every slot, or the judge would grade without seeing the answer."""
    if rubric is None:
        return
    missing = [slot for slot in slots if slot not in rubric]
    if missing:
        raise refuse("judge_rubric_slots", field_name, slots=", ".join(slots), missing=", ".join(missing))


def fill(rubric: str, **values: str) -> str:
    """The rubric with its slots filled (str.replace: answers and references may hold other braces)."""
    for name, value in values.items():
        rubric = rubric.replace("{" + name + "}", value)
    return rubric


def parse_grade(answer: str) -> Grade:
    """The judge's answer as a `Grade`; out of format (see the module docstring) gives score None."""
    text = answer.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and set(data) == {"score", "reason"} and _valid_score(data["score"]) \
                and isinstance(data["reason"], str) and data["reason"].strip():
            return Grade(int(data["score"]), data["reason"].strip(), answer)
        return Grade(None, "", answer)
    match = _SCORE_FORMAT.fullmatch(text)
    if match and _valid_score(int(match.group(1))):
        return Grade(int(match.group(1)), match.group(2).strip(), answer)
    return Grade(None, "", answer)


def _valid_score(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10


def grade(generate: Generate, judge_id: str, questions: Sequence[str], references: Sequence[str],
          answers: Sequence[Optional[str]], rubric: Optional[str] = None, *, bootstrap: int = 1000,
          confidence: float = 0.95, seed: Optional[int] = 0,
          cancel: Optional[threading.Event] = None) -> JudgeSummary:
    """Grades `answers` (None: no reply, not graded) with the judge behind `generate`; mean and interval."""
    rubric = rubric or DEFAULT_RUBRIC
    check_rubric(rubric)
    asked = [index for index, answer in enumerate(answers) if answer is not None]
    prompts = [fill(rubric, question=questions[i], reference=references[i], answer=answers[i] or "") for i in asked]
    replies = generate(prompts) if prompts else []
    grades: list[Optional[Grade]] = [None] * len(answers)
    for index, reply in zip(asked, replies):
        if reply is not None:
            grades[index] = parse_grade(reply)
    summary = JudgeSummary(judge_id, grades)
    summarise(summary, bootstrap=bootstrap, confidence=confidence, seed=seed, cancel=cancel)
    return summary


def summarise(summary: JudgeSummary, *, bootstrap: int, confidence: float, seed: Optional[int],
              cancel: Optional[threading.Event] = None) -> None:
    """Counts, the mean score over the parsed grades, and its bootstrap interval (the project's bootstrap)."""
    from backend.evaluation.scoring import bootstrap_intervals

    answered = [g for g in summary.grades if g is not None]
    values = [float(g.score) for g in answered if g.score is not None]
    summary.scored, summary.n_unparsed = len(values), len(answered) - len(values)
    summary.mean = float(np.mean(values)) if values else float("nan")
    if bootstrap and len(values) > 1:
        intervals = bootstrap_intervals([_Mean()], [np.asarray(values).reshape(-1, 1)], bootstrap, confidence, seed,
                                        cancel)
        summary.interval = intervals.get(SCORE_NAME)


@dataclass
class _Mean:
    """The one-statistic metric `bootstrap_intervals` resamples: the mean judge score."""

    name: str = field(default=SCORE_NAME)

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        return {self.name: float(np.asarray(stats, dtype=np.float64)[:, 0].mean())}


def engine_generate(engine: "Engine", *, batch_size: int = 8, max_new_tokens: int = JUDGE_MAX_NEW_TOKENS,
                    cancel: Optional[threading.Event] = None) -> Generate:
    """`Generate` over an engine: greedy, through its chat template, batched when it runs in this process."""
    from backend.evaluation.inference import generate_texts

    def run(prompts: list[str]) -> list[Optional[str]]:
        return generate_texts(engine, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, chat=True,
                              cancel=cancel)[0]

    return run
