"""Training runs as seen by the server: create a run folder, queue and start the training process, stop,
resume, and read what the process wrote. The server holds nothing of a run but a Popen handle: every fact
comes from the run folder's files (backend/training/runfiles.py), so the app can restart at any time.

One training process at a time per manager (one manager per device); later starts wait in a visible queue.
A process that ends without writing a final status (killed, crashed hard) is recorded "failed" with its exit
code or signal, never "completed". Standard library only: no torch in the server for this.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from backend.guard import user_space
from backend.core.error_codes import refuse
from backend.training import runfiles
from backend.training.config import TrainConfig, load_train_config, save_train_config
from backend.training.launch import as_text, worker_command
from backend.core.types import InvalidInputError, WorkbenchError

POLL_S = 0.5
FinishedHook = Callable[[Path, runfiles.RunMetrics], None]


@dataclass
class RunInfo:
    run_id: str
    run_dir: Path
    status: str  # queued, running, completed, stopped, failed
    task: str = ""
    base: str = ""
    reason: str = ""
    step: int = 0
    max_steps: int = 0
    final: dict[str, float] = field(default_factory=dict)
    registered_as: Optional[str] = None
    queue_position: Optional[int] = None
    # a refusal's code, field and params (metrics.json)
    error: runfiles.ErrorValue = field(default_factory=runfiles.ErrorValue)
    # why a finished model is not registered (the same)
    registration: runfiles.ErrorValue = field(default_factory=runfiles.ErrorValue)

    def failure(self) -> Optional[WorkbenchError]:
        """Why the run failed, as the error value the worker refused with (None when it carries no code)."""
        if not self.error.get("code"):
            return None
        return InvalidInputError(self.reason, code=self.error["code"], field=self.error.get("field"),
                                 params=self.error.get("params"))

    def not_registered(self) -> Optional[WorkbenchError]:
        """Why the finished model is not in the registry (its name was taken meanwhile), or None."""
        if not self.registration.get("code"):
            return None
        return refuse(self.registration["code"], self.registration.get("field"), kind=InvalidInputError, shown=None,
                      **(self.registration.get("params") or {}))

    def describe(self) -> str:
        where = f" (#{self.queue_position} in the queue)" if self.queue_position else ""
        progress = f", step {self.step}/{self.max_steps}" if self.max_steps else ""
        unregistered = self.not_registered()
        reason = f": {unregistered}" if unregistered is not None else f": {self.reason}" if self.reason else ""
        return f"{self.run_id}: {self.status}{where}{progress}{reason}"


class TrainingRuns:
    """Starts training processes one at a time and watches them; `on_finished(run_dir, metrics)` runs once per
    process that ends (the place to register a finished model)."""

    def __init__(self, python: Optional[str] = None, on_finished: Optional[FinishedHook] = None,
                 env: Optional[dict[str, str]] = None) -> None:
        self._python = python
        self._on_finished = on_finished
        self._env = env
        self._lock = threading.Lock()
        self._queue: list[tuple[Path, bool]] = []
        self._active: Optional[tuple[Path, subprocess.Popen]] = None
        self._watcher: Optional[threading.Thread] = None
        self._closed = threading.Event()

    # ------------------------------------------------------------------------------------------ create

    @staticmethod
    def create(config: TrainConfig, username: Optional[str] = None, out: Optional[Path] = None,
               root: Optional[Path] = None) -> Path:
        """A new run folder (under the user's `train` folder, or `out`) holding config.yaml and command.txt."""
        if out is None:
            now = time.time()  # to the millisecond: the runs list sorts by folder name, newest first
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
            out = user_space.user_dir("train", username, root) / f"{stamp}-{config.task}-{secrets.token_hex(3)}"
        elif out.exists() and (not out.is_dir() or any(out.iterdir())):
            # Never over an earlier run (or anything else): its model and metrics would be lost silently.
            raise refuse("out_taken", "out", path=str(out))
        out.mkdir(parents=True, exist_ok=True)
        config_path = save_train_config(config, out / runfiles.CONFIG)
        (out / runfiles.COMMAND).write_text(as_text(worker_command(config, config_path.resolve())) + "\n",
                                            encoding="utf-8")
        return out

    # ------------------------------------------------------------------------------------ start / stop

    def start(self, run_dir: Path, resume: bool = False) -> int:
        """Queues the run; returns its place (0: starting now). Resume needs a checkpoint of a stopped or
        failed run."""
        run_dir = Path(run_dir)
        if not (run_dir / runfiles.CONFIG).is_file():
            raise InvalidInputError(f"run: {run_dir.name} has no config.yaml", field="run")
        if resume and runfiles.last_checkpoint(run_dir) is None:
            raise InvalidInputError(f"resume: run {run_dir.name} has no checkpoint yet; start it again instead",
                                    field="resume")
        self._wait_until_not_active(run_dir)
        with self._lock:
            if self._active and self._active[0] == run_dir or any(queued == run_dir for queued, _ in self._queue):
                raise InvalidInputError(f"run: {run_dir.name} is already running or queued", field="run")
            (run_dir / runfiles.STOP).unlink(missing_ok=True)
            self._queue.append((run_dir, resume))
            runfiles.write_json_atomic(run_dir / runfiles.METRICS, {**_kept(run_dir), "status": "queued"})
            position = len(self._queue) - (0 if self._active else 1)
            self._ensure_watcher()
        self._start_next()
        return position

    def _wait_until_not_active(self, run_dir: Path, timeout_s: float = 30.0) -> None:
        """A run that has written its final status is about to exit: give the watcher time to take note."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                active = self._active is not None and self._active[0] == run_dir
            if not active or runfiles.read_metrics(run_dir).get("status") not in runfiles.FINAL_STATUSES:
                return
            time.sleep(0.1)

    def stop(self, run_dir: Path) -> str:
        """Asks the run to stop: a queued run leaves the queue; a running one saves a checkpoint and ends."""
        run_dir = Path(run_dir)
        with self._lock:
            for index, (queued, _) in enumerate(self._queue):
                if queued == run_dir:
                    del self._queue[index]
                    runfiles.write_json_atomic(run_dir / runfiles.METRICS, {
                        **_kept(run_dir), "status": "stopped", "reason": "removed from the queue before it started"})
                    return "removed from the queue"
            if not self._active or self._active[0] != run_dir:
                raise InvalidInputError(f"run: {run_dir.name} is not running", field="run")
        runfiles.request_stop(run_dir)
        return "stopping: a checkpoint is saved at the next step"

    def wait(self, run_dir: Path, timeout: Optional[float] = None) -> runfiles.RunMetrics:
        """Blocks until the run has a final status (completed / stopped / failed); returns metrics.json."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            metrics = runfiles.read_metrics(run_dir)
            with self._lock:
                busy = (self._active and self._active[0] == run_dir) or any(q == run_dir for q, _ in self._queue)
            if not busy and metrics.get("status") in runfiles.FINAL_STATUSES:
                return metrics
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_dir.name} did not finish in {timeout} s")
            time.sleep(0.1)

    def close(self, kill: bool = True) -> None:
        """Stops watching; by default ends a running training process (SIGTERM, then SIGKILL)."""
        self._closed.set()
        with self._lock:
            active = self._active
            self._queue.clear()
        if kill and active:
            _end_process(active[1])
        if self._watcher:
            self._watcher.join(timeout=10)

    # ----------------------------------------------------------------------------------------- reading

    def queue(self) -> list[str]:
        """Run ids in order: the running one first, then those waiting."""
        with self._lock:
            running = [self._active[0].name] if self._active else []
            return running + [run_dir.name for run_dir, _ in self._queue]

    def info(self, run_dir: Path) -> RunInfo:
        run_dir = Path(run_dir)
        metrics = runfiles.read_metrics(run_dir)
        status = metrics.get("status") or "created"
        with self._lock:
            mine = bool(self._active and self._active[0] == run_dir)
            waiting = [queued for queued, _ in self._queue]
        if mine and status in runfiles.FINAL_STATUSES:
            # Written, but the process is still exiting (and a finished model not yet registered): not final yet,
            # so nobody is offered Resume or told "completed" before the server has taken note.
            status = "finishing"
        if status == "queued" and not mine and run_dir not in waiting:
            status, metrics["reason"] = "stopped", "it was queued when the app restarted; start it again"
        if status == "running" and not mine and not _alive(metrics.get("pid")):
            # Written by a process this server does not watch (an earlier server) that is gone.
            status, metrics["reason"] = "failed", (f"the training process (pid {metrics.get('pid')}) ended without "
                                                   "a result: it was killed, or the app restarted during the run")
        progress = runfiles.read_progress(run_dir)
        last = progress[-1] if progress else {}
        config = _config_or_none(run_dir)
        return RunInfo(
            run_id=run_dir.name, run_dir=run_dir, status=status, task=config.task if config else "",
            base=(config.base_id or Path(config.base).name) if config else "", reason=metrics.get("reason") or "",
            step=int(metrics.get("step") or last.get("step") or 0),
            max_steps=int(metrics.get("max_steps") or last.get("max_steps") or 0),
            final=metrics.get("final") or {}, registered_as=metrics.get("registered_as"),
            queue_position=waiting.index(run_dir) + 1 if run_dir in waiting else None,
            error=(metrics.get("error") or {}) if status == "failed" else {},
            registration=registration if isinstance(registration := metrics.get("registration_error"), dict) else {})

    def list_runs(self, username: Optional[str] = None, root: Optional[Path] = None) -> list[RunInfo]:
        """The runs this user may see, newest first."""
        runs = []
        for folder in user_space.visible_dirs("train", username, root):
            runs += [self.info(child) for child in folder.iterdir() if (child / runfiles.CONFIG).is_file()]
        return sorted(runs, key=lambda run: run.run_id, reverse=True)

    # ------------------------------------------------------------------------------------------ inside

    def _ensure_watcher(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._closed.clear()
            self._watcher = threading.Thread(target=self._watch, name="training-runs", daemon=True)
            self._watcher.start()

    def _start_next(self) -> None:
        with self._lock:
            if self._active or not self._queue or self._closed.is_set():
                return
            run_dir, resume = self._queue.pop(0)
            config = load_train_config(run_dir / runfiles.CONFIG)
            command = worker_command(config, (run_dir / runfiles.CONFIG).resolve(), resume, self._python)
            log = open(run_dir / runfiles.LOG, "ab")
            log.write(f"\n$ {as_text(command)}\n".encode())
            log.flush()
            env = {**os.environ, **(self._env or {}), "PYTHONUNBUFFERED": "1"}
            try:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True)
            except OSError as error:
                runfiles.write_json_atomic(run_dir / runfiles.METRICS, {
                    **_kept(run_dir), "status": "failed", "reason": f"could not start the training process: {error}"})
                return
            finally:
                log.close()
            self._active = (run_dir, process)

    def _watch(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                active = self._active
            if active and active[1].poll() is not None:
                self._finish(*active)
                with self._lock:
                    self._active = None
                self._start_next()
            elif not active:
                self._start_next()
            self._closed.wait(POLL_S)

    def _finish(self, run_dir: Path, process: subprocess.Popen) -> None:
        metrics = runfiles.read_metrics(run_dir)
        if metrics.get("status") not in runfiles.FINAL_STATUSES:
            metrics = {**metrics, "status": "failed", "reason": exit_reason(process.returncode),
                       "history": runfiles.read_progress(run_dir), "finished": time.time()}
            runfiles.write_json_atomic(run_dir / runfiles.METRICS, metrics)
        if self._on_finished is not None:
            try:
                self._on_finished(run_dir, metrics)
            except Exception as error:  # noqa: BLE001 - a failed registration must not stop the queue
                metrics["registration_error"] = str(error)
                runfiles.write_json_atomic(run_dir / runfiles.METRICS, metrics)


def exit_reason(returncode: Optional[int]) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{hint} before it finished"
    return f"the training process exited with code {returncode} without writing its result; see log.txt"


def _kept(run_dir: Path) -> runfiles.RunMetrics:
    """What a new status keeps from the old metrics.json (its registration)."""
    metrics = runfiles.read_metrics(run_dir)
    return {"registered_as": metrics["registered_as"]} if "registered_as" in metrics else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _config_or_none(run_dir: Path) -> Optional[TrainConfig]:
    try:
        return load_train_config(run_dir / runfiles.CONFIG)
    except InvalidInputError:
        return None


def _end_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
