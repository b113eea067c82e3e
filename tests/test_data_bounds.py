"""Issue 15 items 2 and 10: crafted files that once took gigabytes (or 20 s of CPU) are refused with a clear
error, or shown capped; the limits come from backend/guard/table_limits.py (WORKBENCH_MAX_* to change them)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.data import files as datafiles
from backend.guard.table_limits import PREVIEW_CELL_CHARS, SHOWN_CELL_CHARS, TableLimits
from backend.core.types import ConfigError, InvalidInputError
from tests.test_ui_evaluate import Tab, final


@pytest.fixture
def tab(shared_registry, tmp_path: Path) -> Tab:
    return Tab(shared_registry, tmp_path / "runs")


def repeated_parquet(path: Path, rows: int, cell_chars: int) -> Path:
    """`rows` copies of one `cell_chars`-character text, dictionary-encoded and compressed: tiny on disk."""
    text = "spam " * (cell_chars // 5)
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([text]))
    pq.write_table(pa.table({"text": column, "label": pa.array(["x"] * rows)}), path, compression="zstd")
    return path


def test_a_parquet_that_expands_a_thousandfold_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    path = repeated_parquet(tmp_path / "bomb.parquet", rows=100_000, cell_chars=10_000)  # ~1 GB of text
    assert path.stat().st_size < 1_000_000
    with pytest.raises(InvalidInputError, match=r"'bomb.parquet' expands to 95\d MB of text once decoded; the "
                                                r"limit is 64 MB"):
        datafiles.read_table(path)
    one_cell = repeated_parquet(tmp_path / "cell.parquet", rows=3, cell_chars=1_000_000)
    with pytest.raises(InvalidInputError, match="a cell of column 'text' holds 1,000,000 characters; the limit is "
                                                "100,000 per cell"):
        datafiles.read_table(one_cell)
    small = datafiles.read_table(repeated_parquet(tmp_path / "fine.parquet", rows=10, cell_chars=1_000))
    assert len(small) == 10 and len(small["text"][0]) == 1_000  # what fits is read as before


def test_200k_columns_and_a_single_huge_cell_are_refused_with_the_limit(tab: Tab, tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(200_000)) + "\n" + ",".join("1" for _ in range(200_000)) + "\n")
    with pytest.raises(gr.Error, match="'wide.csv' has 200,000 columns; the limit is 200") as error:
        tab.upload(wide, "classification")
    assert len(error.value.message) < 500  # not a list of 200,000 names
    huge = tmp_path / "huge.csv"
    huge.write_text("text,label\n" + "a" * 20_000_000 + ",x\n")
    with pytest.raises(gr.Error, match="a cell of column 'text' holds 20,000,000 characters; the limit is 100,000"):
        tab.upload(huge, "classification")
    keys = tmp_path / "keys.jsonl"
    keys.write_text('{"text": "a", ' + ", ".join(f'"k{i}": {i}' for i in range(300)) + "}\n")
    with pytest.raises(InvalidInputError, match="more than 200 different keys"):
        datafiles.read_table(keys)


def test_previews_and_result_tables_send_short_cells(tab: Tab, tmp_path: Path) -> None:
    long_text = "word " * 10_000  # 50,000 characters: allowed, but not sent whole to the page
    path = tmp_path / "long.csv"
    pd.DataFrame({"text": [long_text] * 3, "label": ["a", "b", "a"], "pred": ["a", "a", "a"]}).to_csv(path,
                                                                                                      index=False)
    updates = tab.upload(path, "classification")
    preview = tab.value(updates, "eval-preview")
    assert max(len(cell) for cell in preview["text"]) <= PREVIEW_CELL_CHARS + 40
    last = final(tab.run({"path": str(path)}, {"eval-task": "classification", "eval-input-col": "text",
                                                "eval-reference-col": "label", "eval-score-file": True,
                                                "eval-predictions-col": "pred"}))
    shown = tab.value(last, "eval-examples")
    assert max(len(cell) for cell in shown["input"]) <= SHOWN_CELL_CHARS + 40
    downloaded = pd.read_csv(tab.file(last, "eval-download-csv"))
    assert set(downloaded["input"]) == {long_text}  # the download keeps every character


def test_2000_labels_give_a_capped_confusion_matrix(tab: Tab, tmp_path: Path) -> None:
    labels = [f"label-{i:04d}" for i in range(2_000)]
    references = labels * 2
    predictions = labels[1:] + labels[:1] + labels  # half right
    path = tmp_path / "many.csv"
    pd.DataFrame({"text": ["t"] * 4_000, "label": references, "pred": predictions}).to_csv(path, index=False)
    last = final(tab.run({"path": str(path)}, {"eval-task": "classification", "eval-input-col": "text",
                                                "eval-reference-col": "label", "eval-score-file": True,
                                                "eval-predictions-col": "pred", "eval-bootstrap": 50}))
    board = tab.value(last, "eval-leaderboard")
    assert board["accuracy"][0].startswith("0.5 [")
    heat = tab.value(last, "eval-confusion")
    assert heat.count("<tr>") == 1 + 31  # the header, 30 classes and "(other)"
    assert "the 30 most frequent of 2,000 classes" in heat and "(other) (1,970 labels)" in heat
    assert len(heat) < 100_000
    assert len(tab.value(last, "eval-per-class")) == 500  # capped in the page; results.json has all 2,000


def test_limits_come_from_the_environment_with_clear_errors() -> None:
    limits = TableLimits.from_env({"WORKBENCH_MAX_COLUMNS": "12", "WORKBENCH_MAX_TABLE_MB": "1"})
    assert limits.max_columns == 12 and limits.max_table_bytes == 2**20 and limits.max_rows == 100_000
    with pytest.raises(ConfigError, match="WORKBENCH_MAX_CELL_CHARS: must be a whole number of at least 1"):
        TableLimits.from_env({"WORKBENCH_MAX_CELL_CHARS": "lots"})


def test_a_binary_file_renamed_csv_is_told_what_it_is(tab: Tab, tmp_path: Path) -> None:
    workbook = tmp_path / "sales.csv"
    workbook.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 20)
    with pytest.raises(gr.Error, match=r"'sales.csv' is named .csv but is a ZIP archive \(an Excel .xlsx workbook "
                                       r"is one\); export it as CSV \(UTF-8\)") as error:
        tab.upload(workbook, "classification")
    assert "UTF-8 (byte" not in error.value.message
