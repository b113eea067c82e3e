"""Prepared datasets on disk: split files plus `card.json`, written all at once or not at all.

A named dataset lives in `user_dir("datasets", user)/<name>/` (backend/guard/user_space.py): `train.jsonl`,
`validation.jsonl`, `test.jsonl` (or one `data.<ext>` when there is no split) and `card.json`. Train and
Evaluate find them through `list_datasets(username)` and `dataset_path(username, name, split)`.
Everything is written into a hidden folder next to the target and renamed into place at the end, so a failed
or cancelled run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Union

from backend.core.json_types import JSONObject, json_list, json_object

from backend.data.recipe import FORMATS, SPLIT_NAMES
from backend.core.error_codes import refuse
from backend.core.types import InvalidInputError
from backend.guard.user_space import user_dir, visible_dirs

if TYPE_CHECKING:
    import datasets
    import pandas as pd

CARD = "card.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Table = Union["datasets.Dataset", "pd.DataFrame"]


@dataclass(frozen=True)
class DatasetInfo:
    """One saved dataset, as the pickers of Train and Evaluate list it."""

    name: str
    folder: Path
    files: dict[str, Path]  # split name ("train", "validation", "test", or "data") -> file
    rows: dict[str, int]
    kind: str  # what it is for: "text" (classification / generation), "sft", "preference", "test-cases"
    columns: list[str] = field(default_factory=list)
    created: str = ""
    owner: str = ""

    def label(self) -> str:
        parts = ", ".join(f"{split} {count:,}" for split, count in self.rows.items())
        return f"{self.name} ({self.kind}: {parts})"


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise refuse("dataset_name", "name", name=name[:80])
    return name


def write_splits(splits: Mapping[str, Table], card: Mapping[str, object], folder: Path, fmt: str = "jsonl",
                 overwrite: bool = False) -> dict[str, Path]:
    """Writes each split as `<split>.<fmt>` and `card.json` into `folder`, atomically (see the module notes). The
    card is anything `json.dumps` writes (other values as their str)."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format: one of {', '.join(FORMATS)}, got {fmt!r}", field="format")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise InvalidInputError(f"out: '{folder}' already exists and is not empty; pick a new name or folder",
                                field="out")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        files = {}
        for split, table in splits.items():
            path = staging / f"{split}.{fmt}"
            _write(table, path, fmt)
            files[split] = path.name
        rows = {split: len(table) for split, table in splits.items()}
        written = {**card, "format": fmt, "files": files, "rows": rows}
        (staging / CARD).write_text(json.dumps(written, indent=2, ensure_ascii=False, default=str) + "\n",
                                    encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {split: folder / name for split, name in files.items()}


def save_dataset(splits: Mapping[str, Table], card: Mapping[str, object], name: str, username: Optional[str],
                 fmt: str = "jsonl", overwrite: bool = False, root: Optional[Path] = None) -> DatasetInfo:
    """Saves a prepared dataset under `name` in the user's datasets folder."""
    name = check_name(name)
    folder = user_dir("datasets", username, root) / name
    if not overwrite and folder.exists() and any(folder.iterdir()):
        raise refuse("dataset_exists", "name", name=name)  # by its name: the folder is a server path
    write_splits(splits, {**card, "name": name}, folder, fmt, overwrite=overwrite)
    return _info(folder)


def list_datasets(username: Optional[str], root: Optional[Path] = None) -> list[DatasetInfo]:
    """The saved datasets this user may use (their own; an admin's list has everyone's), newest first."""
    found = []
    for base in visible_dirs("datasets", username, root):
        for folder in base.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and (folder / CARD).is_file():
                try:
                    found.append(_info(folder))
                except (OSError, ValueError):
                    continue  # a damaged card hides that one dataset, not the whole list
    return sorted(found, key=lambda info: (info.created, info.name), reverse=True)


def dataset_path(username: Optional[str], name: str, split: Optional[str] = None,
                 root: Optional[Path] = None) -> Path:
    """The file of one split of a saved dataset (default: train, else the only file)."""
    for info in list_datasets(username, root):
        if info.name == name:
            if split is None:
                split = "train" if "train" in info.files else next(iter(info.files))
            if split not in info.files:
                raise InvalidInputError(f"dataset '{name}' has no '{split}' split (it has {', '.join(info.files)})")
            return info.files[split]
    raise refuse("no_saved_dataset", "name", name=name[:80])


def read_card(folder: Path) -> JSONObject:
    """card.json of a saved dataset; raises ValueError when it is not a JSON object."""
    card = json.loads((Path(folder) / CARD).read_text(encoding="utf-8"))
    if not isinstance(card, dict):
        raise ValueError(f"{Path(folder) / CARD} is not a JSON object")
    return card


def _info(folder: Path) -> DatasetInfo:
    card = read_card(folder)
    files = {split: folder / str(file) for split, file in json_object(card.get("files")).items()}
    order = {name: index for index, name in enumerate((*SPLIT_NAMES, "data"))}
    files = dict(sorted(files.items(), key=lambda item: order.get(item[0], 99)))
    rows = {split: count for split, count in json_object(card.get("rows")).items() if isinstance(count, int)}
    return DatasetInfo(name=folder.name, folder=folder, files=files, rows=rows, kind=str(card.get("kind", "text")),
                       columns=[str(column) for column in json_list(card.get("columns"))],
                       created=str(card.get("created", "")), owner=folder.parent.parent.name)


def _write(table: Table, path: Path, fmt: str) -> None:
    import datasets

    dataset = table if isinstance(table, datasets.Dataset) else datasets.Dataset.from_pandas(table,
                                                                                            preserve_index=False)
    if fmt == "csv":
        dataset.to_csv(str(path), index=False)
    elif fmt == "jsonl":
        dataset.to_json(str(path), lines=True, force_ascii=False)
    else:
        dataset.to_parquet(str(path))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
