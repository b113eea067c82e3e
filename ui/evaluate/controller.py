"""The Evaluate tab's logic over one registry and one runs folder, widget-free (tested without a browser).

It reads and caches data, starts an `EvaluationJob` per browser session (cancellable through ui/jobs.py's
registry), polls it for progress, and lists / opens saved runs. Never imports torch: the runner loads models in
its own thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import pandas as pd

from backend.evaluation import store
from backend.evaluation.data import DataSource, check_hub_id, guess_columns, load_table, preview
from backend.evaluation.runner import EvaluationJob
from backend.evaluation.types import EvalConfig, Progress, RunResult
from backend.registry import Registry
from backend.types import InvalidInputError
from ui.evaluate.forms import MODEL_TASKS, PREVIEW_ROWS, DataView
from ui.jobs import SessionJobs

RUNS_DIR_ENV = "WORKBENCH_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
POLL_S = 0.25  # how often the Run handler looks at the job's progress


class _Cache:
    """A tiny thread-safe LRU (loaded tables, opened runs)."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: reading a big file must not block other users
        self.put(key, value)
        return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class EvaluateController:
    """The tab's logic over one registry and one runs folder, widget-free."""

    def __init__(self, registry: Optional[Registry], runs_dir: Optional[Union[str, Path]] = None) -> None:
        self.registry = registry
        self.runs_dir = Path(runs_dir or os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)
        self._tables = _Cache(4)
        self._runs = _Cache(8)
        self._jobs = SessionJobs()
        self._listing: Optional[tuple[Any, list[store.RunSummary]]] = None
        self._lock = threading.Lock()

    # -- data

    def table(self, source: DataSource) -> pd.DataFrame:
        """The whole table behind `source` (cached; a file is re-read when it changes)."""
        key: Any = source
        if source.path:
            try:
                stat = Path(source.path).stat()
                key = (source, stat.st_mtime_ns, stat.st_size)
            except OSError:
                pass  # read_table reports the problem
        return self._tables.get(key, lambda: load_table(source))

    def inspect(self, source: DataSource, task: str) -> DataView:
        """Reads the data (errors name the file or dataset) and guesses the column mapping for `task`."""
        table = self.table(source)
        return DataView(source=source, rows=len(table), columns=[str(c) for c in table.columns],
                        preview=preview(table, PREVIEW_ROWS), guess=guess_columns(table, task))  # type: ignore

    @staticmethod
    def hub_source(dataset_id: str, config: str = "", split: str = "") -> DataSource:
        """A Hub dataset's source; anything but an `owner/name` id (a path, a builder name) is refused here,
        before anything is read."""
        if not (dataset_id or "").strip():
            raise InvalidInputError("Hub dataset: type a dataset id, e.g. 'someone/reviews'")
        config, split = (config or "").strip() or None, (split or "").strip() or "test"
        return DataSource(hub_id=check_hub_id(dataset_id, config, split), hub_config=config, split=split)

    def model_choices(self, task: str) -> list[tuple[str, str]]:
        """(name, id) of the models that can be evaluated on `task`."""
        if self.registry is None:
            return []
        wanted = set(MODEL_TASKS.get(task, ()))
        return [(spec.display_name, spec.id) for spec in self.registry.specs() if wanted & set(spec.tasks)]

    def default_models(self, task: str) -> list[str]:
        if self.registry is None:
            return []
        first = "classify" if task == "classification" else "chat"
        preferred = [spec.id for spec in self.registry.specs() if first in spec.tasks]
        choices = [model_id for _, model_id in self.model_choices(task)]
        return (preferred or choices)[:1]

    # -- running

    def stream(self, config: EvalConfig, session: str = "") -> Iterator[Union[Optional[Progress], RunResult]]:
        """Runs `config` in the background: yields progress (None before the first report), then the run.

        `cancel(session)` stops it at the next batch; the run then holds what was done. Closing this generator
        (a closed browser tab) cancels too. Bad input raises the backend's error (a `WorkbenchError`).
        """
        job = EvaluationJob(config, self.registry, table=self.table(config.data), runs_dir=self.runs_dir)
        entry = self._jobs.start(session, job.cancel)  # one run per browser session: a new one replaces it
        try:
            yield None
            last: Optional[Progress] = None
            while not job.done:
                time.sleep(POLL_S)
                if job.progress is not last and job.progress is not None:
                    last = job.progress
                    yield last
        finally:
            if not job.done:
                job.cancel()
            self._jobs.finish(session, entry)
        run = job.result()
        if run.path is not None:
            self._runs.put(str(run.path), run)
        yield run

    def run(self, config: EvalConfig) -> RunResult:
        """Runs `config` to the end (the same path as the tab's Run button, without the polling)."""
        for item in self.stream(config):
            if isinstance(item, RunResult):
                return item
        raise AssertionError("the run ended without a result")

    def cancel(self, session: str = "") -> bool:
        """Asks this session's run to stop after its current batch; False when none is running."""
        return self._jobs.cancel(session)

    # -- saved runs

    def past_runs(self) -> list[store.RunSummary]:
        """The saved runs, newest first; re-read only when a results.json was added or changed (page loads list
        them, and a results.json holds every prediction)."""
        try:
            key = tuple(sorted((str(path), path.stat().st_mtime_ns)
                               for path in self.runs_dir.glob(f"*/{store.RESULTS_FILE}")))
        except OSError:  # a run being written or removed right now
            key = None
        with self._lock:
            if key is not None and self._listing is not None and self._listing[0] == key:
                return list(self._listing[1])
        summaries = store.list_runs(self.runs_dir)
        if key is not None:
            with self._lock:
                self._listing = (key, summaries)
        return list(summaries)

    def open_run(self, run_id: str) -> RunResult:
        """A saved run of this runs folder, by id (only listed ids: a request cannot name any other folder)."""
        if not run_id:
            raise InvalidInputError("run: pick a saved run first")
        summary = next((s for s in self.past_runs() if s.run_id == run_id), None)
        if summary is None:
            raise InvalidInputError(f"run: there is no saved run '{run_id}' in {self.runs_dir}")
        return self.load(str(summary.path))

    def load(self, path: str) -> RunResult:
        return self._runs.get(path, lambda: store.open_run(path))
