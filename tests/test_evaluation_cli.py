"""`python app.py eval`: the same numbers as the runner API, results files of the documented shape, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import app
from backend.evaluation.data import ColumnMapping, DataSource
from backend.evaluation.runner import run_evaluation
from backend.evaluation.types import EvalConfig
from tests.conftest import ROOT

QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Say hello.", "Hello!"),
    ("Count to three.", "1 2 3"),
    ("Name an animal that barks.", "The dog."),
    ("What colour is the sky?", "The sky is blue."),
]


@pytest.fixture
def qa_csv(tmp_path: Path) -> Path:
    path = tmp_path / "qa.csv"
    pd.DataFrame({"question": [q for q, _ in QA], "answer": [a for _, a in QA]}).to_csv(path, index=False)
    return path


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", "eval", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


@pytest.mark.full
def test_cli_and_runner_give_the_same_numbers(shared_registry, tiny_models_yaml: Path, qa_csv: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("--models", str(tiny_models_yaml), "--model", "tiny-chat", "--data", str(qa_csv),
                     "--task", "generation", "--input-column", "question", "--reference-column", "answer",
                     "--prompt-template", "Q: {input} A:", "--max-new-tokens", "8", "--batch-size", "2",
                     "--bootstrap", "200", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "results.json").read_text())
    config = EvalConfig(task="generation", data=DataSource(path=str(qa_csv)), models=("tiny-chat",),
                        columns=ColumnMapping(input="question", reference="answer"), prompt_template="Q: {input} A:",
                        max_new_tokens=8, batch_size=2, bootstrap=200)
    api = run_evaluation(config, shared_registry, runs_dir=None).to_dict()
    assert saved["task"] == "generation"
    cli_model, api_model = saved["models"]["tiny-chat"], api["models"]["tiny-chat"]
    assert cli_model["metrics"] == api_model["metrics"]
    assert set(cli_model["metrics"]) >= {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match",
                                         "mean_length"}
    assert cli_model["intervals"] == api_model["intervals"]
    assert cli_model["predictions"] == api_model["predictions"]
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(predictions["input"]) == [q for q, _ in QA]
    assert list(predictions["prediction"]) == api_model["predictions"]
    assert "tiny-chat: bleu" in result.stdout


def test_cli_scores_a_predictions_column_without_a_model(tmp_path: Path) -> None:
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps({"label": t, "pred": p}) + "\n" for t, p in
                            [("pos", "pos"), ("neg", "pos"), ("neg", "neg"), ("pos", "pos")]))
    code = app.main(["eval", "--data", str(path), "--task", "classification", "--reference-column", "label",
                     "--predictions-column", "pred", "--bootstrap", "0", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(saved["models"]) == ["predictions"] and saved["models"]["predictions"]["metrics"]["accuracy"] == 0.75


@pytest.mark.full
def test_cli_missing_column_exits_non_zero_naming_the_columns(qa_csv: Path, tmp_path: Path) -> None:
    result = run_cli("--data", str(qa_csv), "--task", "generation", "--reference-column", "answer",
                     "--predictions-column", "model_answer", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "error: predictions column: there is no column 'model_answer'; the columns are 'question', 'answer'" \
        in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.full
def test_cli_hub_dataset_offline_is_a_fast_clear_error(tmp_path: Path) -> None:
    result = run_cli("--task", "generation", "--hub-dataset", "someone/summaries", "--split", "validation",
                     "--predictions-column", "p", "--reference-column", "r", "--out", str(tmp_path / "out"),
                     HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    assert "error: data: the Hub dataset 'someone/summaries' cannot be reached offline" in result.stderr


@pytest.mark.parametrize("case", ["empty file", "unknown labels", "unknown model"])
def test_cli_bad_input_exits_non_zero_with_a_clear_message(case: str, tiny_models_yaml: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("text,label\nI loved it,positive\nawful,very negative\n", encoding="utf-8")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    common = ["--models", str(tiny_models_yaml), "--task", "classification", "--input-column", "text",
              "--reference-column", "label", "--out", str(tmp_path / "out"), "--quiet"]
    argv, expected = {
        "empty file": (["--model", "tiny-classifier", "--data", str(empty)], "'empty.csv' is empty"),
        "unknown labels": (["--model", "tiny-classifier", "--data", str(labels)],
                           "model 'tiny-classifier' does not know: 'very negative'"),
        "unknown model": (["--model", "tiny-bert", "--data", str(labels)],
                          "unknown model 'tiny-bert'; models in this registry: tiny-chat"),
    }[case]
    assert app.main(["eval", *common, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and expected in captured.err
    assert not (tmp_path / "out").exists()
