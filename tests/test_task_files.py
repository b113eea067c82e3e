"""Whole-file runs of the pipeline tasks: every task over a real CSV / JSONL / Parquet file, batching, cancel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from backend.data.files import read_table
from backend.core.registry import Registry
from backend.tasks.files import run_table
from backend.core.types import GenerationParams, InvalidInputError

TEXTS = ["Anna lives in Paris.", "", "The [MASK] sat on the mat.", "Prices rose 3.5% in March.",
         "Dr. Smith met the [MASK] team.", "The weather today is sunny."]


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS, "question": ["Where?"] * len(TEXTS)}).to_parquet(path)
    return read_table(path)


def test_ner_batched_equals_row_by_row(shared_registry: Registry, table: pd.DataFrame) -> None:
    batched = run_table(shared_registry, "tiny-ner", "ner", table, "text", batch_size=4)
    single = run_table(shared_registry, "tiny-ner", "ner", table, "text", batch_size=1)
    assert batched.completed == 5 and batched.blank_rows == 1 and "1 row(s) with an empty text" in batched.notices()[0]
    first = json.loads(batched.table["entities"][0])
    assert first and all(TEXTS[0][e["start"]:e["end"]] for e in first)
    assert pd.isna(batched.table["entities"][1])
    for a, b in zip(batched.table["entities"].dropna(), single.table["entities"].dropna()):
        assert [(e["entity"], e["start"], e["end"]) for e in json.loads(a)] == \
               [(e["entity"], e["start"], e["end"]) for e in json.loads(b)]


def test_embed_and_qa_and_fill_mask_columns(shared_registry: Registry, table: pd.DataFrame) -> None:
    embedded = run_table(shared_registry, "tiny-embed", "embed", table, "text", batch_size=3)
    assert len(json.loads(embedded.table["embedding"][0])) == 32
    answered = run_table(shared_registry, "tiny-qa", "question_answering", table, "text", question_column="question")
    row = answered.table.iloc[0]
    assert TEXTS[0][int(row["answer_start"]):int(row["answer_end"])] == row["answer"]
    filled = run_table(shared_registry, "tiny-mlm", "fill_mask", table, "text", options={"top_k": 2})
    assert filled.skipped == 3  # three texts have no [MASK]: left empty, counted, the file still runs
    assert filled.table["prediction"][2] and len(json.loads(filled.table["predictions"][2])[0]) == 2
    assert pd.isna(filled.table["prediction"][0])


def test_translation_of_a_file_and_a_pair_the_model_lacks(shared_registry: Registry, table: pd.DataFrame) -> None:
    params = GenerationParams(max_new_tokens=4, temperature=0.0)
    done = run_table(shared_registry, "tiny-seq2seq", "translate", table, "text", params=params,
                     options={"source": "en", "target": "de"}, batch_size=4)
    assert done.table["translation"].dropna().str.len().gt(0).all() and done.completed == 5
    with pytest.raises(InvalidInputError, match="does not translate en → it"):
        run_table(shared_registry, "tiny-seq2seq", "translate", table, "text", params=params,
                  options={"source": "en", "target": "it"})


def test_cancel_keeps_the_rows_done(shared_registry: Registry, table: pd.DataFrame) -> None:
    flag = threading.Event()
    seen = []

    def progress(fraction: float, description: str) -> None:
        seen.append(description)
        if fraction > 0:
            flag.set()  # cancel after the first batch

    result = run_table(shared_registry, "tiny-ner", "ner", table, "text", batch_size=2, progress=progress,
                       cancel=flag)
    assert result.cancelled and result.completed == 2 and seen[1] == "2 / 5 rows"
    # Rows are batched longest first (within windows): the two done rows are the two longest texts.
    done = [i for i, value in enumerate(result.table["entities"]) if not pd.isna(value)]
    longest = sorted((i for i, text in enumerate(TEXTS) if text), key=lambda i: len(TEXTS[i]), reverse=True)[:2]
    assert sorted(done) == sorted(longest) and len(result.table) == max(longest) + 1
    assert "cancelled after 2 of 5 rows" in result.notices()[-1] and "not reached" in result.notices()[-1]


def test_an_empty_file_is_refused_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="file: 'empty.csv' is empty"):
        read_table(empty)
    header_only = tmp_path / "header.jsonl"
    header_only.write_text("\n\n")
    with pytest.raises(InvalidInputError, match="is empty"):
        read_table(header_only)
