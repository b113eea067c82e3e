"""A data preparation in its own process, so a 100,000-row clean or a paraphrase run never holds the server's
memory or CPU, and Cancel can stop it at once.

    job = DataJob.start(recipe, name="reviews-v1", username=None, fmt="jsonl", models_file="models.yaml")
    job.poll()    # {"state": "running" | "done" | "failed" | "cancelled", "message": ..., "card": ..., "error": ...}
                  # a failed job's error also comes as "code", "field" and "params" (backend.core.types.WorkbenchError)
    job.cancel()

The child is `python -m backend.data.jobs SPEC.json`; it reports through a small JSON status file, written
atomically. On SIGTERM (Cancel) it unwinds like Ctrl-C, so the dataset store removes its staging folder and
nothing half-written is left; the parent removes any leftover staging folder too, in case the child was killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Optional

from backend.core.json_types import JSONObject, json_object

from backend.data.recipe import Recipe
from backend.data.store import check_name
from backend.guard.user_space import runs_root, user_dir

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DataJob:
    process: subprocess.Popen
    folder: Path  # holds spec.json, status.json and the child's log
    target: Path  # the dataset folder it will create
    cancelled: bool = False

    @classmethod
    def start(cls, recipe: Recipe, name: str, username: Optional[str], fmt: str = "jsonl",
              models_file: Optional[str] = None, display_name: Optional[str] = None,
              overwrite: bool = False, root: Optional[Path] = None, dry_run: bool = False) -> "DataJob":
        """Validates everything it can here (a bad recipe or name fails before any process starts), then starts.

        `dry_run`: prepare only, to report each step's counts; nothing is saved (the name is not needed)."""
        recipe.validated()
        name = check_name(name) if not dry_run else (name or "dry-run")
        root = Path(root if root is not None else runs_root()).resolve()
        target = user_dir("datasets", username, root) / name
        if target.exists() and not overwrite and not dry_run:
            from backend.core.error_codes import refuse

            raise refuse("dataset_exists", "name", name=name)
        folder = Path(tempfile.mkdtemp(prefix="workbench-data-job-"))
        spec = {"recipe": recipe.to_dict(), "name": name, "username": username, "fmt": fmt, "root": str(root),
                "models": str(Path(models_file).resolve()) if models_file else None, "display_name": display_name,
                "overwrite": overwrite, "dry_run": dry_run, "status": str(folder / "status.json")}
        (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(folder / "log.txt", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "backend.data.jobs", str(folder / "spec.json")],
                                       cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return cls(process, folder, target)

    # Any: the Data tab (ui/data/tab.py) reads the status and its card as a loose dict; typing it as JSONObject
    # needs that reader to narrow each field first.
    def poll(self) -> dict[str, Any]:
        status = _read_status(self.folder / "status.json")
        code = self.process.poll()
        if self.cancelled:
            return {**status, "state": "cancelled", "message": "cancelled; nothing was saved"}
        if code is not None and status.get("state") not in ("done", "failed"):
            log = (self.folder / "log.txt").read_text(errors="replace")[-2000:]
            return {"state": "failed", "error": f"the data job stopped unexpectedly (exit code {code}): {log}"}
        return status or {"state": "running", "message": "starting"}

    @property
    def finished(self) -> bool:
        return self.process.poll() is not None

    def wait(self, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.finished and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.poll()

    def cancel(self) -> None:
        """Stops the child (SIGTERM, then SIGKILL after 10 s) and removes anything it had started to write."""
        if self.process.poll() is None:
            self.cancelled = True
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for leftover in self.target.parent.glob(f".{self.target.name}.*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _read_status(path: Path) -> JSONObject:
    try:
        return json_object(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _write_status(path: Path, **status: object) -> None:
    """status.json: the fields as `json.dumps` writes them (other values as their str)."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(status, default=str), encoding="utf-8")
    os.replace(partial, path)


def _child(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    status = Path(spec["status"])

    def on_term(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt  # unwind through every `finally`: staging folders are removed

    signal.signal(signal.SIGTERM, on_term)
    from backend.core.types import WorkbenchError

    registry = None
    try:
        from backend.data.pipeline import prepare
        from backend.data.store import save_dataset

        recipe = Recipe.from_dict(spec["recipe"])
        if spec["models"] and (recipe.token_model or recipe.paraphrase_model):
            from backend.core.config import load_config
            from backend.core.registry import Registry
            from backend.engines import create_engine

            registry = Registry(load_config(spec["models"]), create_engine)
        prepared = prepare(recipe, registry, lambda message: _write_status(status, state="running",
                                                                           message=message),
                           display_name=spec.get("display_name"))
        if spec.get("dry_run"):
            rows = {split: len(part) for split, part in prepared.splits.items()}
            _write_status(status, state="done", message="counted", card={**prepared.card, "rows": rows}, name=None)
            return 0
        _write_status(status, state="running", message="saving")
        info = save_dataset(prepared.splits, prepared.card, spec["name"], spec["username"], spec["fmt"],
                            overwrite=spec["overwrite"], root=Path(spec["root"]))
        from backend.data.store import read_card

        _write_status(status, state="done", message="saved", card=read_card(info.folder), name=info.name)
        return 0
    except WorkbenchError as error:
        # The error as a value (code, field, params), so the tab words it as if it had been raised there.
        _write_status(status, state="failed", error=str(error), code=error.code, field=error.field,
                      params=error.params)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if registry is not None:
            registry.close()


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
