"""DPO as the third training recipe, on the tiny chat model: a run through the training process (stopped and
resumed on the way) writes progress lines with the loss and TRL's reward metrics, registers its adapter, and its
reward accuracy on the training pairs goes up from 0 (policy = reference: every reward is 0, no pair won) to 1;
the CLI form works; bad columns are refused naming the field; the three data shapes read the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.services import generation as chat_service
from backend.training import runfiles
from backend.training.config import parse_train_config
from backend.training.service import TrainingService
from backend.core.types import Final, GenerationParams, InvalidInputError
from tests.training_data import SECRETS, preference_rows, write_csv, write_jsonl

# Launches the app, a server, a training process or real weights: the full tier (tests/tiers.py).
pytestmark = pytest.mark.full

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
COLUMNS = {"prompt_column": "prompt", "chosen_column": "chosen", "rejected_column": "rejected"}


@pytest.fixture
def service(registry, tmp_path):
    service = TrainingService(registry, root=tmp_path / "runs", env=OFFLINE)
    yield service
    service.close()


def dpo_config(service, data: Path, **extra):
    base, spec = service.resolve_base("tiny-chat", "dpo")
    return parse_train_config({"task": "dpo", "base": base, "base_id": spec.id, "data": str(data), **COLUMNS,
                               **extra})


def wait_for_step(run_dir: Path, step: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(row.get("step", 0) >= step and "loss" in row for row in runfiles.read_progress(run_dir)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no progress past step {step}: {runfiles.tail(run_dir / runfiles.LOG)}")


def test_dpo_run_learns_the_preferences_stops_resumes_and_registers(service, registry, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(copies=4))
    # Validated on the training pairs themselves: the question is whether the model learnt to prefer them.
    config = dpo_config(service, data, validation=str(data), method="lora", max_steps=12, learning_rate=5e-3,
                        batch_size=4, max_length=64, eval_steps=6, register_as="tiny-chat-dpo")
    run_dir = service.start(config)
    wait_for_step(run_dir, 2)
    service.stop(run_dir)
    stopped = service.runs.wait(run_dir, timeout=300)
    assert stopped["status"] == "stopped", stopped.get("reason")
    assert 2 <= stopped["step"] < 12 and "checkpoint" in stopped["reason"]
    service.resume(run_dir)
    metrics = service.runs.wait(run_dir, timeout=600)
    assert metrics["status"] == "completed", metrics.get("reason")
    assert metrics["step"] == 12

    history = metrics["history"]
    evaluations = [row for row in history if "eval_rewards/accuracies" in row]
    assert evaluations[0]["step"] == 0 and evaluations[0]["eval_rewards/accuracies"] == 0.0  # policy = reference
    assert evaluations[0]["eval_rewards/margins"] == 0.0
    assert metrics["final"]["rewards/accuracies"] == 1.0 and metrics["final"]["rewards/margins"] > 0.1
    assert metrics["final"]["loss"] < evaluations[0]["eval_loss"]
    training = [row for row in history if "loss" in row]
    assert {"rewards/margins", "rewards/accuracies", "learning_rate", "samples_per_s"} <= set(training[-1])
    # A 12-step run logs its training loss at every step (the default logging interval is a tenth of the run),
    # so the Train tab's loss curve is a line, not one point.
    assert len({row["step"] for row in training}) >= 10
    assert "eval_perplexity" not in evaluations[-1]  # a DPO loss is no language-model loss

    assert metrics["model_kind"] == "adapter" and (run_dir / "model" / "adapter_config.json").is_file()
    card = (run_dir / runfiles.CARD).read_text()
    assert "direct preference optimization" in card and "rewards/accuracies" in card and "beta 0.1" in card
    tuned = registry.spec("tiny-chat-dpo")
    assert tuned.adapter and "chat" in tuned.tasks and "reward accuracy 1.000" in tuned.description
    events = chat_service.stream_chat(registry, "tiny-chat-dpo", SECRETS[0][0],
                                      params=GenerationParams(max_new_tokens=4, temperature=0))
    assert [event for event in events if isinstance(event, Final)][0].stats.generated_tokens > 0


def app_train(*args: str, runs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "WORKBENCH_RUNS_DIR": str(runs)}
    return subprocess.run([sys.executable, "app.py", "train", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_dpo_command_line(tiny_models_yaml, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(copies=2))
    common = ("--models", str(tiny_models_yaml), "--base", "tiny-chat", "--task", "dpo", "--data", str(data))
    bad = app_train(*common, "--prompt-column", "prompt", "--chosen-column", "good", "--rejected-column",
                    "rejected", "--out", str(tmp_path / "bad"), runs=tmp_path / "runs")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith(
        "error: field 'chosen_column' (data file): there is no column 'good'")
    missing = app_train(*common, "--chosen-column", "chosen", "--out", str(tmp_path / "bad"), runs=tmp_path / "runs")
    assert missing.returncode == 2 and "field 'rejected_column': required for dpo" in missing.stderr
    assert not (tmp_path / "bad").exists()

    out = tmp_path / "out"
    result = app_train(*common, "--prompt-column", "prompt", "--chosen-column", "chosen", "--rejected-column",
                       "rejected", "--max-steps", "4", "--eval-steps", "2", "--batch-size", "2", "--max-length",
                       "48", "--learning-rate", "0.005", "--dpo-beta", "0.2", "--out", str(out), "--register",
                       "cli-dpo", runs=tmp_path / "runs")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["step"] == 4 and "rewards/accuracies" in metrics["final"]
    assert "step 4/4" in result.stderr and "reward accuracy" in result.stderr and "reward margin" in result.stderr
    assert "registered as 'cli-dpo'" in result.stderr
    assert (out / "model" / "adapter_config.json").is_file()


def test_three_shapes_of_preference_data_read_the_same(service, tmp_path):
    rows = preference_rows(copies=2)
    saved = write_jsonl(tmp_path / "saved.jsonl", rows)  # the Data tab's shape
    texts = write_csv(tmp_path / "texts.csv", [{"question": row["prompt"][0]["content"],
                                                 "chosen": row["chosen"][0]["content"],
                                                 "rejected": row["rejected"][0]["content"]} for row in rows])
    whole = write_jsonl(tmp_path / "whole.jsonl", [{"chosen": row["prompt"] + row["chosen"],
                                                    "rejected": row["prompt"] + row["rejected"]} for row in rows])
    plans = [service.plan(dpo_config(service, saved, max_length=40)),
             service.plan(dpo_config(service, texts, max_length=40, prompt_column="question")),
             service.plan(dpo_config(service, whole, max_length=40, prompt_column=None))]
    for plan in plans:
        assert (plan.train_examples, plan.val_examples) == (5, 1)
        assert plan.preview.segments == plans[0].preview.segments
    text = "".join(piece for piece, _ in plans[0].preview.segments)
    loss = [piece for piece, carries in plans[0].preview.segments if carries]
    assert text.startswith("<|bos|><|user|>\n") and len(loss) == 2  # the chosen and the rejected reply
    assert plans[0].memory.trainable < plans[0].memory.parameters / 2  # LoRA is the default


def test_bad_preference_data_is_refused_naming_the_field(service, tmp_path):
    def refusal(rows, **extra) -> str:
        data = write_jsonl(tmp_path / "bad.jsonl", rows)
        with pytest.raises(InvalidInputError) as error:
            service.plan(dpo_config(service, data, **extra))
        return str(error.value)

    good = preference_rows(copies=1)
    assert refusal(good, rejected_column="worse").startswith(
        "field 'rejected_column' (data file): there is no column 'worse'")
    same = [{**row, "rejected": row["chosen"]} for row in good]
    assert refusal(same).startswith("field 'rejected_column': row 1 of the data file: the rejected reply is the same")
    blank = [{**good[0], "chosen": " "}] + good
    assert refusal(blank) == "field 'chosen_column': row 1 of the data file is empty"
    no_prompt = [{"chosen": row["chosen"], "rejected": row["rejected"]} for row in good]
    assert refusal(no_prompt, prompt_column=None).startswith("field 'prompt_column': row 1 of the data file: "
                                                              "without a prompt column")
    assert refusal(good, max_length=8).startswith("field 'max_length': every prompt is at least 8 tokens")
    with pytest.raises(InvalidInputError, match="field 'lora_modules_to_save': dpo reads the output layer"):
        dpo_config(service, tmp_path / "bad.jsonl", lora_modules_to_save=["lm_head"])
    with pytest.raises(InvalidInputError, match="field 'response_column': not read by dpo"):
        dpo_config(service, tmp_path / "bad.jsonl", response_column="answer")
    assert not list((tmp_path / "runs").rglob("config.yaml"))
