"""The real app (`python app.py ...`) in a subprocess: the one way every test (browser tests included) starts it.

`AppProcess` starts app.py exactly as a user would, with one addition that changes nothing else: SIGUSR1 makes
the process write the names of its Python threads to a file, so a test can check that no generate thread is
left running after clients went away. Its output goes to a log file (`output()`), never to an unread pipe that
could fill up and stall the app.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import psutil
import yaml

from tests.conftest import ROOT, free_port
from tests.tiers import refuse_in_fast_tier

START_TIMEOUT_S = 90.0

# Runs app.py as __main__ after installing the thread-dump handler.
_BOOT = """
import json, os, runpy, signal, sys, threading
def _dump(signum, frame):
    path = os.environ["WORKBENCH_TEST_THREAD_DUMP"]
    with open(path + ".tmp", "w") as out:
        json.dump([thread.name for thread in threading.enumerate()], out)
    os.replace(path + ".tmp", path)
signal.signal(signal.SIGUSR1, _dump)
sys.argv = ["app.py", *sys.argv[1:]]
runpy.run_path("app.py", run_name="__main__")
"""


class AppProcess:
    """`python app.py [--models YAML] ARGS --host 127.0.0.1 --port P` in this environment with the names in
    `unset` taken out (the defaults below included) and `env` added; stdout+stderr go to a log file.

    `listen=False` leaves out `--host/--port` (the app then picks them itself, e.g. from a Space's variables:
    pass the `port` it will use). `python` and `cwd` run another checkout of the app.
    """

    def __init__(self, models_yaml: Optional[Path] = None, env: Optional[Mapping[str, str]] = None,
                 args: Sequence[str] = (), *, port: Optional[int] = None, listen: bool = True,
                 unset: Sequence[str] = (), python: str = sys.executable, cwd: Path = ROOT) -> None:
        refuse_in_fast_tier("starts app.py")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._dir = Path(tempfile.mkdtemp(prefix="workbench-app-"))
        self.log_path = self._dir / "app.log"
        self._dump_path = self._dir / "threads.json"
        full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                    "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                    "WORKBENCH_TEST_THREAD_DUMP": str(self._dump_path)}
        # Runs, saved datasets and the registry overlay go to this app's own folder unless a test says where: a test
        # app never writes into the checkout's runs/ (where a second test run would meet the first one's models).
        full_env.setdefault("WORKBENCH_RUNS_DIR", str(self._dir / "runs"))
        for name in unset:
            full_env.pop(name, None)
        full_env.update(env or {})
        command = [python, "-c", _BOOT, *(["--models", str(models_yaml)] if models_yaml else []), *args,
                   *(["--host", "127.0.0.1", "--port", str(self.port)] if listen else [])]
        self._started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        self.process = psutil.Process(self.popen.pid)
        self.startup_s: Optional[float] = None  # from the start to the port accepting connections

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> "AppProcess":
        """Returns once the port accepts connections; fails with the app's output if it exits or never listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"the app exited with {self.popen.returncode}:\n{self.output()[-6000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    if self.startup_s is None:
                        self.startup_s = time.perf_counter() - self._started
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the app did not listen within {timeout:.0f} s:\n{self.output()[-6000:]}")

    # ------------------------------------------------------------------------------------- measuring

    def cpu_seconds(self) -> float:
        """User + system CPU time of the app process so far (all its threads)."""
        times = self.process.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return self.process.memory_info().rss / 1024**2

    def thread_names(self, timeout: float = 10.0) -> list[str]:
        self._dump_path.unlink(missing_ok=True)
        os.kill(self.popen.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._dump_path.exists():
                return json.loads(self._dump_path.read_text())
            time.sleep(0.05)
        raise AssertionError("the app did not answer the thread dump signal")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # ---------------------------------------------------------------------------------------- ending

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def __enter__(self) -> "AppProcess":
        return self.wait_ready()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextmanager
def openai_api_served(registry: Any) -> Iterator[str]:
    """The OpenAI-compatible routes alone over `registry` (a backend.core.registry.Registry), served by uvicorn in a
    thread of this process; yields the base URL (http://127.0.0.1:P) and stops the server afterwards."""
    import uvicorn
    from fastapi import FastAPI

    from backend.api import add_openai_routes

    app = FastAPI()
    add_openai_routes(app, registry)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    if not server.started:
        raise AssertionError(f"the API server on port {port} did not start (see the log above)")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def models_yaml_variant(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of `source` (a models.yaml) with `change(config_dict)` applied; sources stay absolute."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    change(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Prints a test's measured figures (run pytest with -s to see them) and, when WORKBENCH_RELIABILITY_FIGURES
    names a file, appends them there as one JSON line: docs/RELIABILITY.md is written from those."""
    line = json.dumps({"test": name, **figures}, ensure_ascii=False)
    print(f"\nFIGURES {line}")
    target = os.environ.get("WORKBENCH_RELIABILITY_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")
