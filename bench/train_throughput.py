"""Training throughput through the app's training process vs a plain `Trainer` script, side by side.

    python bench/train_throughput.py [--model minilm|tiny] [--steps 40] [--batch-size 16] [--max-length 64]
                                     [--repeat 2] [--out F.json]

Same model, data, settings and seed on both sides: (a) the app's path (`TrainingService.start`: run folder, the
training process `python -m backend.training.worker`, progress lines, stop flag checks, checkpoints, model card);
(b) `plain_trainer.py`, written below the way one would by hand: tokenize, `Trainer(...)`, `train()`, in its own
process too. Throughput is Trainer's own `train_samples_per_second` (training loop time, evaluations and
checkpoint saves included, process start and model loading excluded) for both. Rounds alternate a / b; the
ratio is app ÷ plain of the best round of each (a shared machine adds noise, never speed). Target: >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PLAIN_SCRIPT = '''
import json, sys
import pandas as pd
from datasets import Dataset
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments, set_seed)
settings = json.loads(sys.argv[1])
set_seed(settings["seed"])
table = pd.read_csv(settings["data"], dtype=str)
names = sorted(set(table["label"]))
tokenizer = AutoTokenizer.from_pretrained(settings["base"])
def encode(frame):
    encoded = tokenizer(list(frame["text"]), truncation=True, max_length=settings["max_length"])
    return Dataset.from_dict({**encoded, "labels": [names.index(label) for label in frame["label"]]})
split = int(len(table) * 0.8)
train, evaluation = encode(table[:split]), encode(table[split:])
model = AutoModelForSequenceClassification.from_pretrained(
    settings["base"], num_labels=len(names), id2label=dict(enumerate(names)),
    label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True)
args = TrainingArguments(output_dir=settings["out"], max_steps=settings["steps"], learning_rate=1e-4,
                         per_device_train_batch_size=settings["batch_size"],
                         per_device_eval_batch_size=settings["batch_size"], seed=settings["seed"],
                         eval_strategy="steps", eval_steps=settings["eval_steps"], save_strategy="steps",
                         save_steps=settings["eval_steps"], logging_steps=10, save_total_limit=2,
                         load_best_model_at_end=True, eval_on_start=True, report_to="none", disable_tqdm=True,
                         use_cpu=settings["cpu"], bf16=not settings["cpu"])
trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
output = trainer.train()
print("RESULT " + json.dumps(output.metrics))
'''


def words_data(path: Path, rows: int) -> Path:
    from tests.training_data import sentiment_rows, write_csv

    data = sentiment_rows(rows, seed=0)
    for index, row in enumerate(data):  # longer texts, so a step does real work
        row["text"] = (row["text"] + " ") * (1 + index % 4)
    return write_csv(path, data)


def base_model(kind: str, work: Path) -> Path:
    if kind == "minilm":
        from tests.test_training_pretrained import minilm_folder

        return minilm_folder(work / "minilm")
    from tests.tiny_models import build_tiny_models

    return Path(build_tiny_models(work / "tiny")).parent / "tiny-classifier"


def run_plain(settings: dict[str, Any], out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    script = out / "plain_trainer.py"
    script.write_text(PLAIN_SCRIPT)
    result = subprocess.run([sys.executable, str(script), json.dumps({**settings, "out": str(out / "ckpt")})],
                            capture_output=True, text=True, check=False)
    line = next((line for line in result.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(line[len("RESULT "):])


def run_app(settings: dict[str, Any], out: Path) -> dict[str, Any]:
    from backend.training.config import parse_train_config
    from backend.training.service import TrainingService

    service = TrainingService(None, root=out)
    try:
        config = parse_train_config({
            "task": "classification", "base": settings["base"], "data": settings["data"], "text_column": "text",
            "label_column": "label", "method": "full", "max_steps": settings["steps"], "learning_rate": 1e-4,
            "batch_size": settings["batch_size"], "max_length": settings["max_length"], "seed": settings["seed"],
            "eval_steps": settings["eval_steps"], "logging_steps": 10,
            "device": "cpu" if settings["cpu"] else "auto"})
        run_dir = service.start(config, out=out / "run")
        metrics = service.runs.wait(run_dir)
    finally:
        service.close()
    if metrics.get("status") != "completed":
        raise RuntimeError(metrics.get("reason"))
    return metrics["train"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("minilm", "tiny"), default="minilm")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    cpu = not torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        settings = {"base": str(base_model(args.model, work)), "data": str(words_data(work / "data.csv", 400)),
                    "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length, "seed": 0,
                    "eval_steps": max(1, args.steps // 4), "cpu": cpu}
        rounds = []
        for index in range(args.repeat):
            app = run_app(settings, work / f"app-{index}")
            plain = run_plain(settings, work / f"plain-{index}")
            rounds.append({"app": app["train_samples_per_second"], "plain": plain["train_samples_per_second"]})
            print(f"round {index + 1}: app {rounds[-1]['app']:.2f} samples/s, plain Trainer "
                  f"{rounds[-1]['plain']:.2f} samples/s", flush=True)
    best_app, best_plain = max(r["app"] for r in rounds), max(r["plain"] for r in rounds)
    ratio = best_app / best_plain
    print(f"{args.model}: app {best_app:.2f} / plain {best_plain:.2f} samples/s = {ratio:.3f} (target >= 0.95)")
    result = {"model": args.model, "device": "cpu" if cpu else torch.cuda.get_device_name(0), "rounds": rounds,
              "ratio": ratio, "settings": {k: v for k, v in settings.items() if k not in ("base", "data")},
              "machine": platform.node(), "cpus": os.cpu_count()}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
