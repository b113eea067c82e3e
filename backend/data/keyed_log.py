"""The append-only JSONL logs of a user's feedback (chat ratings: backend/data/feedback.py, arena votes:
backend/data/votes.py): the last line per key is the current entry, a line is bounded in bytes, and a user's log
in current entries and in bytes, compacted (the current entries rewritten) before an append is refused."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from backend.core.error_codes import refuse
from backend.core.json_types import JSONObject


def _every(entry: JSONObject) -> bool:
    return True


@dataclass(frozen=True)
class LogBounds:
    """A log's bounds and the error codes that refuse what passes them (all about `field`). Built at each append,
    from the owning module's constants (tests lower them)."""

    field: str
    max_entries: int
    entries_code: str  # refuse(code, field, limit=max_entries)
    max_bytes: int
    bytes_code: str  # refuse(code, field, used_mb=..., limit_mb=...)
    current: Callable[[JSONObject], bool] = _every  # which entries count and survive compaction


def log_line(entry: Mapping[str, object], *, limit: int, code: str, field: str) -> str:
    """`entry` as one log line; refuse(code, field, size=..., limit=...) when it is over `limit` bytes."""
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    size = len(line.encode("utf-8"))
    if size > limit:
        raise refuse(code, field, size=size, limit=limit)
    return line


def append_line(path: Path, key: str, line: str, bounds: LogBounds, lock: threading.Lock,
                check_room: bool = True) -> None:
    """Appends `line` (the entry for `key`), under `lock` so concurrent appends stay whole lines; with
    `check_room`, first refuses it beyond the bounds (compacting the log when that makes room)."""
    with lock:
        if check_room:
            _make_room(path, key, len(line.encode("utf-8")), bounds)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def _make_room(path: Path, key: str, size: int, bounds: LogBounds) -> None:
    latest = latest_entries(path)
    if key not in latest and sum(bounds.current(entry) for entry in latest.values()) >= bounds.max_entries:
        raise refuse(bounds.entries_code, bounds.field, limit=bounds.max_entries)
    used = path.stat().st_size if path.is_file() else 0
    if used + size <= bounds.max_bytes:
        return
    compacted = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in latest.values()
                        if bounds.current(entry))
    if len(compacted.encode("utf-8")) + size > bounds.max_bytes:
        raise refuse(bounds.bytes_code, bounds.field, used_mb=used / 1024**2, limit_mb=bounds.max_bytes / 1024**2)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(compacted, encoding="utf-8")
    temporary.replace(path)  # whole or not at all: a crash leaves the old log


def latest_entries(path: Path) -> dict[str, JSONObject]:
    """The last entry per key in an append-only JSONL log, oldest first (a new line for a key moves it to the
    end)."""
    latest: dict[str, JSONObject] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: the others still count
            key = str(entry.get("key"))
            latest.pop(key, None)
            latest[key] = entry
    return latest
