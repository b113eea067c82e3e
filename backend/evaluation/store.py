"""Saved runs: one folder per run with `results.json` (configuration, metrics, predictions) and
`predictions.csv` (one row per example and model), listing them and opening one again.

Files are written to a temporary name and renamed, so a crash never leaves a half-written results.json that
would break the listing.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    from backend.evaluation.types import RunResult, RunResultFile

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.csv"
DIFFS_FILE = "diffs.csv"  # several models: one row per example, the models' replies and scores side by side


def new_run_id() -> str:
    """Sorts by time to the millisecond, so two runs started in the same second still list newest first; the random
    suffix keeps two runs started in the same millisecond (two users) apart."""
    now = datetime.now()
    return f"{now.strftime('%Y%m%d-%H%M%S')}{now.microsecond // 1000:03d}-{secrets.token_hex(2)}"


def save_run(run: "RunResult", directory: str | Path) -> Path:
    """Writes the run into `directory` (created if needed); returns the folder."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / RESULTS_FILE, json.dumps(run.to_dict(), ensure_ascii=False, indent=1, allow_nan=False))
    _write_atomically(folder / PREDICTIONS_FILE, run.example_table().to_csv(index=False))
    if len(run.models) > 1:
        from backend.evaluation.compare import example_diffs

        _write_atomically(folder / DIFFS_FILE, example_diffs(run).to_csv(index=False))
    return folder


@dataclass(frozen=True)
class RunSummary:
    """What a list of past runs shows, read from results.json without building the whole run."""

    run_id: str
    path: Path
    created: str
    task: str
    data: str
    models: tuple[str, ...]
    metrics: dict[str, dict[str, Optional[float]]]  # model -> metric -> value
    cancelled: bool


def list_runs(runs_dir: str | Path) -> list[RunSummary]:
    """Runs under `runs_dir`, newest first; folders without a readable results.json are left out."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    summaries = []
    for results in root.glob(f"*/{RESULTS_FILE}"):
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
            summaries.append(RunSummary(
                run_id=data.get("run_id", results.parent.name),
                path=results.parent,
                created=data.get("created", ""),
                task=data["task"],
                data=data.get("data", ""),
                models=tuple(data.get("models") or ()),
                metrics={model: dict(value.get("metrics") or {})
                         for model, value in (data.get("models") or {}).items()},
                cancelled=bool(data.get("cancelled")),
            ))
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # a foreign or damaged folder must not hide the other runs
    return sorted(summaries, key=lambda summary: (summary.created, summary.run_id), reverse=True)


def open_run(run: str | Path, runs_dir: Optional[str | Path] = None) -> "RunResult":
    """A saved run, by its folder or by its id under `runs_dir`."""
    from backend.evaluation.types import RunResult

    folder = Path(runs_dir) / str(run) if runs_dir is not None and not Path(run).is_dir() else Path(run)
    results = folder / RESULTS_FILE
    try:
        data: RunResultFile = json.loads(results.read_text(encoding="utf-8"))
        return RunResult.from_dict(data, path=folder)
    except FileNotFoundError:
        raise InvalidInputError(f"run: no saved run at {folder} (no {RESULTS_FILE} there)", field="run") from None
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(f"run: {results} is not a readable run ({type(error).__name__}: {error})",
                                field="run") from None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
