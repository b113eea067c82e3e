"""The Evaluate tab's logic over one registry and one runs folder, widget-free (tested without a browser).

It reads and caches data, starts an `EvaluationJob` per browser session (cancellable through ui/common/jobs.py's
registry), polls it for progress, and lists / opens saved runs. Never imports torch: the runner loads models in
its own thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import pandas as pd

from backend.guard import user_space
from backend.core.error_codes import refuse
from backend.evaluation import store
from backend.evaluation.data import DataSource, check_hub_id, guess_columns, load_table, preview
from backend.evaluation.runner import EvaluationJob
from backend.evaluation.types import EvalConfig, Progress, RunResult
from backend.core.registry import Registry
from backend.guard.table_limits import release_memory
from backend.core.types import InvalidInputError
from ui.evaluate.forms import MODEL_TASKS, NATIVE_TASKS, PREVIEW_ROWS, DataView
from ui.common.jobs import SessionJobs

POLL_S = 0.25  # how often the Run handler looks at the job's progress
# What the tab keeps in memory between requests, for every user together: a table bigger than this is read
# again when needed rather than held (docs/RELIABILITY.md has the figures).
TABLE_CACHE_BYTES = 256 * 1024 * 1024
RUN_CACHE_BYTES = 128 * 1024 * 1024
MAX_LISTINGS = 64  # cached run listings (one per user seen lately)


class _Cache:
    """A tiny thread-safe LRU (loaded tables, opened runs), bounded in items and in bytes (`weigh` estimates an
    item's size; one over `max_bytes` on its own is not kept)."""

    def __init__(self, size: int, max_bytes: int, weigh: Callable[[Any], int]) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._weights: dict[Any, int] = {}
        self._size = size
        self._max_bytes = max_bytes
        self._weigh = weigh
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
        weight = self._weigh(value)
        with self._lock:
            self._items[key] = value
            self._weights[key] = weight
            self._items.move_to_end(key)
            while self._items and (len(self._items) > self._size or sum(self._weights.values()) > self._max_bytes):
                old, _ = self._items.popitem(last=False)
                del self._weights[old]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weights.clear()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(self._weights.values())


class EvaluateController:
    """The tab's logic over one registry and one runs folder, widget-free."""

    def __init__(self, registry: Optional[Registry], runs_dir: Optional[Union[str, Path]] = None) -> None:
        self.registry = registry
        self.runs_dir = Path(runs_dir) if runs_dir else user_space.runs_root()  # $WORKBENCH_RUNS_DIR or runs
        self._tables = _Cache(4, TABLE_CACHE_BYTES, _table_bytes)
        self._runs = _Cache(8, RUN_CACHE_BYTES, _run_bytes)
        self._jobs = SessionJobs()
        self._listings: dict[tuple[str, ...], tuple[Any, list[store.RunSummary]]] = {}  # per set of folders
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
    def hub_source(dataset_id: str, config: Optional[str] = "", split: str = "") -> DataSource:
        """A Hub dataset's source; anything but an `owner/name` id (a path, a builder name) is refused here,
        before anything is read."""
        if not (dataset_id or "").strip():
            raise refuse("type_hub_id", "hub_dataset")
        config, split = (config or "").strip() or None, (split or "").strip() or "test"
        return DataSource(hub_id=check_hub_id(dataset_id, config, split), hub_config=config, split=split)

    def model_choices(self, task: str) -> list[tuple[str, str]]:
        """(name, id) of the models that can be evaluated on `task`."""
        if self.registry is None:
            return []
        wanted = set(MODEL_TASKS.get(task, ()))
        return [(spec.display_name, spec.id) for spec in self.registry.specs() if wanted & set(spec.tasks)]

    def kept_models(self, task: str, chosen: list[str], native_only: bool) -> list[str]:
        """Which of the `chosen` models stay selected for `task` (the task's default when none does).

        `native_only` (a task switch): only models made for the task stay, so a chat model picked for generation
        does not silently become a label scorer for classification.
        """
        fits = {model_id for _, model_id in self.model_choices(task)}
        if native_only and self.registry is not None:
            native = set(NATIVE_TASKS.get(task, ()))
            fits = {spec.id for spec in self.registry.specs() if spec.id in fits and native & set(spec.tasks)}
        return [model_id for model_id in chosen or [] if model_id in fits] or self.default_models(task)

    def with_base(self, models: tuple[str, ...]) -> tuple[str, ...]:
        """Compare with base: one chosen model and the model it was fine-tuned from (two chosen: as they are)."""
        if len(models) != 1 or self.registry is None:
            return models
        from backend.evaluation.compare import base_of

        return (models[0], base_of(self.registry, models[0]))

    def judge_choices(self) -> list[tuple[str, str]]:
        """(name, id) of the models that can judge (any that chats or generates)."""
        return self.model_choices("generation")

    def default_models(self, task: str) -> list[str]:
        if self.registry is None:
            return []
        first = "classify" if task == "classification" else "chat"
        choices = [model_id for _, model_id in self.model_choices(task)]
        preferred = [spec.id for spec in self.registry.specs() if first in spec.tasks and spec.id in choices]
        return (preferred or choices)[:1]

    # -- running

    def stream(self, config: EvalConfig, session: str = "",
               username: Optional[str] = None) -> Iterator[Union[Optional[Progress], RunResult]]:
        """Runs `config` in the background: yields progress (None before the first report), then the run,
        saved in `username`'s folder.

        `cancel(session)` stops it at the next batch; the run then holds what was done. Closing this generator
        (a closed browser tab) cancels too. Bad input raises the backend's error (a `WorkbenchError`).
        """
        job = EvaluationJob(config, self.registry, table=self.table(config.data),
                            runs_dir=self.runs_folder(username))
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
        try:
            run = job.result()
        finally:
            del job
            release_memory()  # what the run decoded and computed goes back to the system, not only to Python
        if run.path is not None:
            self._runs.put(str(run.path), run)
        yield run

    def run(self, config: EvalConfig, username: Optional[str] = None) -> RunResult:
        """Runs `config` to the end (the same path as the tab's Run button, without the polling)."""
        for item in self.stream(config, username=username):
            if isinstance(item, RunResult):
                return item
        raise AssertionError("the run ended without a result")

    def cancel(self, session: str = "") -> bool:
        """Asks this session's run to stop after its current batch; False when none is running."""
        return self._jobs.cancel(session)

    # -- saved runs: each user's own (backend/guard/user_space.py), every user's for an admin

    def runs_folder(self, username: Optional[str] = None) -> Path:
        """Where `username`'s runs are saved: <runs dir>/users/<user>/eval (`local` when logins are off)."""
        return user_space.user_dir("eval", username, root=self.runs_dir)

    def run_folders(self, username: Optional[str] = None) -> list[Path]:
        """The folders whose runs `username` may list and open."""
        folders = list(user_space.visible_dirs("eval", username, root=self.runs_dir))
        if not username or user_space.is_admin(username):
            # Runs saved directly in the runs folder: the command line's (`app.py eval`) and those from before
            # per-user folders. Nobody owns them, so only the app's one user (no logins) or an admin sees them.
            folders.append(self.runs_dir)
        return folders

    def past_runs(self, username: Optional[str] = None) -> list[store.RunSummary]:
        """The runs `username` may see, newest first; re-read only when a results.json was added or changed
        (page loads list them, and a results.json holds every prediction)."""
        folders = self.run_folders(username)
        try:
            key: Any = tuple(sorted((str(path), path.stat().st_mtime_ns) for folder in folders
                                    for path in folder.glob(f"*/{store.RESULTS_FILE}")))
        except OSError:  # a run being written or removed right now
            key = None
        who = tuple(str(folder) for folder in folders)
        with self._lock:
            cached = self._listings.get(who)
            if key is not None and cached is not None and cached[0] == key:
                return list(cached[1])
        summaries = sorted((summary for folder in folders for summary in store.list_runs(folder)),
                           key=lambda summary: (summary.created, summary.run_id), reverse=True)
        if key is not None:
            with self._lock:
                self._listings[who] = (key, summaries)
                while len(self._listings) > MAX_LISTINGS:
                    self._listings.pop(next(iter(self._listings)))
        return list(summaries)

    def open_run(self, run_id: str, username: Optional[str] = None) -> RunResult:
        """A saved run `username` may see, by id (only listed ids: a request cannot name any other folder, and
        another user's run is "not found", never "forbidden")."""
        if not run_id:
            raise InvalidInputError("run: pick a saved run first")
        summary = next((s for s in self.past_runs(username) if s.run_id == run_id), None)
        if summary is None:
            raise InvalidInputError(f"run: there is no saved run '{run_id[:100]}' of yours")
        return self.load(str(summary.path))

    def load(self, path: str) -> RunResult:
        return self._runs.get(path, lambda: store.open_run(path))


def _table_bytes(table: pd.DataFrame) -> int:
    return int(table.memory_usage(deep=True, index=True).sum())


def _run_bytes(run: RunResult) -> int:
    """About what a run holds: its texts (examples and every model's predictions) at ~1 byte a character plus
    Python's per-string overhead."""
    texts = [*run.examples.inputs, *run.examples.references]
    for result in run.models.values():
        texts += [prediction or "" for prediction in result.predictions]
    return sum(len(text) + 64 for text in texts)
