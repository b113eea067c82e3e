"""`python app.py train`, headless, as a user runs it: the run folder's files, registration into the overlay,
and bad input as one `error:` line naming the field (exit 2) before anything trains. A registered model is one of
the registry's for every command: `app.py eval` evaluates it, a served app lists it (and one already running
picks up a model registered meanwhile), and it can be the base of the next run (continued training)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.app_process import AppProcess, wait_until
from tests.training_data import sentiment_rows, write_chat_jsonl, write_csv

ROOT = Path(__file__).resolve().parent.parent


def app_command(command: str, *args: str, runs: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), command, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def app_train(*args: str, runs: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return app_command("train", *args, runs=runs, cwd=cwd)


def served_ids(app: AppProcess) -> list[str]:
    """GET /v1/models's ids; none until the app has added its API routes (just after it starts listening)."""
    try:
        with urllib.request.urlopen(app.url + "v1/models", timeout=10) as response:
            return [model["id"] for model in json.load(response)["data"]]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise


@pytest.mark.full
def test_train_command_writes_the_run_folder_and_registers(tiny_models_yaml, tmp_path):
    data = write_csv(tmp_path / "train.csv", sentiment_rows(60, seed=3))
    settings = tmp_path / "train.yaml"
    settings.write_text(yaml.safe_dump({"learning_rate": 1e-3, "eval_steps": 5, "logging_steps": 5}))
    out = tmp_path / "out"
    # Run from the data's folder with relative paths, as a user types them: they are resolved there, not in the
    # app's folder where the training process runs.
    args = ("--models", str(tiny_models_yaml), "--config", str(settings), "--base", "tiny-classifier",
            "--task", "classification", "--data", data.name, "--text-column", "text", "--label-column",
            "label", "--method", "lora", "--max-steps", "10", "--batch-size", "8", "--max-length", "16",
            "--seed", "7", "--out", out.name, "--register", "cli-sentiment")
    result = app_train(*args, runs=tmp_path / "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert yaml.safe_load((out / "config.yaml").read_text())["data"] == str(data.resolve())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["step"] == 10
    assert {"loss", "accuracy", "f1_macro"} <= set(metrics["final"]) and metrics["history"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["method"], config["max_steps"], config["seed"], config["learning_rate"]) == ("lora", 10, 7, 1e-3)
    assert (out / "model" / "model.safetensors").is_file()  # a classifier's LoRA is merged into a full model
    assert "cli-sentiment" in (out / "README.md").read_text()
    assert "step 10/10" in result.stderr and "registered as 'cli-sentiment'" in result.stderr
    overlay = yaml.safe_load((tmp_path / "runs" / "registry-overlay.yaml").read_text())
    assert overlay["models"][0]["id"] == "cli-sentiment" and overlay["models"][0]["tasks"] == ["classify"]
    assert yaml.safe_load(tiny_models_yaml.read_text())["models"][-1]["id"] != "cli-sentiment"
    # The same --out again: refused before anything runs, the finished run untouched.
    before = (out / "metrics.json").read_bytes()
    again = app_train(*args[:-2], runs=tmp_path / "runs", cwd=tmp_path)
    assert again.returncode == 2, again.stderr[-2000:]
    assert again.stderr.strip().splitlines()[-1].startswith(f"error: out: {out.resolve()} already exists")
    assert (out / "metrics.json").read_bytes() == before

    # Every command reads the same registry: eval knows the registered model by its id ...
    evaluated = app_command("eval", "--models", str(tiny_models_yaml), "--model", "cli-sentiment", "--data", str(data),
                            "--task", "classification", "--input-column", "text", "--reference-column", "label",
                            "--limit", "20", "--bootstrap", "0", "--out", str(tmp_path / "eval"), "--quiet",
                            runs=tmp_path / "runs")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "cli-sentiment: accuracy" in evaluated.stdout
    assert "cli-sentiment" in json.loads((tmp_path / "eval" / "results.json").read_text())["models"]

    # ... a served app lists it, and one running while another run registers its model lists that one too.
    with AppProcess(tiny_models_yaml, env={"WORKBENCH_RUNS_DIR": str(tmp_path / "runs")}) as app:
        assert wait_until(lambda: "cli-sentiment" in served_ids(app), timeout=30), served_ids(app)
        # Continued training: the fine-tuned classifier is the base of the next run.
        again = app_train("--models", str(tiny_models_yaml), "--base", "cli-sentiment", "--task", "classification",
                          "--data", str(data), "--text-column", "text", "--label-column", "label", "--method", "full",
                          "--max-steps", "4", "--batch-size", "8", "--max-length", "16", "--eval-steps", "2",
                          "--out", str(tmp_path / "again"), "--register", "cli-sentiment-again",
                          runs=tmp_path / "runs")
        assert again.returncode == 0, again.stderr[-3000:]
        again_config = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
        assert again_config["base"] == str((out / "model").resolve())
        assert wait_until(lambda: "cli-sentiment-again" in served_ids(app), timeout=30), served_ids(app)


@pytest.mark.full
def test_a_fine_tuned_adapter_continues_training(tiny_models_yaml, tmp_path):
    """An SFT LoRA run's model (an adapter over tiny-chat) as the base of a new run: the run starts from the
    adapter's weights (its first evaluation is where the first run ended), not from the bare base."""
    data = write_chat_jsonl(tmp_path / "chat.jsonl", copies=8)
    common = ("--models", str(tiny_models_yaml), "--task", "sft", "--data", str(data), "--messages-column",
              "messages", "--method", "lora", "--learning-rate", "0.01", "--batch-size", "4", "--max-length", "48",
              "--lora-r", "16", "--seed", "3")
    first = app_train(*common, "--base", "tiny-chat", "--max-steps", "12", "--eval-steps", "12",
                      "--out", str(tmp_path / "first"), "--register", "chat-lora", runs=tmp_path / "runs")
    assert first.returncode == 0, first.stderr[-3000:]
    second = app_train(*common, "--base", "chat-lora", "--max-steps", "2", "--eval-steps", "2",
                       "--out", str(tmp_path / "second"), "--register", "chat-lora-more", runs=tmp_path / "runs")
    assert second.returncode == 0, second.stderr[-3000:]
    config = yaml.safe_load((tmp_path / "second" / "config.yaml").read_text())
    assert config["adapter"] == str((tmp_path / "first" / "model").resolve())
    before = json.loads((tmp_path / "first" / "metrics.json").read_text())
    after = json.loads((tmp_path / "second" / "metrics.json").read_text())
    start, ended = before["history"][0]["eval_loss"], before["final"]["loss"]
    assert start - ended > 0.1, (start, ended)  # the first run learned something
    resumed = after["history"][0]["eval_loss"]  # the second run's step-0 evaluation, on the same validation rows
    assert abs(resumed - ended) < 0.25 * (start - ended), (start, ended, resumed)
    entry = next(entry for entry in yaml.safe_load((tmp_path / "runs" / "registry-overlay.yaml").read_text())["models"]
                 if entry["id"] == "chat-lora-more")
    assert entry["adapter"] == str((tmp_path / "second" / "model").resolve())
    assert entry["source"] == config["base"] and "chat" in entry["tasks"]


@pytest.mark.full
def test_train_command_bad_input_is_one_clear_error(tiny_models_yaml, tmp_path):
    data = write_csv(tmp_path / "train.csv", sentiment_rows(20, seed=3))
    result = app_train("--models", str(tiny_models_yaml), "--base", "tiny-classifier", "--task", "classification",
                       "--data", str(data), "--text-column", "review", "--label-column", "label",
                       "--out", str(tmp_path / "out"), runs=tmp_path / "runs")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: field 'text_column' (data file): there is no "
                                                             "column 'review'")
    assert not (tmp_path / "out").exists()
