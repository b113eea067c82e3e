"""Tables from uploaded files (CSV, JSONL, Parquet) for whole-file classification, with errors a user can act on.

Every failure is an `InvalidInputError` that names the file and says what to do: wrong extension, too big, empty,
not UTF-8 (with a guess at the encoding it is in), a line that is not JSON, a column that is not there (naming the
columns that are). pandas / pyarrow only; nothing here touches a model.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pandas as pd

from backend.core.error_codes import refuse
from backend.core.json_types import JSONObject
from backend.guard.table_limits import SHOWN_COLUMN_NAMES, TableLimits, clip
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = TableLimits().max_rows  # the default; WORKBENCH_MAX_ROWS changes it (backend/guard/table_limits.py)
SUPPORTED_EXTENSIONS = (".csv", ".jsonl", ".parquet")
# Column names that usually hold the text to classify, most likely first (matched case-insensitively).
TEXT_COLUMN_HINTS = ("text", "sentence", "content", "review", "body", "message", "document", "input", "prompt")


def read_table(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES, max_rows: Optional[int] = None,
               display_name: Optional[str] = None, limits: Optional[TableLimits] = None) -> pd.DataFrame:
    """Reads a .csv / .jsonl / .parquet file into a DataFrame (text columns stay text: "NA" is not NaN).

    `display_name` is what error messages call the file (an upload's temp path means nothing to its owner).
    Rows, columns, cells and the size of a cell are bounded by `limits` (default: TableLimits.from_env()),
    checked before the expensive step wherever the file says enough: a CSV's header, a Parquet's metadata.
    """
    limits = limits or TableLimits.from_env()
    max_rows = max_rows or limits.max_rows
    path = Path(path)
    name = display_name or path.name
    extension = _extension(path)
    if extension not in SUPPORTED_EXTENSIONS:
        raise InvalidInputError(
            f"file: '{name}' is not a supported type; upload a {', '.join(SUPPORTED_EXTENSIONS)} file"
        , field="file")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InvalidInputError(f"file: cannot read '{name}': {error.strerror or error}", field="file") from None
    if size > max_bytes:
        raise refuse("file_too_big", "file", name=name, size_mb=size / 1024**2, limit_mb=max_bytes / 1024**2)
    if size == 0:
        raise refuse("empty_file", "file", name=name)
    if extension == ".parquet":
        table = _read_parquet(path, name, max_rows, limits)
    else:
        data = path.read_bytes()
        _refuse_binary(data, name, extension)
        text = _decode(data, name)
        del data
        if not text.strip():
            raise refuse("blank_file", "file", name=name)
        if extension == ".csv":
            _check_csv_shape(text, name, limits)
            table = _read_csv(text, name)
        else:
            table = _read_jsonl(text, name, max_rows, limits)
    if len(table.columns) == 0:
        raise InvalidInputError(f"file: '{name}' has no columns", field="file")
    if len(table) == 0:
        raise refuse("header_only", "file", name=name)
    if len(table) > max_rows:
        raise refuse("too_many_rows", "file", name=name, count=len(table), limit=max_rows)
    table.columns = [str(column) for column in table.columns]
    check_table(table, f"file: '{name}'", limits, file_name=name)
    return table


def check_table(table: pd.DataFrame, what: str, limits: TableLimits, file_name: Optional[str] = None) -> None:
    """Columns and the longest cell within `limits`; `what` names the table in the error ("file: 'x.csv'"),
    `file_name` the uploaded file it came from, if any (its errors then carry a code for the UI's wording)."""
    if len(table.columns) > limits.max_columns:
        if file_name is not None:
            raise refuse("too_many_columns", "file", name=file_name, count=len(table.columns),
                         limit=limits.max_columns)
        raise InvalidInputError(f"{what} has {len(table.columns):,} columns; the limit is {limits.max_columns:,}. "
                                "Keep only the columns you need")
    for column in table.columns:
        longest = _longest_cell(table[column])
        if longest > limits.max_cell_chars and file_name is not None:
            raise refuse("cell_too_long", "file", name=file_name, column=str(column)[:80], count=longest,
                         limit=limits.max_cell_chars)
        if longest > limits.max_cell_chars:
            raise InvalidInputError(
                f"{what}: a cell of column '{str(column)[:80]}' holds {longest:,} characters; the limit is "
                f"{limits.max_cell_chars:,} per cell. Shorten or split that text", field=what)


def clip_cells(table: pd.DataFrame, limit: int) -> pd.DataFrame:
    """`table` with every text cell cut to `limit` characters, for a page (downloads keep every character)."""
    texts = [column for column in table.columns
             if table[column].dtype == object or pd.api.types.is_string_dtype(table[column].dtype)]
    return table.assign(**{str(column): [clip(value, limit) if isinstance(value, str) else value
                                         for value in table[column].tolist()] for column in texts})


def describe_columns(columns: list[str], limit: int = SHOWN_COLUMN_NAMES) -> str:
    """Column names for a one-line description, at most `limit` of them."""
    shown = ", ".join(str(column)[:80] for column in columns[:limit])
    return shown + (f" and {len(columns) - limit:,} more" if len(columns) > limit else "")


def column_texts(table: pd.DataFrame, column: Optional[str]) -> list[str]:
    """The values of `column` as text; missing values become "" (callers decide what blank rows mean)."""
    if not column:
        raise InvalidInputError(f"column: pick the column that holds the text (columns: {_names(table)})",
                                field="column")
    if column not in table.columns:
        raise refuse("no_file_column", "column", name=column, columns=_names(table))
    return [_as_text(value) for value in table[column].tolist()]


def guess_text_column(table: pd.DataFrame) -> Optional[str]:
    """The column most likely to hold the text: a well-known name, else the text column with the longest values;
    None when every column holds numbers (or nothing), rather than a number column passed off as text."""
    by_lower = {str(column).lower(): str(column) for column in table.columns}
    for hint in TEXT_COLUMN_HINTS:
        if hint in by_lower and not is_numeric_column(table, by_lower[hint]):
            return by_lower[hint]
    sample = table.head(200)
    best, best_length = None, -1.0
    for column in sample.columns:
        values = [value for value in sample[column].tolist() if isinstance(value, str) and value.strip()]
        if not values or is_numeric_column(sample, str(column)):
            continue
        length = sum(len(value) for value in values) / len(values)
        if length > best_length:
            best, best_length = str(column), length
    return best


def is_numeric_column(table: pd.DataFrame, column: str, sample: int = 200) -> bool:
    """Whether the column's first `sample` non-blank values are all numbers (CSV columns are read as text)."""
    values = [text for text in (_as_text(value).strip() for value in table[column].head(sample * 4).tolist())
              if text][:sample]
    if not values:
        return True  # an empty column holds no text either
    for text in values:
        try:
            float(text)
        except ValueError:
            return False
    return True


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
        , field="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInputError(
            f"file: '{name}' is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line} is not valid UTF-8; "
            "it may be Latin-1 / Windows-1252). Save it with the UTF-8 encoding and upload it again"
        , field="file") from None


# The first bytes of binary formats people rename by mistake (a spreadsheet saved as .csv, an archive).
_MAGIC = {b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook is one)", b"\xd0\xcf\x11\xe0": "an old Excel "
          "(.xls) or Word file", b"PAR1": "a Parquet file", b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip archive",
          b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"SQLite format": "an SQLite database"}


