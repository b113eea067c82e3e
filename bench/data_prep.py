"""A 100,000-row CSV cleaned and split by `python app.py data`, as a user runs it: wall time and peak memory.

    python bench/data_prep.py [--rows 100000] [--out bench/results/data_prep.json]

Writes a synthetic review CSV (white space to trim, HTML to strip, empty rows, exact duplicates and
near-duplicates, three labels) to a temporary folder, then runs the CLI in a child process for each step list
below and reads the child's peak resident memory (getrusage RUSAGE_CHILDREN, one fresh child per run). Also runs
the same at a tenth of the rows, so the figures read as ratios: rows x10 should cost about x10 time and far less
than x10 memory if processing is batched (the fixed part is the interpreter, pandas, pyarrow and datasets).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    "clean+split": "normalize,html,empty,dedupe",
    "clean+near-dedupe+split": "normalize,html,empty,dedupe,near-dedupe",
}
WORDS = ("good bad great awful fine product delivery price quality service fast slow cheap broken works love hate "
         "return refund box screen battery sound color size fit recommend never again always perfect").split()


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    made: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        for i in range(rows):
            roll = rng.random()
            if roll < 0.05 and made:
                text = rng.choice(made)  # exact duplicate
            elif roll < 0.08 and made:
                text = rng.choice(made) + " !"  # near-duplicate
            elif roll < 0.09:
                text = "   "
            else:
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60)))
                if rng.random() < 0.1:
                    text = f"<p>{text} <b>{rng.choice(WORDS)}</b> &amp; more</p>"
                if rng.random() < 0.2:
                    text = f"  {text}   "
                made.append(text)
            writer.writerow([i, text, rng.choice(["pos", "neg", "neutral"])])


def run_cli(data: Path, out: Path, clean: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "data", "--data", str(data), "--text-column",
                             "text", "--label-column", "label", "--clean", clean, "--split", "0.8,0.1,0.1",
                             "--seed", "0", "--format", "parquet", "--out", str(out), "--quiet"],
                            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    card = json.loads((out / "card.json").read_text())
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_kib / 1024, 1),
            "rows": card["rows"],
            "dropped": {s["step"]: s.get("dropped") for s in card["steps"] if "dropped" in s}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        # Small first: RUSAGE_CHILDREN keeps the maximum over all children, so growing sizes read true peaks.
        for rows in (args.rows // 10, args.rows):
            data = Path(tmp) / f"reviews-{rows}.csv"
            write_csv(data, rows)
            size = data.stat().st_size / 1024**2
            for name, clean in RUNS.items():
                figure = run_cli(data, Path(tmp) / f"out-{rows}-{name}", clean)
                figure["csv_mib"] = round(size, 1)
                figures["runs"][f"{rows} rows, {name}"] = figure
                print(f"{rows:>7,} rows ({size:.1f} MiB), {name:<24} {figure['seconds']:>6.1f} s, "
                      f"peak RSS {figure['peak_rss_mib']:>6.0f} MiB, kept {figure['rows']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
