"""The Evaluate form's generation part (ui/evaluate/judging.py) without a browser: the conversation column and the
judge reach the run's config, the default rubric means "built in", compare with base finds the base, and a run of
two models shows the judge's counts and the pairwise line."""

from __future__ import annotations

import pytest

from backend.core.types import InvalidInputError
from backend.evaluation.data import ColumnMapping, DataSource, Examples
from backend.evaluation.judge import DEFAULT_RUBRIC
from backend.evaluation.pairwise import PairwiseSummary
from backend.evaluation.types import EvalConfig, ModelResult, RunResult
from ui.evaluate.controller import EvaluateController
from ui.evaluate.forms import EvalForm
from ui.evaluate.judging import ComparePanel, JudgeChoice, compare_summary

SOURCE = DataSource(path="suite.jsonl")


def test_the_form_maps_the_conversation_and_the_judge_for_generation_only() -> None:
    form = EvalForm(task="generation", input_column="input", reference_column="reference", models=("a", "b"),
                    conversation_column="context", judge="j", judge_rubric=None)
    config = form.config(SOURCE)
    assert config.columns == ColumnMapping(input="input", reference="reference", conversation="context")
    assert (config.judge, config.judge_rubric) == ("j", None)
    classify = EvalForm(task="classification", input_column="text", reference_column="label", models=("a",),
                        conversation_column="context", judge="j").config(SOURCE)
    assert classify.columns.conversation is None and classify.judge is None  # hidden widgets do not leak in
    with pytest.raises(InvalidInputError) as refused:
        EvalForm(task="generation", input_column="i", reference_column="r", models=("j",), judge="j").config(SOURCE)
    assert refused.value.code == "judge_is_candidate"


def test_the_default_rubric_text_means_the_built_in_one() -> None:
    assert JudgeChoice(judge_rubric=DEFAULT_RUBRIC).rubric is None
    assert JudgeChoice(judge_rubric="  ").rubric is None
    own = "Grade {answer} for {question} against {reference}."
    assert JudgeChoice(judge_rubric=own).rubric == own


def test_compare_with_base_uses_the_registry(shared_registry) -> None:
    ctl = EvaluateController(shared_registry)
    assert ctl.with_base(("tiny-chat", "tiny-nli")) == ("tiny-chat", "tiny-nli")  # two chosen: as they are
    with pytest.raises(InvalidInputError) as refused:
        ctl.with_base(("tiny-chat",))  # a models.yaml entry has no training run
    assert refused.value.code == "no_base_model"
    assert ("Tiny chat (random weights)", "tiny-chat") in ctl.judge_choices()


def test_a_judged_pair_is_shown_side_by_side() -> None:
    config = EvalConfig(task="generation", data=SOURCE, columns=ColumnMapping(input="i", reference="r"),
                        models=("ft", "base"), judge="j")
    examples = Examples(rows=[0, 1, 2], inputs=["q1", "q2", "q3"], references=["r1", "r2", "r3"])
    judged = {"judge": "j", "scored": 2, "n_unparsed": 1, "reasons": ["good", None, "bad"]}
    models = {model_id: ModelResult(model_id, "complete", metrics={"judge_score": 6.0}, predictions=["x", "y", "z"],
                                    example_scores={"judge_score": [8.0, float("nan"), 4.0]},
                                    details={"judge": judged}, completed=3) for model_id in ("ft", "base")}
    pair = PairwiseSummary("j", "ft", "base", ["A", "tie", None], ["1", "tie", None], ["2", "1", None], 0.95, 1)
    run = RunResult("r", "", config, examples, models, comparison=pair)
    lines = compare_summary(run)
    assert "judge `j` on `ft`: 2 scored, 1 out of format" in lines
    assert "`ft` vs `base` (judge `j`, both orders): 1 win / 1 tie / 0 loss of 2; win rate 50% [9%, 91%]" in lines
    assert "1 out of format" in lines.splitlines()[-1]
    updates = ComparePanel("box", "summary", "diffs").show(run)  # type: ignore[arg-type]  # keys, not widgets
    table = updates["diffs"]
    assert list(table["ft: reply"]) == ["x", "y", "z"] and list(table["pairwise"]) == ["ft", "tie", ""]
    assert list(table["ft: judge reason"])[0] == "good"