def _refuse_binary(data: bytes, name: str, extension: str) -> None:
    """A binary file renamed .csv / .jsonl gets told what it is, not to re-save it as UTF-8."""
    kind = next((what for magic, what in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None and not _looks_utf16(data) and b"\x00" in data[:4096]:
        kind = "a binary file, not text"
    if kind is not None:
        fix = ("upload it with the .parquet extension" if kind == "a Parquet file" else
               f"export it as {'CSV' if extension == '.csv' else 'JSON Lines'} (UTF-8) and upload that")
        raise InvalidInputError(f"file: '{name}' is named {extension} but is {kind}; {fix}", field="file")


def _check_csv_shape(text: str, name: str, limits: TableLimits) -> None:
    """Refuses a CSV with too many columns or cells from its header and line count, before pandas parses it."""
    try:
        header = next(csv.reader(io.StringIO(text[: 64 * 1024 * 1024])), [])
    except csv.Error:
        return  # pandas reports the malformed CSV
    if len(header) > limits.max_columns:
        raise refuse("too_many_columns", "file", name=name, count=len(header), limit=limits.max_columns)
    lines = text.count("\n") + 1
    if len(header) * lines > limits.max_cells:
        raise InvalidInputError(
            f"file: '{name}' has about {lines:,} lines of {len(header):,} columns, over the limit of "
            f"{limits.max_cells:,} cells. Split it into smaller files or keep fewer columns", field="file")


def _longest_cell(series: pd.Series) -> int:
    if len(series) == 0:
        return 0
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return int(series.str.len().max(skipna=True) or 0)
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return 0  # a number's text is short
    return max((len(value) if isinstance(value, str) else len(_as_text(value)) for value in series.tolist()),
               default=0)


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
        raise refuse("headless_file", "file", name=name) from None
    except (pd.errors.ParserError, ValueError) as error:
        raise InvalidInputError(f"file: '{name}' is not valid CSV: {_first_line(error)}", field="file") from None


def _read_jsonl(text: str, name: str, max_rows: int, limits: TableLimits) -> pd.DataFrame:
    records: list[JSONObject] = []
    keys: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInputError(
                f"file: '{name}' line {number} is not valid JSON ({error.msg}); JSONL needs one JSON object per line"
            , field="file") from None
        if not isinstance(record, dict):
            raise InvalidInputError(
                f"file: '{name}' line {number} is a JSON {type(record).__name__}, not an object; JSONL needs one "
                'object per line, e.g. {"text": "..."}'
            , field="file")
        records.append(record)
        if len(record) > limits.max_columns or len(keys.union(record)) > limits.max_columns:
            raise InvalidInputError(f"file: '{name}' has more than {limits.max_columns:,} different keys (columns) "
                                    f"by line {number}; the limit is {limits.max_columns:,}", field="file")
        keys.update(record)
        if len(records) > max_rows:
            raise InvalidInputError(
                f"file: '{name}' has more than {max_rows:,} rows (the limit); split it into smaller files"
            , field="file")
    # object dtype: an integer column with a missing value must not turn 1 into "1.0".
    return pd.DataFrame(records, dtype=object)


def _read_parquet(path: Path, name: str, max_rows: int, limits: TableLimits) -> pd.DataFrame:
    """Checks the metadata, then the decoded size (dictionary-encoded, so a cell repeated a million times is
    measured, not materialised), and only then reads the table."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        rows, schema = parquet.metadata.num_rows, parquet.schema_arrow
        if rows > max_rows:  # checked before reading: a huge table is refused without loading it
            raise refuse("too_many_rows", "file", name=name, count=rows, limit=max_rows)
        if len(schema) > limits.max_columns:
            raise refuse("too_many_columns", "file", name=name, count=len(schema), limit=limits.max_columns)
        _check_parquet_size(path, parquet, name, limits)
        return parquet.read().to_pandas()
    except InvalidInputError:
        raise
    except Exception as error:  # pyarrow raises several types for a damaged or mislabelled file
        raise InvalidInputError(f"file: '{name}' is not a readable Parquet file: {_first_line(error)}",
                                field="file") from None


def _check_parquet_size(path: Path, parquet: pq.ParquetFile, name: str, limits: TableLimits) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    metadata = parquet.metadata
    stored = sum(metadata.row_group(group).column(column).total_uncompressed_size
                 for group in range(metadata.num_row_groups) for column in range(metadata.num_columns))
    if stored > limits.max_table_bytes:
        raise InvalidInputError(f"file: '{name}' holds {stored / 2**20:,.0f} MB once decompressed; the limit is "
                                f"{limits.max_table_bytes / 2**20:,.0f} MB. Split it into smaller files", field="file")
    def textual(kind: pa.DataType) -> bool:
        if pa.types.is_dictionary(kind):  # written from a pandas category or an Arrow dictionary
            kind = kind.value_type
        return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind))

    texts = [field.name for field in parquet.schema_arrow if textual(field.type)]
    if not texts:
        return
    table = pq.ParquetFile(path, read_dictionary=texts).read(columns=texts)  # values once, rows as indices
    total = 0
    for column_name in texts:
        for chunk in table.column(column_name).chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_encode()
            measure = pc.utf8_length if pa.types.is_string(chunk.type.value_type) or pa.types.is_large_string(
                chunk.type.value_type) else pc.binary_length
            lengths = measure(chunk.dictionary)
            longest = pc.max(lengths).as_py() or 0
            if longest > limits.max_cell_chars:
                raise refuse("cell_too_long", "file", name=name, column=column_name[:80], count=longest,
                             limit=limits.max_cell_chars)
            total += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
    if total > limits.max_table_bytes:
        raise refuse("expands", "file", name=name, size_mb=total / 2**20, limit_mb=limits.max_table_bytes / 2**20)


def _as_text(value: object) -> str:
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
