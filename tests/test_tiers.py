"""The two test tiers (tests/tiers.py): pytest's real `-m "not full"` selection is exactly the tests the tier
rules leave out of the full tier, so the fast and full runs of scripts/run-tests.sh together run every test
once; and a fast-tier test that starts what only the full tier may start fails at once, saying what to mark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_fast_and_full_tiers_split_every_test_exactly_once(tmp_path: Path) -> None:
    report = tmp_path / "tiers.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not full",
                           "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "WORKBENCH_TIER_REPORT": str(report)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]  # no collection errors either
    tiers = json.loads(report.read_text(encoding="utf-8"))
    collected, full, fast = (set(tiers[key]) for key in ("collected", "full", "selected"))
    assert len(collected) == len(tiers["collected"]) and collected, "node ids must be unique"
    assert fast == collected - full  # what `-m "not full"` ran is what the rules put in the fast tier
    assert fast and full and fast | full == collected and not fast & full
    browser = {node for node in collected if node.startswith("tests/browser/")}
    assert browser and browser <= full
    # Tests that start the app, a server or a training process through a @full_tier fixture, for instance:
    for node in ("tests/test_app_smoke.py::test_app_serves_the_openai_api_on_the_same_port",
                 "tests/test_api.py::test_count_tokens", "tests/test_training_runs.py::"
                 "test_killed_run_is_failed_and_the_registry_keeps_serving"):
        assert node in full, node
    assert "tests/test_tiers.py::test_the_fast_and_full_tiers_split_every_test_exactly_once" in fast


def test_a_fast_test_that_launches_the_app_fails_naming_the_marker(tmp_path: Path) -> None:
    import gradio as gr

    from tests.app_process import AppProcess

    with gr.Blocks() as demo:
        gr.Markdown("never served")
    with pytest.raises(pytest.fail.Exception, match=r"launches a Gradio app.*@pytest\.mark\.full.*@full_tier"):
        demo.launch(prevent_thread_lock=True)
    with pytest.raises(pytest.fail.Exception, match=r"starts app\.py"):
        AppProcess(tmp_path / "models.yaml")
    with pytest.raises(pytest.fail.Exception, match=r"runs `python app\.py` in a child process"):
        subprocess.run([sys.executable, "app.py", "eval", "--help-me"], cwd=ROOT, capture_output=True, timeout=60)
    # `app.py --help` prints and exits: a boundary test may run it.
    assert subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, timeout=120,
                          text=True).stdout.startswith("usage:")


def test_a_fast_test_that_starts_a_server_or_a_training_run_fails(tmp_path: Path) -> None:
    import uvicorn
    from fastapi import FastAPI

    from backend.training.runs import TrainingRuns

    with pytest.raises(pytest.fail.Exception, match=r"starts an HTTP server \(uvicorn\)"):
        uvicorn.Server(uvicorn.Config(FastAPI()))
    with pytest.raises(pytest.fail.Exception, match=r"starts a training process"):
        TrainingRuns().start(tmp_path)
