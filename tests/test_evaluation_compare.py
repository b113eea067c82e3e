"""Compare with base, end to end on tiny real models: `app.py eval --model FT --with-base --judge J` finds the base
from the training run's config, runs both, has the judge grade and compare them (both orders), prints them side by
side and writes the per-example diffs. The tiny judge has random weights: its answers are out of format, which
must be counted and reported, never crash the run (hand-computed verdicts are in test_evaluation_judge.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

import app
from backend.core.registry_source import open_registry
from backend.engines import create_engine
from backend.core.types import InvalidInputError
from backend.data import feedback
from backend.data.store import dataset_path
from backend.evaluation.compare import base_of
from backend.evaluation.data import ColumnMapping, DataSource
from backend.evaluation.types import EvalConfig
from backend.training.config import TrainConfig, save_train_config

CASES = [
    ([{"role": "user", "content": "My cat is called Tom."}, {"role": "assistant", "content": "Nice!"},
      {"role": "user", "content": "What is my cat called?"}, {"role": "assistant", "content": "?"}], "Tom"),
    ([{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}], "Paris"),
    ([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "4"),
]


@pytest.fixture
def compare_setup(tiny_models_yaml: Path, tmp_path: Path) -> tuple[Path, Path]:
    """models.yaml with the tiny chat model as `tiny-base` and `tiny-judge`, and `tiny-ft`: a finished training
    run's model folder (the same weights) whose config.yaml says it was trained from tiny-base; a Chat suite."""
    tiny = yaml.safe_load(tiny_models_yaml.read_text())["models"][0]
    run = tmp_path / "runs" / "sft-run"
    shutil.copytree(tiny["source"], run / "model")
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"messages": CASES[1][0]}) + "\n", encoding="utf-8")
    save_train_config(TrainConfig(task="sft", base=tiny["source"], base_id="tiny-base", data=str(data),
                                  messages_column="messages"), run / "config.yaml")
    entries = [{**tiny, "id": "tiny-base"}, {**tiny, "id": "tiny-judge"},
               {**tiny, "id": "tiny-ft", "source": str(run / "model")}]
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    for conversation, expected in CASES:
        feedback.save_test_case(None, "suite", conversation, expected=expected, root=tmp_path / "data")
    return models, dataset_path(None, "suite", "data", root=tmp_path / "data")


def test_base_of_reads_the_run_and_refuses_a_model_without_one(compare_setup: tuple[Path, Path]) -> None:
    registry = open_registry(compare_setup[0], runs_root=compare_setup[0].parent / "no-overlay",
                             engine_factory=create_engine)
    try:
        assert base_of(registry, "tiny-ft") == "tiny-base"
        with pytest.raises(InvalidInputError) as refused:
            base_of(registry, "tiny-base")
        assert refused.value.code == "no_base_model"
    finally:
        registry.close()


def test_a_judge_that_is_also_a_candidate_is_refused() -> None:
    with pytest.raises(InvalidInputError) as refused:
        EvalConfig(task="generation", data=DataSource(path="x.csv"), columns=ColumnMapping(input="a", reference="b"),
                   models=("m", "j"), judge="j").validated()
    assert refused.value.code == "judge_is_candidate"


def test_compare_with_base_from_the_command_line(compare_setup: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    models, suite = compare_setup
    out = tmp_path / "out"
    code = app.main(["eval", "--models", str(models), "--model", "tiny-ft", "--with-base", "--judge", "tiny-judge",
                     "--data", str(suite), "--task", "generation", "--input-column", "input",
                     "--reference-column", "reference", "--conversation-column", "context",
                     "--max-new-tokens", "6", "--judge-max-new-tokens", "8", "--bootstrap", "100",
                     "--out", str(out), "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["models"]) == ["tiny-ft", "tiny-base"]  # the base found from the run's config
    assert saved["config"]["judge"] == "tiny-judge"
    for model in saved["models"].values():
        judged = model["details"]["judge"]
        assert judged["scored"] + judged["n_unparsed"] == len(CASES)  # every reply graded or counted
        assert {"contains", "normalized_exact_match", "bleu"} <= set(model["metrics"])
    pair = saved["comparison"]
    assert (pair["model_a"], pair["model_b"]) == ("tiny-ft", "tiny-base")
    assert pair["counted"] + pair["n_unparsed"] == len(CASES)
    assert pair["wins"] + pair["ties"] + pair["losses"] == pair["counted"]
    # Same weights, same greedy replies; the history went in (turn 1 of the first case is in the judge's report).
    assert saved["models"]["tiny-ft"]["predictions"] == saved["models"]["tiny-base"]["predictions"]
    assert saved["examples"]["conversations"][0][0]["content"] == "My cat is called Tom."
    diffs = pd.read_csv(out / "diffs.csv", keep_default_na=False)
    assert list(diffs["reference"]) == ["Tom", "Paris", "4"]
    assert {"tiny-ft: reply", "tiny-base: reply", "tiny-ft: judge_score", "pairwise"} <= set(diffs.columns)
    assert "tiny-ft" in printed.out and "tiny-base" in printed.out and "contains" in printed.out
    assert "tiny-ft vs tiny-base (judge tiny-judge, both orders)" in printed.out
    assert f"per-example diffs: {out / 'diffs.csv'}" in printed.out
    assert f"{pair['n_unparsed']} out of format" in printed.out
