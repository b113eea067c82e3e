"""Training runs end to end on the tiny classifier, each in its own training process: the model learns
(held-out accuracy from chance to >= 0.9) and is registered at once, and stop + resume reaches the same final
metrics as that uninterrupted run; a process killed from outside is reported failed, and the app's registry keeps
serving."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace
from pathlib import Path

import pytest

from backend.training import overlay, runfiles
from backend.training.config import parse_train_config
from backend.training.service import TrainingService
from tests.training_data import sentiment_rows, write_csv
from tests.tiers import full_tier

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
@full_tier
def service(registry, tmp_path):
    service = TrainingService(registry, root=tmp_path / "runs", env=OFFLINE)
    yield service
    service.close()


def config_for(service, tmp_path, **extra):
    data = tmp_path / "train.csv"
    if not data.exists():
        write_csv(data, sentiment_rows(200, seed=0))
    base, spec = service.resolve_base("tiny-classifier", "classification")
    return parse_train_config({"task": "classification", "base": base, "base_id": spec.id, "data": str(data),
                               "text_column": "text", "label_column": "label", "method": "full",
                               "learning_rate": 1e-3, "batch_size": 16, "max_length": 16, "eval_steps": 10,
                               "logging_steps": 5, **extra})


def accuracy(registry, model_id: str, rows) -> float:
    with registry.lease(model_id, "classify") as engine:
        scores = engine.classify([row["text"] for row in rows])
    predicted = [max(options, key=lambda score: score.score).label for options in scores]
    return sum(p == row["label"] for p, row in zip(predicted, rows)) / len(rows)


def wait_for_step(run_dir: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(row.get("step", 0) >= step for row in runfiles.read_progress(run_dir)):
            return
        time.sleep(0.02)
    raise AssertionError(f"no progress past step {step}: {runfiles.tail(run_dir / runfiles.LOG)}")


def test_a_run_learns_is_registered_and_stop_then_resume_equals_it(service, registry, tmp_path):
    settings = dict(max_steps=80, eval_steps=20, logging_steps=1)
    straight = service.start(config_for(service, tmp_path, register_as="tiny-sentiment-ft", **settings))
    expected = service.runs.wait(straight, timeout=300)
    assert expected["status"] == "completed", expected.get("reason")
    # It learns: held-out accuracy from chance (the step-0 evaluation) to >= 0.9.
    evaluations = [row for row in expected["history"] if "eval_accuracy" in row]
    assert evaluations[0]["step"] == 0 and evaluations[0]["eval_accuracy"] <= 0.65
    assert expected["final"]["accuracy"] >= 0.9 and expected["final"]["f1_macro"] >= 0.9
    assert {"loss", "learning_rate", "samples_per_s", "tokens_per_s", "eta_s", "memory_mb"} <= set(
        next(row for row in expected["history"] if "loss" in row))
    for name in (runfiles.CONFIG, runfiles.COMMAND, runfiles.CARD, runfiles.LOG, runfiles.PROGRESS):
        assert (straight / name).is_file(), name
    assert "accuracy" in (straight / runfiles.CARD).read_text() and "backend.training.worker" in \
        (straight / runfiles.COMMAND).read_text()
    # Registered at once, in the live registry and the overlay file, never in models.yaml.
    held_out = sentiment_rows(60, seed=99)
    assert accuracy(registry, "tiny-sentiment-ft", held_out) >= 0.9
    assert accuracy(registry, "tiny-classifier", held_out) <= 0.7  # the base, for contrast
    assert [entry["id"] for entry in overlay.read_entries(tmp_path / "runs")] == ["tiny-sentiment-ft"]
    merged = overlay.with_overlay(registry.config.model_copy(update={"models": registry.config.models[:3]}),
                                  tmp_path / "runs")
    assert merged.spec("tiny-sentiment-ft").source == str((straight / "model").resolve())
    assert service.info(straight).registered_as == "tiny-sentiment-ft"

    # Stopped at step 2 and resumed, the same settings end at the same metrics and losses.

    interrupted = service.start(config_for(service, tmp_path, **settings))
    wait_for_step(interrupted, 2)
    service.stop(interrupted)
    stopped = service.runs.wait(interrupted, timeout=300)
    assert stopped["status"] == "stopped", stopped.get("reason")
    stopped_step = stopped["step"]
    assert 2 <= stopped_step < 80 and f"checkpoint-{stopped_step}" in stopped["reason"]
    assert service.info(interrupted).status == "stopped"

    service.resume(interrupted)
    resumed = service.runs.wait(interrupted, timeout=300)
    assert resumed["status"] == "completed", resumed.get("reason")
    assert resumed["step"] == expected["step"] == 80
    for name in ("loss", "accuracy", "f1_macro"):
        assert resumed["final"][name] == pytest.approx(expected["final"][name], rel=1e-4, abs=1e-6), name
    losses = [row["loss"] for row in resumed["history"] if "loss" in row and row["step"] > stopped_step]
    straight_losses = [row["loss"] for row in expected["history"] if "loss" in row and row["step"] > stopped_step]
    assert losses == pytest.approx(straight_losses, rel=1e-4)


def test_killed_run_is_failed_and_the_registry_keeps_serving(service, registry, tmp_path):
    run_dir = service.start(config_for(service, tmp_path, max_steps=100_000))
    wait_for_step(run_dir, 5)
    pid = runfiles.read_metrics(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    metrics = service.runs.wait(run_dir, timeout=60)
    assert metrics["status"] == "failed"
    assert "killed by SIGKILL" in metrics["reason"]
    info = service.info(run_dir)
    assert info.status == "failed" and info.final == {}
    with registry.lease("tiny-classifier", "classify") as engine:  # the app's models still serve
        scores = engine.classify(["loved it", "rude staff"])
    assert [sorted(score.label for score in options) for options in scores] == [["negative", "positive"]] * 2
    assert service.runs.queue() == []
    # The next run starts: the queue was not left blocked by the dead process.
    second = service.start(config_for(service, tmp_path, max_steps=10, eval_steps=5))
    assert service.runs.wait(second, timeout=300)["status"] == "completed"


def test_a_run_whose_name_was_taken_meanwhile_says_so_and_registers_under_another(service, registry, tmp_path):
    """Issue 27 item 7: the name was free when the run started; another model took it while the run trained. The
    run finishes unregistered, and its status says why in the runs list, the Train tab and the CLI's words (before,
    only metrics.json held a Python error string, and the run read plain "completed")."""
    from backend.core.config import ModelSpec
    from ui.i18n.core import CHINESE
    from ui.i18n.error_words import worded
    from ui.train.progress import reason

    run_dir = service.start(config_for(service, tmp_path, register_as="tiny-sentiment-ft", max_steps=4,
                                       eval_steps=4, logging_steps=2))
    registry.add(ModelSpec(**{**registry.spec("tiny-classifier").model_dump(exclude_none=True),
                              "id": "tiny-sentiment-ft"}))  # taken meanwhile
    metrics = service.runs.wait(run_dir, timeout=300)
    assert metrics["status"] == "completed", metrics.get("reason")
    info = service.info(run_dir)
    assert info.registered_as is None
    said = ("finished, not registered: the name 'tiny-sentiment-ft' was taken meanwhile; register it under another "
            "name")
    assert info.describe().endswith(f"completed, step 4/4: {said}")
    assert "the name 'tiny-sentiment-ft' was taken meanwhile" in reason(info)  # the Train tab and its runs list
    chinese = worded(info.not_registered(), SimpleNamespace(headers={"accept-language": CHINESE}))
    assert "“tiny-sentiment-ft”" in chinese and "未注册" in chinese
    assert [entry["id"] for entry in overlay.read_entries(tmp_path / "runs")] == []  # nobody's entry replaced

    assert service.register(run_dir, "tiny-sentiment-ft-2") == "tiny-sentiment-ft-2"
    info = service.info(run_dir)
    assert info.registered_as == "tiny-sentiment-ft-2" and info.not_registered() is None
    assert registry.spec("tiny-sentiment-ft-2").source == str((run_dir / "model").resolve())
