"""The pipeline tasks' batching and ONNX figures in CPU seconds on one thread: a measure a shared machine's load
does not move (bench/tasks_batching.py measures wall time at the default threads; see docs/BENCHMARKS.md).

    WORKBENCH_ONNX_THREADS=1 python bench/tasks_cpu_time.py [--set tiny|minilm] [--onnx] [--repeats 2]

Same models, rows and app code paths as bench/tasks_batching.py (its helpers), torch at one intra-op thread and,
with WORKBENCH_ONNX_THREADS=1, ONNX Runtime too: `time.process_time()` then counts the work done, not the time
spent waiting for a core that other processes hold (with two threads on a busy machine, a thread waiting at a
barrier for its descheduled partner makes wall time, and spinning CPU time, meaningless). Prints, per task,
per-row and batched CPU seconds and their ratio (and the wall-clock ones beside them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.tasks_batching as tb  # noqa: E402


def cost(repeats: int, run: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the cheapest of `repeats` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        run()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="minilm", choices=("tiny", "minilm"))
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", default="classify,ner,question_answering,fill_mask,embed")
    parser.add_argument("--onnx", action="store_true", help="also PyTorch vs ONNX Runtime for classify and embed")
    args = parser.parse_args()

    import pandas as pd
    import torch

    torch.set_num_threads(1)
    rows = tb.make_rows(args.rows)
    table = pd.DataFrame({"text": rows})
    masked = pd.DataFrame({"text": [r.replace(" the ", " [MASK] ", 1) if " the " in r else r + " [MASK]"
                                    for r in rows]})
    with tempfile.TemporaryDirectory(prefix="tasks-cpu-") as name:
        folder = Path(name)
        paths = tb.tiny_set(folder) if args.set == "tiny" else tb.build_models(folder)
        registry = tb.registry_for(paths, folder, args.set)
        try:
            for task in args.tasks.split(","):
                data = masked if task == "fill_mask" else table
                tb.file_runner(registry, task, task, data.head(args.batch_size), args.batch_size)()  # load, warm up
                per_row = cost(args.repeats, tb.file_runner(registry, task, task, data, 1))
                batched = cost(args.repeats, tb.file_runner(registry, task, task, data, args.batch_size))
                print(f"{args.set} {task:18s} CPU s per-row {per_row[0]:.2f} batched {batched[0]:.2f} "
                      f"ratio {per_row[0] / batched[0]:.2f} | wall s {per_row[1]:.2f} {batched[1]:.2f} "
                      f"ratio {per_row[1] / batched[1]:.2f} | load {os.getloadavg()[0]:.1f}", flush=True)
                registry.unload(task)
            for task in ("classify", "embed") if args.onnx else ():
                for batch_size in (1, args.batch_size):
                    spent = {}
                    for model_id in (task, f"{task}-onnx"):
                        tb.file_runner(registry, model_id, task, table.head(args.batch_size), batch_size)()
                        spent[model_id] = cost(args.repeats, tb.file_runner(registry, model_id, task, table,
                                                                             batch_size))
                        registry.unload(model_id)
                    plain, onnx = spent[task], spent[f"{task}-onnx"]
                    print(f"{args.set} onnx {task:9s} batch {batch_size:2d} CPU s PyTorch {plain[0]:.2f} ONNX "
                          f"{onnx[0]:.2f} ratio {plain[0] / onnx[0]:.2f} | wall s {plain[1]:.2f} {onnx[1]:.2f} "
                          f"ratio {plain[1] / onnx[1]:.2f} | load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
