"""`python app.py train`, headless, as a user runs it: the run folder's files, registration into the overlay,
and bad input as one `error:` line naming the field (exit 2) before anything trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.training_data import sentiment_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent


def app_train(*args: str, runs: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


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
