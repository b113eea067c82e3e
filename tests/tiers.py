"""Two test tiers: fast (`-m "not full"`: unit and contract tests, minutes) and full (`-m full`: the rest).

A test is in the full tier when any of these holds (tests/conftest.py applies them at collection):
- it lives under tests/browser/ (Chromium drives the real app);
- it uses, directly or through other fixtures, a fixture decorated with `@full_tier` (one that starts the app,
  a server, a training process, or reads real pretrained weights);
- it carries `@pytest.mark.full` itself (or its module sets `pytestmark = pytest.mark.full`).

Every test is in exactly one tier, since `full` is one marker and the tiers are `-m full` and `-m "not full"`;
tests/test_tiers.py checks that the real `-m` selection agrees with the tiers computed here.

So that a slow test cannot slip into the fast tier unnoticed, a fast test that starts the app (in-process, or
`python app.py` for a server or a command), an HTTP server (uvicorn), `transformers serve`, a training process,
or unpacks a real pretrained model fails at once, naming what it started and the marker to add
(`refuse_in_fast_tier`, `install_guards`).

scripts/run-tests.sh runs each tier's tests in two pytest-xdist workers, whole files per worker, except those marked
`alone` (pytest.ini), which it runs afterwards by themselves: a test that asserts a wall-clock or CPU-time bound or a
memory bound, or that loads the machine, carries `alone` (its module's `pytestmark`, or on the test), so that no other
test's work ever lands in what it measures.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import pytest

FULL = "full"
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
_ATTRIBUTE = "workbench_full_tier"

F = TypeVar("F", bound=Callable[..., Any])

# The node id of the fast-tier test now running (setup, call and teardown), or None.
_fast_test: Optional[str] = None


def full_tier(fixture_function: F) -> F:
    """Puts every test that uses this fixture (directly or not) in the full tier. Goes under `@pytest.fixture`."""
    setattr(fixture_function, _ATTRIBUTE, True)
    return fixture_function


def is_full(item: pytest.Item) -> bool:
    """Whether `item` belongs to the full tier (see the module docstring for the rules)."""
    if BROWSER_DIR in Path(str(item.path)).parents or item.get_closest_marker(FULL) is not None:
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(getattr(definition.func, _ATTRIBUTE, False)
               for definitions in info.name2fixturedefs.values() for definition in definitions)


def mark_tiers(items: list[pytest.Item]) -> None:
    """Adds the `full` marker to every item `is_full` says belongs there (before `-m` selects)."""
    for item in items:
        if is_full(item) and item.get_closest_marker(FULL) is None:
            item.add_marker(pytest.mark.full)


def write_report(collected: list[pytest.Item], selected: list[pytest.Item]) -> None:
    """With WORKBENCH_TIER_REPORT=PATH, writes {"collected", "full", "selected"} node ids there as JSON."""
    path = os.environ.get("WORKBENCH_TIER_REPORT")
    if path:
        Path(path).write_text(json.dumps({
            "collected": [item.nodeid for item in collected],
            "full": [item.nodeid for item in collected if item.get_closest_marker(FULL) is not None],
            "selected": [item.nodeid for item in selected]}), encoding="utf-8")


def refuse_in_fast_tier(what: str) -> None:
    """Fails the running test if it is a fast-tier test: `what` (e.g. "starts app.py") belongs to the full tier."""
    if _fast_test is not None:
        pytest.fail(f"{_fast_test} {what}, which the fast tier never does: mark the test `@pytest.mark.full`, or "
                    "decorate the fixture that does it with `@full_tier` (tests/tiers.py)", pytrace=False)


def running(item: Optional[pytest.Item]) -> None:
    """Records the test now running (None between tests), for `refuse_in_fast_tier`."""
    global _fast_test
    _fast_test = item.nodeid if item is not None and item.get_closest_marker(FULL) is None else None


def _guard(owner: type, name: str, what: str) -> None:
    original = getattr(owner, name)
    if getattr(original, _ATTRIBUTE, False):
        return

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refuse_in_fast_tier(what)
        return original(*args, **kwargs)

    setattr(guarded, _ATTRIBUTE, True)
    setattr(owner, name, guarded)


def _guard_app_runs() -> None:
    """`python app.py ...` in a child process (a server or a command: eval, train, data) belongs to the full tier;
    `app.py --help` prints and exits and stays fast."""
    original = subprocess.Popen.__init__
    if getattr(original, _ATTRIBUTE, False):
        return

    @functools.wraps(original)
    def guarded(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [str(arg) for arg in ([args] if isinstance(args, (str, bytes, os.PathLike)) else args)]
        if any(Path(arg).name == "app.py" for arg in argv) and "--help" not in argv:
            refuse_in_fast_tier("runs `python app.py` in a child process")
        original(self, args, *rest, **kwargs)

    setattr(guarded, _ATTRIBUTE, True)
    subprocess.Popen.__init__ = guarded  # type: ignore[method-assign]


def install_guards() -> None:
    """Makes what the fast tier must not do fail in a fast test (the test helpers call refuse_in_fast_tier
    themselves: tests.app_process, tests.remote_server, tests.real_minilm)."""
    import gradio
    import uvicorn

    from backend.training.runs import TrainingRuns

    _guard(gradio.Blocks, "launch", "launches a Gradio app")
    _guard(uvicorn.Server, "__init__", "starts an HTTP server (uvicorn)")
    _guard(TrainingRuns, "start", "starts a training process")
    _guard_app_runs()
