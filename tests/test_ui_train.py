"""The Train tab's rules without a browser: who may start training, and what the curves are drawn from."""

from __future__ import annotations

import gradio as gr
import pytest

from backend.training import runfiles
from backend.types import InvalidInputError
from ui.train import curves, may_start


def test_only_allowed_users_may_start_training(monkeypatch):
    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    monkeypatch.delenv("WORKBENCH_API_TOKEN", raising=False)
    may_start(gr.Request())  # logins off: a single-user app on 127.0.0.1
    monkeypatch.setenv("WORKBENCH_AUTH", "alice:correct-horse-battery,bob:staple-violet-tree")
    monkeypatch.setenv("WORKBENCH_TRAIN_USERS", "bob")
    may_start(gr.Request(username="bob"))
    with pytest.raises(InvalidInputError, match="may not start training"):
        may_start(gr.Request(username="alice"))
    monkeypatch.delenv("WORKBENCH_TRAIN_USERS")
    with pytest.raises(InvalidInputError):  # with logins on, training is off unless enabled
        may_start(gr.Request(username="bob"))


def test_curves_come_from_the_progress_lines(tmp_path):
    # Both series are in the table from the start (with no point drawn), or the chart gives a later one no colour.
    empty = curves(None)
    assert sorted(empty["series"]) == ["eval loss", "train loss"] and empty["loss"].isna().all()
    runfiles.append_progress(tmp_path, {"step": 0, "eval_loss": 0.9})
    first = curves(tmp_path)
    assert first["series"].tolist() == ["eval loss", "train loss"] and first["loss"].isna().tolist() == [False, True]
    (tmp_path / runfiles.PROGRESS).unlink()
    for row in ({"step": 0, "eval_loss": 0.9}, {"step": 5, "loss": 0.8}, {"step": 10, "loss": 0.5, "x": 1},
                {"step": 10, "eval_loss": 0.6}):
        runfiles.append_progress(tmp_path, row)
    with (tmp_path / runfiles.PROGRESS).open("a") as handle:
        handle.write('{"step": 15, "lo')  # a line being written right now is skipped
    frame = curves(tmp_path)
    assert frame.to_dict("records") == [
        {"step": 0, "loss": 0.9, "series": "eval loss"}, {"step": 5, "loss": 0.8, "series": "train loss"},
        {"step": 10, "loss": 0.5, "series": "train loss"}, {"step": 10, "loss": 0.6, "series": "eval loss"}]
