"""Memory (RSS before / peak / after) and wall time of the largest allowed evaluation inputs and of the crafted
files that once took gigabytes, each case in a fresh interpreter so one does not inherit another's heap.

    python bench/data_bounds.py            # prints a Markdown table; docs/RELIABILITY.md records it

The cases go through the Evaluate tab's controller (read, preview, guess columns, score, save), the same code
the tab runs; no model is loaded (the predictions are in the files), so the figures are about data only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASE = r"""
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import psutil
import pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from backend.evaluation.data import DataSource
from backend.evaluation.types import EvalConfig
from backend.evaluation.data import ColumnMapping
from backend.guard.table_limits import release_memory
from backend.core.types import WorkbenchError
from ui.evaluate.controller import EvaluateController

case, folder = sys.argv[2], sys.argv[3]
path = os.path.join(folder, case)
if case == "largest-csv.csv":  # 100,000 rows (the row limit), ~48 MB (the upload limit is 50 MB)
    pd.DataFrame({"text": [f"review {i} " + "good words " * 40 for i in range(100_000)],
                  "label": ["pos", "neg"] * 50_000, "pred": ["pos"] * 100_000}).to_csv(path, index=False)
elif case == "wide-200k-columns.csv":
    open(path, "w").write(",".join(f"c{i}" for i in range(200_000)) + "\n" + "1," * 199_999 + "1\n")
elif case == "single-20mb-cell.csv":
    open(path, "w").write("text,label\n" + "a" * 20_000_000 + ",x\n")
elif case in ("bomb-1gb.parquet", "largest-parquet.parquet"):
    rows, chars = (100_000, 10_000) if case.startswith("bomb") else (100_000, 650)  # ~1 GB / ~63 MB of text
    column = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["spam " * (chars // 5)]))
    pq.write_table(pa.table({"text": column, "label": pa.array(["pos", "neg"] * (rows // 2)),
                             "pred": pa.array(["pos"] * rows)}), path, compression="zstd")
elif case == "2000-labels.csv":
    labels = [f"label-{i:04d}" for i in range(2_000)]
    pd.DataFrame({"text": ["t"] * 4_000, "label": labels * 2,
                  "pred": labels[1:] + labels[:1] + labels}).to_csv(path, index=False)
from backend.evaluation.metrics import load_metric
load_metric("classification")  # the scoring libraries (evaluate imports torch): loaded once per process anyway
release_memory()
process = psutil.Process()
before = process.memory_info().rss
peak = [before]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
ctl = EvaluateController(None, runs_dir=os.path.join(folder, "runs"))
outcome = "ok"
try:
    source = DataSource(path=path)
    view = ctl.inspect(source, "classification")
    config = EvalConfig(task="classification", data=source,
                        columns=ColumnMapping(input="text", reference="label", predictions="pred"), bootstrap=1000)
    run = ctl.run(config)
    outcome = f"scored: accuracy {run.models['predictions'].metrics['accuracy']:.3f}"
    del run, view
except WorkbenchError as error:
    outcome = "refused: " + str(error)[:150]
seconds = time.perf_counter() - started
ctl = None
release_memory()
time.sleep(0.05)
stop.set()
after = process.memory_info().rss
print(json.dumps({"case": case, "size_mb": os.path.getsize(path) / 2**20, "before_mb": before / 2**20,
                  "peak_mb": peak[0] / 2**20, "after_mb": after / 2**20, "seconds": seconds, "outcome": outcome}))
"""

CASES = ["largest-csv.csv", "largest-parquet.parquet", "2000-labels.csv", "wide-200k-columns.csv",
         "single-20mb-cell.csv", "bomb-1gb.parquet"]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            result = subprocess.run([sys.executable, "-c", CASE, str(ROOT), case, folder], capture_output=True,
                                    text=True, timeout=900, cwd=ROOT)
            if result.returncode != 0:
                raise SystemExit(f"{case} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print("| input | file MB | RSS before MB | peak MB | after MB | seconds | outcome |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['size_mb']:.1f} | {row['before_mb']:.0f} | {row['peak_mb']:.0f} | "
              f"{row['after_mb']:.0f} | {row['seconds']:.1f} | {row['outcome']} |")


if __name__ == "__main__":
    main()
