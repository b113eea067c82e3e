"""Evaluation data: files of every format, column mapping, sampling, and clear errors (no model involved)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from backend.evaluation import data
from backend.evaluation.data import ColumnMapping, DataSource, load_table, select_examples
from backend.core.types import InvalidInputError

ROWS = [
    {"question": "What is the capital of France?", "answer": "Paris", "label": "positive"},
    {"question": "Two plus two?", "answer": "4", "label": "negative"},
    {"question": "", "answer": "blank question", "label": "negative"},
    {"question": "Name a colour", "answer": "blue", "label": "positive"},
]


def write(tmp_path: Path, kind: str, rows: list[dict] = ROWS) -> Path:
    path = tmp_path / f"data.{kind}"
    frame = pd.DataFrame(rows)
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_every_format_gives_the_same_examples(tmp_path: Path, kind: str) -> None:
    table = load_table(DataSource(path=str(write(tmp_path, kind))))
    examples = select_examples(table, "generation", ColumnMapping(input="question", reference="answer"))
    assert examples.inputs == ["What is the capital of France?", "Two plus two?", "Name a colour"]
    assert examples.references == ["Paris", "4", "blue"]
    assert examples.rows == [0, 1, 3]  # the row with an empty question is skipped, and the user is told
    assert examples.notices == ["1 row(s) with an empty 'answer' / 'question' were skipped"]


def test_predictions_mode_needs_no_input_column(tmp_path: Path) -> None:
    table = load_table(DataSource(path=str(write(tmp_path, "csv"))))
    examples = select_examples(table, "classification", ColumnMapping(reference="label", predictions="label"))
    assert examples.predictions == examples.references and len(examples) == 4


def test_missing_column_names_the_columns_there_are(tmp_path: Path) -> None:
    table = load_table(DataSource(path=str(write(tmp_path, "csv"))))
    with pytest.raises(InvalidInputError) as error:
        select_examples(table, "generation", ColumnMapping(input="prompt", reference="answer"))
    assert "no column 'prompt'" in str(error.value)
    assert "'question', 'answer', 'label'" in str(error.value)
    with pytest.raises(InvalidInputError, match="reference column: generation needs one"):
        select_examples(table, "generation", ColumnMapping(input="question"))


def test_empty_files_are_refused_clearly(tmp_path: Path) -> None:
    for name, content in (("empty.csv", ""), ("header.csv", "text,label\n"), ("blank.jsonl", "\n\n")):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(InvalidInputError, match="empty|no rows"):
            load_table(DataSource(path=str(path)))


def test_limit_takes_the_first_rows_or_a_seeded_sample(tmp_path: Path) -> None:
    rows = [{"text": f"text {i}", "label": "a" if i % 2 else "b"} for i in range(50)]
    table = load_table(DataSource(path=str(write(tmp_path, "jsonl", rows))))
    mapping = ColumnMapping(input="text", reference="label")
    assert select_examples(table, "classification", mapping, limit=3).rows == [0, 1, 2]
    sample = select_examples(table, "classification", mapping, limit=10, seed=1).rows
    assert sample == select_examples(table, "classification", mapping, limit=10, seed=1).rows
    assert sample != select_examples(table, "classification", mapping, limit=10, seed=2).rows
    assert sample == sorted(sample) and len(set(sample)) == 10
    with pytest.raises(InvalidInputError, match="limit"):
        select_examples(table, "classification", mapping, limit=0)


def test_guess_columns_finds_the_usual_names(tmp_path: Path) -> None:
    table = load_table(DataSource(path=str(write(tmp_path, "csv"))))
    assert data.guess_columns(table, "generation") == ColumnMapping(input="question", reference="answer")
    assert data.guess_columns(table, "classification") == ColumnMapping(input="question", reference="label")
    assert data.guess_columns(table, "perplexity") == ColumnMapping(input="question")
    assert list(data.preview(table, 2)["answer"]) == ["Paris", "4"]


def test_hub_dataset_offline_is_a_fast_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(InvalidInputError) as error:
        load_table(DataSource(hub_id="someone/not-cached-dataset", split="test"))
    assert "'someone/not-cached-dataset' cannot be reached offline" in str(error.value)
    assert time.perf_counter() - started < 15


def test_hub_dataset_without_network_fails_on_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not flagged offline, but no network: one quick probe fails, load_dataset (a minute of retries) never runs."""
    import datasets
    from huggingface_hub import HfApi

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def unreachable(self, repo_id: str, **kwargs) -> None:
        raise ConnectionError("Name or service not known")

    def must_not_run(*args, **kwargs) -> None:
        raise AssertionError("load_dataset should not be reached")

    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    with pytest.raises(InvalidInputError, match="'someone/dataset' cannot be reached: this machine looks offline"):
        load_table(DataSource(hub_id="someone/dataset"))


def test_importing_the_evaluation_api_stays_light() -> None:
    """A UI imports the runner, results and store at start-up: no torch, transformers, evaluate or datasets."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, backend.evaluation.runner, backend.evaluation.store, backend.evaluation.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'evaluate', 'datasets', 'gradio') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("dataset_id", ["{folder}", "text", "csv", "..", "owner/../x", "a/b/c", "imdb"])
def test_a_hub_id_is_only_ever_a_hub_repository(dataset_id: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, `datasets` would load a local folder (or the `text` builder over it) by this name."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "data.csv").write_text("text,label\nserver file,x\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="is not a Hub dataset id; give one as owner/name"):
        load_table(DataSource(hub_id=dataset_id.format(folder=tmp_path), split="train"))


def test_an_owner_name_id_that_is_also_a_local_folder_is_refused(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "someone" / "reviews").mkdir(parents=True)
    (tmp_path / "someone" / "reviews" / "test.csv").write_text("text,label\nserver file,x\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="names a folder on the server"):
        load_table(DataSource(hub_id="someone/reviews"))
