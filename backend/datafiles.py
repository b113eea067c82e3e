"""Tables from uploaded files (CSV, JSONL, Parquet) for whole-file classification, with errors a user can act on.

Every failure is an `InvalidInputError` that names the file and says what to do: wrong extension, too big, empty,
not UTF-8 (with a guess at the encoding it is in), a line that is not JSON, a column that is not there (naming the
columns that are). pandas / pyarrow only; nothing here touches a model.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from backend.types import InvalidInputError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000
SUPPORTED_EXTENSIONS = (".csv", ".jsonl", ".parquet")
# Column names that usually hold the text to classify, most likely first (matched case-insensitively).
TEXT_COLUMN_HINTS = ("text", "sentence", "content", "review", "body", "message", "document", "input", "prompt")


def read_table(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES, max_rows: int = MAX_ROWS,
               display_name: Optional[str] = None) -> pd.DataFrame:
    """Reads a .csv / .jsonl / .parquet file into a DataFrame (text columns stay text: "NA" is not NaN).

    `display_name` is what error messages call the file (an upload's temp path means nothing to its owner).
    """
    path = Path(path)
    name = display_name or path.name
    extension = _extension(path)
    if extension not in SUPPORTED_EXTENSIONS:
        raise InvalidInputError(
            f"file: '{name}' is not a supported type; upload a {', '.join(SUPPORTED_EXTENSIONS)} file"
        )
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InvalidInputError(f"file: cannot read '{name}': {error.strerror or error}") from None
    if size > max_bytes:
        raise InvalidInputError(
            f"file: '{name}' is {size / 1024**2:.1f} MB; the limit is {max_bytes / 1024**2:.0f} MB. "
            "Split it into smaller files"
        )
    if size == 0:
        raise InvalidInputError(f"file: '{name}' is empty")
    if extension == ".parquet":
        table = _read_parquet(path, name, max_rows)
    else:
        text = _decode(path.read_bytes(), name)
        if not text.strip():
            raise InvalidInputError(f"file: '{name}' is empty (only blank space)")
        table = _read_csv(text, name) if extension == ".csv" else _read_jsonl(text, name, max_rows)
    if len(table.columns) == 0:
        raise InvalidInputError(f"file: '{name}' has no columns")
    if len(table) == 0:
        raise InvalidInputError(f"file: '{name}' has a header but no rows")
    if len(table) > max_rows:
        raise InvalidInputError(
            f"file: '{name}' has {len(table):,} rows; the limit is {max_rows:,}. Split it into smaller files"
        )
    table.columns = [str(column) for column in table.columns]
    return table


def column_texts(table: pd.DataFrame, column: Optional[str]) -> list[str]:
    """The values of `column` as text; missing values become "" (callers decide what blank rows mean)."""
    if not column:
        raise InvalidInputError(f"column: pick the column that holds the text (columns: {_names(table)})")
    if column not in table.columns:
        raise InvalidInputError(f"column: there is no column '{column}'; the file's columns are {_names(table)}")
    return [_as_text(value) for value in table[column].tolist()]


def guess_text_column(table: pd.DataFrame) -> Optional[str]:
    """The column most likely to hold the text: a well-known name, else the text column with the longest values."""
    by_lower = {str(column).lower(): str(column) for column in table.columns}
    for hint in TEXT_COLUMN_HINTS:
        if hint in by_lower:
            return by_lower[hint]
    sample = table.head(200)
    best, best_length = None, -1.0
    for column in sample.columns:
        values = [value for value in sample[column].tolist() if isinstance(value, str)]
        if not values:
            continue
        length = sum(len(value) for value in values) / len(values)
        if length > best_length:
            best, best_length = str(column), length
    return best if best is not None else (str(table.columns[0]) if len(table.columns) else None)


def write_csv(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Writes UTF-8 CSV (with a BOM-free header; spreadsheets and pandas both read it back)."""
    path = Path(path)
    table.to_csv(path, index=False, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- readers


def _extension(path: Path) -> str:
    return path.suffix.lower()


def _decode(data: bytes, name: str) -> str:
    """UTF-8 (a BOM is fine); anything else is refused with a guess at what it is, rather than read as mojibake."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _looks_utf16(data):
        raise InvalidInputError(
            f"file: '{name}' looks like UTF-16 text; save it as UTF-8 (in Excel: 'CSV UTF-8'; in an editor: "
            "'Save with encoding: UTF-8') and upload it again"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInputError(
            f"file: '{name}' is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line} is not valid UTF-8; "
            "it may be Latin-1 / Windows-1252). Save it with the UTF-8 encoding and upload it again"
        ) from None


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a BOM: ASCII text then has a zero byte in every other position."""
    sample = data[:4096]
    if len(sample) < 4:
        return False
    zeros_even = sample[0::2].count(0)
    zeros_odd = sample[1::2].count(0)
    half = len(sample) / 2
    return max(zeros_even, zeros_odd) > 0.4 * half


def _read_csv(text: str, name: str) -> pd.DataFrame:
    try:
        # Everything as text: ids like "007" and words like "NA" or "null" must reach the model unchanged.
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise InvalidInputError(f"file: '{name}' is empty (no header row)") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise InvalidInputError(f"file: '{name}' is not valid CSV: {_first_line(error)}") from None


def _read_jsonl(text: str, name: str, max_rows: int) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInputError(
                f"file: '{name}' line {number} is not valid JSON ({error.msg}); JSONL needs one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise InvalidInputError(
                f"file: '{name}' line {number} is a JSON {type(record).__name__}, not an object; JSONL needs one "
                'object per line, e.g. {"text": "..."}'
            )
        records.append(record)
        if len(records) > max_rows:
            raise InvalidInputError(
                f"file: '{name}' has more than {max_rows:,} rows (the limit); split it into smaller files"
            )
    # object dtype: an integer column with a missing value must not turn 1 into "1.0".
    return pd.DataFrame(records, dtype=object)


def _read_parquet(path: Path, name: str, max_rows: int) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        rows = parquet.metadata.num_rows
        if rows > max_rows:  # checked before reading: a huge table is refused without loading it
            raise InvalidInputError(
                f"file: '{name}' has {rows:,} rows; the limit is {max_rows:,}. Split it into smaller files"
            )
        return parquet.read().to_pandas()
    except InvalidInputError:
        raise
    except Exception as error:  # pyarrow raises several types for a damaged or mislabelled file
        raise InvalidInputError(f"file: '{name}' is not a readable Parquet file: {_first_line(error)}") from None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    if isinstance(value, str):
        return value
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):  # arrays and other containers
        pass
    return str(value)


def _names(table: pd.DataFrame, limit: int = 20) -> str:
    names = [str(column) for column in table.columns]
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "none"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
