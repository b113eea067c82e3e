"""Evaluation runs of the pipeline tasks through the same runner (leaderboard, intervals, per-example scores) and
the CLI, on tiny real models and real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from seqeval.metrics import f1_score

from backend.evaluation.data import ColumnMapping, DataSource
from backend.evaluation.runner import run_evaluation
from backend.evaluation.task_inference import entities_to_tags, words_to_text
from backend.evaluation.types import EvalConfig
from backend.core.registry import Registry
from backend.tasks.types import Entity
from backend.core.types import UnsupportedTaskError
from tests.conftest import ROOT


def test_entities_become_word_tags() -> None:
    text, spans = words_to_text(["Anna", "lives", "in", "New", "York", "."])
    assert text == "Anna lives in New York ."
    entities = [Entity("PER", 0.9, "anna", 0, 4), Entity("LOC", 0.8, "new york", 14, 22)]
    assert entities_to_tags(spans, entities) == ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"]


def test_ner_run_scores_entity_f1_as_seqeval_does(shared_registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "ner.jsonl"
    rows = [{"tokens": ["Anna", "lives", "in", "Paris", "."], "tags": ["B-PER", "O", "O", "B-LOC", "O"]},
            {"tokens": ["Dr.", "Smith", "met", "the", "team"], "tags": ["B-PER", "I-PER", "O", "O", "O"]},
            {"tokens": ["Prices", "rose", "in", "March"], "tags": ["O", "O", "O", "O"]}]
    path.write_text("\n".join(json.dumps(row) for row in rows))
    config = EvalConfig(task="ner", data=DataSource(path=str(path)),
                        columns=ColumnMapping(input="tokens", reference="tags"), models=("tiny-ner",), bootstrap=50)
    run = run_evaluation(config, shared_registry, runs_dir=None)
    result = run.models["tiny-ner"]
    assert result.status == "complete", result.error
    predicted = [p.split() for p in result.predictions]
    assert [len(p) for p in predicted] == [5, 5, 4]
    assert result.metrics["entity_f1"] == pytest.approx(f1_score([r["tags"] for r in rows], predicted))
    board = run.leaderboard()
    assert "entity_f1" in " ".join(map(str, board.columns))


def test_qa_and_translation_runs(shared_registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    pd.DataFrame({"question": ["Where is the meeting?", "When?"],
                  "context": ["The meeting is in room B-204.", "It starts at 10 a.m. on Tuesday."],
                  "answer": ['["room B-204", "B-204"]', "10 a.m."]}).to_csv(path, index=False)
    config = EvalConfig(task="question_answering", data=DataSource(path=str(path)),
                        columns=ColumnMapping(input="question", reference="answer", context="context"),
                        models=("tiny-qa",), bootstrap=0)
    result = run_evaluation(config, shared_registry, runs_dir=None).models["tiny-qa"]
    assert result.status == "complete", result.error
    assert set(result.metrics) == {"squad_exact_match", "squad_f1"}
    assert all(p in c for p, c in zip(result.predictions, ["The meeting is in room B-204.",
                                                           "It starts at 10 a.m. on Tuesday."]))
    with pytest.raises(UnsupportedTaskError, match="does not do 'question_answering'"):
        run_evaluation(EvalConfig(task="question_answering", data=DataSource(path=str(path)),
                                  columns=config.columns, models=("tiny-ner",)), shared_registry, runs_dir=None)

    path = tmp_path / "mt.csv"
    pd.DataFrame({"text": ["Good morning.", "Thank you."], "target": ["Guten Morgen.", "Danke."]}).to_csv(
        path, index=False)
    config = EvalConfig(task="translation", data=DataSource(path=str(path)),
                        columns=ColumnMapping(input="text", reference="target"), models=("tiny-seq2seq",),
                        max_new_tokens=4, bootstrap=0, source_language="en", target_language="de")
    result = run_evaluation(config, shared_registry, runs_dir=None).models["tiny-seq2seq"]
    assert result.status == "complete", result.error
    assert {"bleu", "chrf"} <= set(result.metrics)
    bad = EvalConfig(task="translation", data=DataSource(path=str(path)), columns=config.columns,
                     models=("tiny-seq2seq",), bootstrap=0, source_language="en", target_language="xx")
    failed = run_evaluation(bad, shared_registry, runs_dir=None).models["tiny-seq2seq"]
    assert failed.status == "failed" and "does not translate en → xx" in failed.error


@pytest.mark.full
def test_cli_summarization_run(tiny_models_yaml: Path, tmp_path: Path) -> None:
    path = tmp_path / "sum.csv"
    pd.DataFrame({"document": ["The quick brown fox jumps over the lazy dog. It was fast."],
                  "summary": ["A fox jumps over a dog."]}).to_csv(path, index=False)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "eval", "--models", str(tiny_models_yaml),
                           "--model", "tiny-seq2seq", "--data", str(path), "--task", "summarization",
                           "--input-column", "document", "--reference-column", "summary", "--max-new-tokens", "4",
                           "--bootstrap", "0", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert "rougeL" in json.dumps(results)
