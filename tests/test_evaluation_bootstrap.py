"""Issue 15 item 9: the bootstrap is capped and stops at Cancel (checked by counting, not by timing)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from backend.evaluation import scoring
from backend.evaluation.data import ColumnMapping, DataSource
from backend.evaluation.runner import EvaluationJob
from backend.evaluation.types import MAX_BOOTSTRAP, EvalConfig
from backend.core.types import InvalidInputError


class CancelAfter(threading.Event):
    """A cancel flag that Cancel "presses" after it has been looked at `checks` times; counts every look."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.allowed, self.looks = checks, 0

    def is_set(self) -> bool:
        self.looks += 1
        if self.looks > self.allowed:
            self.set()
        return super().is_set()


def labels(count: int) -> dict[str, list[str]]:
    references = [("yes", "no", "maybe")[i % 3] for i in range(count)]
    return {"predictions": [("yes", "no")[i % 2] for i in range(count)], "references": references}


def test_the_bootstrap_stops_at_the_first_look_after_cancel() -> None:
    flag = CancelAfter(checks=40)
    reports: list[tuple[int, int]] = []
    result = scoring.score("classification", labels(500), bootstrap=MAX_BOOTSTRAP, cancel=flag,
                           on_resample=lambda done, total: reports.append((done, total)))
    # Looks: one before the bootstrap, one per resample up to the one that saw Cancel (the 41st), one after it
    # to say so: no resample ran after Cancel.
    assert flag.looks == 42
    assert result.intervals == {} and result.notices == ["no confidence intervals: the bootstrap was cancelled"]
    assert result.metrics["accuracy"] == pytest.approx(1 / 3, abs=0.01)  # the metrics themselves are kept
    assert reports == [(0, MAX_BOOTSTRAP)]
    whole = scoring.score("classification", labels(500), bootstrap=300, cancel=threading.Event(),
                          on_resample=lambda done, total: reports.append((done, total)))
    assert set(whole.intervals) >= {"accuracy", "f1_macro"} and not whole.notices
    assert reports[1:] == [(0, 300), (100, 300), (200, 300)]


def test_cancel_during_a_runs_bootstrap_ends_the_run(tmp_path: Path) -> None:
    path = tmp_path / "scored.csv"
    pd.DataFrame(labels(2_000)).rename(columns={"references": "label", "predictions": "pred"}).to_csv(path,
                                                                                                       index=False)
    config = EvalConfig(task="classification", data=DataSource(path=str(path)), bootstrap=MAX_BOOTSTRAP,
                        columns=ColumnMapping(reference="label", predictions="pred"))
    seen: list[str] = []
    jobs: list[EvaluationJob] = []

    def on_progress(progress) -> None:
        seen.append(progress.message)
        if "resamples" in progress.message and jobs:
            jobs[0].cancel()  # as the Cancel button does, once the bootstrap is under way

    jobs.append(EvaluationJob(config, None, progress=on_progress, runs_dir=None))
    run = jobs[0].result(timeout=600)
    result = run.models["predictions"]
    assert run.cancelled and result.intervals == {} and result.metrics["accuracy"] == pytest.approx(1 / 3, abs=0.01)
    assert "no confidence intervals: the bootstrap was cancelled" in result.notices
    resampling = [message for message in seen if "resamples" in message]
    assert resampling and all(f"/ {MAX_BOOTSTRAP:,} resamples" in message for message in resampling)
    assert len(resampling) <= 2  # not the 100 reports of a finished bootstrap


def test_more_resamples_than_the_cap_are_refused() -> None:
    config = EvalConfig(task="classification", data=DataSource(path="x.csv"), bootstrap=MAX_BOOTSTRAP + 1,
                        columns=ColumnMapping(reference="label", predictions="pred"))
    with pytest.raises(InvalidInputError, match="bootstrap: must be a whole number between 0 and 10000"):
        config.validated()
