"""Bounds on the tables users hand the app (uploads for Classify and Evaluate, Hub datasets), and on what is sent
back about them, so one small request cannot take gigabytes.

Each limit has a default and an environment variable (read when a table is read, so a test or an operator can
change it without a restart):

    WORKBENCH_MAX_ROWS         rows of a table                           default 100,000
    WORKBENCH_MAX_COLUMNS      columns of a table                        default 200
    WORKBENCH_MAX_CELLS        rows x columns (CSV / JSONL estimate)     default 5,000,000
    WORKBENCH_MAX_CELL_CHARS   characters in one cell                    default 100,000
    WORKBENCH_MAX_TABLE_MB     text held once decoded (Parquet, Hub)      default 64
    WORKBENCH_MAX_CLASSES_SHOWN  classes of a confusion matrix shown     default 30

docs/RELIABILITY.md records what they cost at their largest. Only the standard library here.
"""

from __future__ import annotations

import ctypes
import gc
import os
from dataclasses import dataclass
from typing import Mapping, Optional

from backend.core.error_codes import refuse
from backend.core.types import ConfigError

PREVIEW_CELL_CHARS = 300  # characters of a cell in a preview table (the data itself is not cut)
SHOWN_CELL_CHARS = 2_000  # characters of a cell in a results table in the page (downloads keep everything)
SHOWN_COLUMN_NAMES = 30  # column names listed in a one-line description of a table
MAX_MESSAGE_CHARS = 2_000  # characters of an error or status message sent to the browser

_DEFAULTS = {
    "WORKBENCH_MAX_ROWS": 100_000,
    "WORKBENCH_MAX_COLUMNS": 200,
    "WORKBENCH_MAX_CELLS": 5_000_000,
    "WORKBENCH_MAX_CELL_CHARS": 100_000,
    "WORKBENCH_MAX_TABLE_MB": 64,  # a 50 MB upload's text fits; a run holds several copies of it (RELIABILITY)
    "WORKBENCH_MAX_CLASSES_SHOWN": 30,
}


@dataclass(frozen=True)
class TableLimits:
    max_rows: int = _DEFAULTS["WORKBENCH_MAX_ROWS"]
    max_columns: int = _DEFAULTS["WORKBENCH_MAX_COLUMNS"]
    max_cells: int = _DEFAULTS["WORKBENCH_MAX_CELLS"]
    max_cell_chars: int = _DEFAULTS["WORKBENCH_MAX_CELL_CHARS"]
    max_table_bytes: int = _DEFAULTS["WORKBENCH_MAX_TABLE_MB"] * 1024 * 1024
    max_classes_shown: int = _DEFAULTS["WORKBENCH_MAX_CLASSES_SHOWN"]

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "TableLimits":
        """The limits, with WORKBENCH_MAX_* overrides; a malformed value is a ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        value = {name: _whole(env, name, default) for name, default in _DEFAULTS.items()}
        return cls(max_rows=value["WORKBENCH_MAX_ROWS"], max_columns=value["WORKBENCH_MAX_COLUMNS"],
                   max_cells=value["WORKBENCH_MAX_CELLS"], max_cell_chars=value["WORKBENCH_MAX_CELL_CHARS"],
                   max_table_bytes=value["WORKBENCH_MAX_TABLE_MB"] * 1024 * 1024,
                   max_classes_shown=value["WORKBENCH_MAX_CLASSES_SHOWN"])


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise refuse("whole_at_least", name, kind=ConfigError, low=1, got=text)
    return int(text)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def release_memory() -> None:
    """Gives memory freed by a finished job back to the operating system.

    Why: glibc keeps freed heap pages for reuse, so after a job that held a large table the process stays large
    although nothing references the table; `malloc_trim(0)` returns them. Elsewhere (macOS, musl) only the
    garbage collector runs.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
