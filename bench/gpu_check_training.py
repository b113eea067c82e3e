"""Training on the device through the app's training process: LoRA SFT and QLoRA via `python app.py train`,
and the app's path against a plain Trainer script (bench/train_throughput.py's own functions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.gpu_check_common import Details, Numbers, gpu_name, need_bitsandbytes, say

ROOT = Path(__file__).resolve().parent.parent


def train_via_cli(context: dict[str, Any], method: str, steps: int, name: str) -> tuple[Numbers, Details]:
    """`python app.py train --task sft` on the check's chat model; numbers from the run's metrics.json."""
    from tests.training_data import write_chat_jsonl

    workdir = Path(context["workdir"])
    data = write_chat_jsonl(workdir / "chat.jsonl", copies=20)  # 60 conversations
    out = Path(context["runs_dir"]) / name
    command = [sys.executable, "app.py", "train", "--models", context["models_yaml"], "--base", context["model_id"],
               "--task", "sft", "--data", str(data), "--messages-column", "messages", "--method", method,
               "--max-steps", str(steps), "--batch-size", "4", "--max-length", "64",
               "--eval-steps", str(max(1, steps // 2)), "--out", str(out)]
    say(" ".join(command))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    print(result.stdout[-3000:], result.stderr[-6000:], sep="\n", flush=True)  # into the check's log
    metrics_file = out / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if result.returncode != 0 or metrics.get("status") != "completed":
        raise RuntimeError(f"app.py train --method {method} exited {result.returncode}, status "
                           f"{metrics.get('status')}: {metrics.get('reason') or result.stderr[-800:]}")
    history = metrics.get("history", [])
    losses = [row["loss"] for row in history if "loss" in row]
    evaluations = [row["eval_loss"] for row in history if "eval_loss" in row]
    train = metrics.get("train", {})
    numbers: Numbers = {"method": method, "steps": metrics.get("step"), "device": gpu_name(),
                        "train_samples_per_second": train.get("train_samples_per_second"),
                        "train_runtime_s": train.get("train_runtime"),
                        "first_eval_loss": evaluations[0] if evaluations else None,
                        "final_eval_loss": metrics.get("final", {}).get("loss"),
                        "model_kind": metrics.get("model_kind"),
                        "adapter_saved": (out / "model" / "adapter_config.json").is_file()}
    memory = [row[key] for row in history for key in ("gpu_memory_mb", "memory_mb", "peak_memory_mb") if key in row]
    if memory:
        numbers["peak_memory_mb"] = max(memory)
    return numbers, {"command": " ".join(command), "losses": losses, "last_progress": history[-1:] or None}


def sft_lora_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    return train_via_cli(context, "lora", context["train_steps"], "sft-lora")


def qlora_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """QLoRA (4-bit base through bitsandbytes): a few steps, enough to show the path runs on the device."""
    need_bitsandbytes(context)
    return train_via_cli(context, "qlora", 4, "qlora")


def bert_base_classifier(folder: Path) -> Path:
    """A random-weight BERT-base-shaped classifier (~86M parameters) with the tiny classifier tokenizer: big
    enough that a training step on a GPU does real work (the tiny one's steps are all overhead)."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from tests.tiny_models import SENTIMENT_LABELS, make_classifier_tokenizer, save_model_and_tokenizer

    tokenizer = make_classifier_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, pad_token_id=tokenizer.pad_token_id, id2label=SENTIMENT_LABELS,
                        label2id={label: index for index, label in SENTIMENT_LABELS.items()})
    torch.manual_seed(0)
    save_model_and_tokenizer(BertForSequenceClassification(config), tokenizer, folder)
    return folder


def train_throughput_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """The app's training process ÷ a plain Trainer script, same model, data, settings and seed; rounds
    alternate app, plain; the ratio is of the best round of each (bench/train_throughput.py's measure)."""
    from bench import train_throughput as bench_train

    workdir = Path(context["workdir"])
    cpu = context["mode"] == "cpu"
    base = Path(context["tiny_dir"]) / "tiny-classifier" if cpu else bert_base_classifier(workdir / "bert-base")
    steps = context["train_steps"]
    settings = {"base": str(base), "data": str(bench_train.words_data(workdir / "words.csv", 400)), "steps": steps,
                "batch_size": 16, "max_length": 64, "seed": 0, "eval_steps": max(1, steps // 4), "cpu": cpu}
    rounds = []
    for index in range(context["throughput_rounds"]):
        say(f"round {index + 1}: the app's training process")
        app = bench_train.run_app(settings, Path(context["runs_dir"]) / f"throughput-app-{index}")
        say(f"round {index + 1}: a plain Trainer script")
        plain = bench_train.run_plain(settings, Path(context["runs_dir"]) / f"throughput-plain-{index}")
        rounds.append({"app": app["train_samples_per_second"], "plain": plain["train_samples_per_second"]})
        print(f"round {index + 1}: {rounds[-1]}", flush=True)
    best_app, best_plain = max(r["app"] for r in rounds), max(r["plain"] for r in rounds)
    return ({"model": base.name, "steps": steps, "app_samples_per_s": best_app, "plain_samples_per_s": best_plain,
             "app_vs_plain": best_app / best_plain, "device": gpu_name()},
            {"rounds": rounds, "settings": {k: v for k, v in settings.items() if k not in ("base", "data")}})
