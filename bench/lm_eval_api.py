"""lm-evaluation-harness log-likelihood requests per second through the app's API (`local-completions` against
`python app.py`) divided by lm-eval's in-process `hf` model, on the same multiple-choice task and model.

    python bench/lm_eval_api.py --out /tmp/bench_lm_eval.json [--docs 40] [--batch-size 8] [--rounds 2]

Both sides run the same lm-eval task (a local YAML over a local JSONL: --docs questions x 4 choices, so 4 x docs
log-likelihood requests) with the same --batch-size. The app runs in its own process (the way it is deployed);
the two sides alternate --rounds times and the ratio is taken per round (median), as the machine's speed drifts.
Models: the tiny test model and bench/run.py's random ~25M-parameter Llama (compute that matters on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from bench.run import build_models, start_app  # noqa: E402

WORDS = ["river", "clock", "sea", "fox", "camera", "weather", "music", "village", "market", "garden", "engine",
         "poem", "letter", "mountain", "window", "bridge"]


def write_task(folder: Path, docs: int, letters: bool = False) -> None:
    """`letters`: the words are listed in the question and the answers are " A" .. " D" (MMLU's form: one-token
    continuations sharing their context)."""
    with (folder / "mc.jsonl").open("w") as out:
        for index in range(docs):
            pick = [WORDS[(index * 3 + k) % len(WORDS)] for k in range(4)]
            question = f"Question {index}: which word comes after the {WORDS[index % len(WORDS)]} by the old mill?"
            if letters:
                question += " " + " ".join(f"{letter}) {word}" for letter, word in zip("ABCD", pick))
                pick = ["A", "B", "C", "D"]
            out.write(json.dumps({"question": question, "choices": pick, "label": index % 4}) + "\n")
    (folder / "bench_mc.yaml").write_text(f"""task: bench_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / 'mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
""")


def run_once(model: str, model_args: dict[str, Any], manager: Any, batch_size: int) -> tuple[float, float]:
    from lm_eval import simple_evaluate

    started = time.perf_counter()
    results = simple_evaluate(model=model, model_args=model_args, tasks=["bench_mc"], batch_size=batch_size,
                              task_manager=manager, log_samples=False, bootstrap_iters=0)
    return time.perf_counter() - started, results["results"]["bench_mc"]["acc,none"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--letters", action="store_true", help="answers ' A'..' D' listed in the question")
    args = parser.parse_args()
    from lm_eval.tasks import TaskManager

    workdir = Path(tempfile.mkdtemp(prefix="bench-lm-eval-"))
    os.environ["HF_DATASETS_CACHE"] = str(workdir / "datasets")
    import yaml

    models_yaml = build_models(workdir, "25m")
    entries = {entry["id"]: entry for entry in yaml.safe_load(models_yaml.read_text())["models"]}
    write_task(workdir, args.docs, args.letters)
    manager = TaskManager(include_path=str(workdir))
    process, url = start_app(models_yaml, "cpu")
    report: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "docs": args.docs,
                              "requests": 4 * args.docs, "batch_size": args.batch_size,
                              "letters": args.letters, "models": {}}
    try:
        for model_id, entry in entries.items():
            folder = entry["source"]
            hf_args = {"pretrained": folder, "dtype": "float32", "device": "cpu"}
            api_args = {"model": model_id, "base_url": f"{url}v1/completions", "tokenizer_backend": "huggingface",
                        "tokenizer": folder, "max_retries": 1}
            run_once("local-completions", api_args, manager, args.batch_size)  # loads the model in the app
            rounds = []
            for _ in range(args.rounds):
                hf_s, hf_acc = run_once("hf", hf_args, manager, args.batch_size)
                api_s, api_acc = run_once("local-completions", api_args, manager, args.batch_size)
                rounds.append({"hf_s": hf_s, "api_s": api_s, "hf_acc": hf_acc, "api_acc": api_acc,
                               "ratio": hf_s / api_s})
            requests = 4 * args.docs
            report["models"][model_id] = {
                "rounds": rounds,
                "hf_requests_per_s": requests / statistics.median(r["hf_s"] for r in rounds),
                "api_requests_per_s": requests / statistics.median(r["api_s"] for r in rounds),
                "api_over_hf": statistics.median(r["ratio"] for r in rounds),
                "same_accuracy": all(r["hf_acc"] == r["api_acc"] for r in rounds),
            }
            print(model_id, json.dumps(report["models"][model_id], indent=1))
    finally:
        process.terminate()
        process.wait(30)
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
