"""A data preparation runs in its own process: the result is saved, a failure is reported, Cancel leaves nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from backend.data.jobs import DataJob
from backend.data.recipe import Recipe
from backend.data.store import list_datasets
from backend.evaluation.data import DataSource
from tests.test_data_prep import write_csv


def test_job_runs_in_a_child_process_and_saves(tmp_path: Path) -> None:
    rows = [{"text": f"review number {i} " + "word " * (i % 7), "label": "ab"[i % 2]} for i in range(200)]
    data = write_csv(tmp_path / "r.csv", rows)
    recipe = Recipe(DataSource(path=str(data)), "text", "label", clean=("normalize", "dedupe"), split=(0.8, 0.2, 0))
    job = DataJob.start(recipe, "reviews", "alice", "csv", display_name="r.csv", root=tmp_path / "runs")
    assert job.process.pid != os.getpid()
    status = job.wait(120)
    assert status["state"] == "done", status
    assert status["card"]["rows"] == {"train": 160, "validation": 40}
    assert [d.name for d in list_datasets("alice", root=tmp_path / "runs")] == ["reviews"]

    counted = DataJob.start(recipe, "", "alice", dry_run=True, root=tmp_path / "runs").wait(120)
    assert counted["state"] == "done" and counted["card"]["rows"] == {"train": 160, "validation": 40}
    assert [step["step"] for step in counted["card"]["steps"]] == ["load", "normalize", "dedupe", "split"]
    assert [d.name for d in list_datasets("alice", root=tmp_path / "runs")] == ["reviews"]  # nothing saved

    failing = DataJob.start(recipe.with_changes(text_column="nope"), "broken", "alice", root=tmp_path / "runs")
    status = failing.wait(120)
    assert status["state"] == "failed" and "there is no column 'nope'" in status["error"]
    assert [d.name for d in list_datasets("alice", root=tmp_path / "runs")] == ["reviews"]


def test_cancel_stops_the_process_and_leaves_nothing(tmp_path: Path) -> None:
    rows = [{"text": f"sentence {i} about a happy dog and a quick cat", "label": "ab"[i % 2]} for i in range(3000)]
    data = write_csv(tmp_path / "big.csv", rows)
    recipe = Recipe(DataSource(path=str(data)), "text", "label", augment=("synonym",), copies=5)
    job = DataJob.start(recipe, "big", None, root=tmp_path / "runs")
    while job.poll().get("message") != "augmenting: synonym" and not job.finished:
        time.sleep(0.05)
    assert not job.finished  # 15,000 synonym rows take a while: it is cancelled mid-run
    job.cancel()
    assert job.finished and job.poll()["state"] == "cancelled"
    datasets_dir = tmp_path / "runs" / "users" / "local" / "datasets"
    assert list(datasets_dir.iterdir()) == []
