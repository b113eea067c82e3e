"""Reading uploaded tables: CSV, JSONL and Parquet, and a clear error for each way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backend.data import files as datafiles
from backend.core.types import InvalidInputError


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as caught:
        datafiles.read_table(path, **kwargs)
    return str(caught.value)


# ------------------------------------------------------------------------------------------ formats


def test_csv_keeps_every_value_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, "reviews.csv", 'id,text\n007,"I loved it, really"\n2,NA\n3,\n')
    table = datafiles.read_table(path)
    assert list(table.columns) == ["id", "text"]
    assert table["id"].tolist() == ["007", "2", "3"]
    assert datafiles.column_texts(table, "text") == ["I loved it, really", "NA", ""]


def test_csv_with_a_utf8_bom_and_accents(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", "\ufefftext\nCafé naïve 🙂\n".encode("utf-8"))
    table = datafiles.read_table(path)
    assert list(table.columns) == ["text"]
    assert datafiles.column_texts(table, "text") == ["Café naïve 🙂"]


def test_jsonl_reads_objects_and_skips_blank_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"text": "good", "n": 1}), "", json.dumps({"text": "bad", "n": None})]
    path = write(tmp_path, "data.jsonl", "\n".join(lines) + "\n")
    table = datafiles.read_table(path)
    assert len(table) == 2
    assert datafiles.column_texts(table, "text") == ["good", "bad"]
    assert datafiles.column_texts(table, "n") == ["1", ""]  # numbers become text, missing values blank


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pd.DataFrame({"review": ["fine", "awful", None], "stars": [4, 1, 3]}).to_parquet(path)
    table = datafiles.read_table(path)
    assert datafiles.column_texts(table, "review") == ["fine", "awful", ""]
    assert datafiles.guess_text_column(table) == "review"


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    assert len(datafiles.read_table(write(tmp_path, "UPPER.CSV", "text\nx\n"))) == 1


def test_guess_text_column_prefers_known_names_then_long_text(tmp_path: Path) -> None:
    assert datafiles.guess_text_column(pd.DataFrame({"id": ["1"], "Sentence": ["a b"]})) == "Sentence"
    table = pd.DataFrame({"id": ["1", "2"], "code": ["a", "b"], "body_text": ["a long review", "another one"]})
    assert datafiles.guess_text_column(table) == "body_text"


def test_write_csv_round_trips(tmp_path: Path) -> None:
    table = pd.DataFrame({"text": ["a, b", "ü"], "score": [0.5, 0.25]})
    out = datafiles.write_csv(table, tmp_path / "out.csv")
    assert pd.read_csv(out).to_dict("list") == {"text": ["a, b", "ü"], "score": [0.5, 0.25]}


# ------------------------------------------------------------------------------------------- errors


def test_empty_files(tmp_path: Path) -> None:
    assert "is empty" in error_of(write(tmp_path, "empty.csv", b""))
    assert "is empty" in error_of(write(tmp_path, "blank.jsonl", "\n  \n"))
    assert "header but no rows" in error_of(write(tmp_path, "header.csv", "text,label\n"))


def test_utf16_file_is_refused_with_the_expected_encoding_named(tmp_path: Path) -> None:
    path = write(tmp_path, "excel.csv", "text\nhello\nworld\n".encode("utf-16"))
    message = error_of(path)
    assert "UTF-16" in message and "UTF-8" in message and "excel.csv" in message
    no_bom = write(tmp_path, "nobom.csv", "text\nhello\n".encode("utf-16-le"))
    assert "UTF-16" in error_of(no_bom)


def test_latin1_file_is_refused_with_the_line_named(tmp_path: Path) -> None:
    path = write(tmp_path, "latin.csv", "text\nok\ncafé\n".encode("latin-1"))
    message = error_of(path)
    assert "not UTF-8" in message and "line 3" in message and "0xe9" in message


def test_missing_column_names_the_columns_that_exist(tmp_path: Path) -> None:
    table = datafiles.read_table(write(tmp_path, "t.csv", "review,stars\ngood,5\n"))
    with pytest.raises(InvalidInputError) as caught:
        datafiles.column_texts(table, "text")
    assert "no column 'text'" in str(caught.value)
    assert "'review', 'stars'" in str(caught.value)
    with pytest.raises(InvalidInputError, match="pick the column"):
        datafiles.column_texts(table, None)


def test_unsupported_extension(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "sheet.xlsx", b"PK\x03\x04"))
    assert "sheet.xlsx" in message and ".csv" in message and ".parquet" in message


def test_size_and_row_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "big.csv", "text\n" + "some words\n" * 200)
    assert "the limit is" in error_of(path, max_bytes=1000) and "MB" in error_of(path, max_bytes=1000)
    assert "200 rows; the limit is 100" in error_of(path, max_rows=100)
    jsonl = write(tmp_path, "big.jsonl", '{"text": "x"}\n' * 20)
    assert "more than 10 rows" in error_of(jsonl, max_rows=10)
    parquet = tmp_path / "big.parquet"
    pd.DataFrame({"text": ["x"] * 20}).to_parquet(parquet)
    assert "20 rows; the limit is 10" in error_of(parquet, max_rows=10)


def test_broken_jsonl_names_the_line(tmp_path: Path) -> None:
    assert "line 2 is not valid JSON" in error_of(write(tmp_path, "bad.jsonl", '{"text": "a"}\n{"text": \n'))
    assert "line 1 is a JSON list" in error_of(write(tmp_path, "list.jsonl", '["a", "b"]\n'))


def test_broken_parquet(tmp_path: Path) -> None:
    assert "not a readable Parquet file" in error_of(write(tmp_path, "bad.parquet", b"this is not parquet"))


def test_display_name_replaces_the_temporary_path(tmp_path: Path) -> None:
    assert "my upload.csv" in error_of(write(tmp_path, "tmp123.csv", b""), display_name="my upload.csv")
