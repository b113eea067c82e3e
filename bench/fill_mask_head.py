"""Fill-mask: the plain transformers pipeline against the app's `MaskedRowsFillMask` (the vocabulary projection
fed only the masked rows), same model, rows and batch sizes, side by side in one run.

    python bench/fill_mask_head.py [--set minilm|tiny] [--rows 64] [--repeats 3]

One torch thread, CPU seconds (`time.process_time()`, which a shared machine's load hardly moves) and wall
seconds of the cheapest of `--repeats` alternating rounds; the two sides' candidates are checked equal first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.tasks_batching as tb  # noqa: E402


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="minilm", choices=("tiny", "minilm"))
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    from backend.tasks.fill_mask import SPEC

    torch.set_num_threads(1)
    texts = [r.replace(" the ", " [MASK] ", 1) if " the " in r else r + " [MASK]" for r in tb.make_rows(args.rows)]
    with tempfile.TemporaryDirectory(prefix="fill-mask-head-") as name:
        paths = tb.tiny_set(Path(name)) if args.set == "tiny" else tb.build_models(Path(name))
        folder = paths["fill_mask"]
        tokenizer = AutoTokenizer.from_pretrained(folder)
        plain_model = AutoModelForMaskedLM.from_pretrained(folder).eval()
        plain = pipeline("fill-mask", model=plain_model, tokenizer=tokenizer)
        handler = SPEC.handler_for(AutoModelForMaskedLM.from_pretrained(folder).eval(), tokenizer)
        app = lambda texts, top_k, batch_size: handler(SPEC.local_request(texts, top_k=top_k, batch_size=batch_size))  # noqa: E731
        want = plain(texts[:8], top_k=5, batch_size=8)
        have = app(texts[:8], top_k=5, batch_size=8)
        assert [[c.token for c in t[0]] for t in have] == [[x["token_str"] for x in w] for w in want]
        tokens = sum(len(tokenizer(text)["input_ids"]) for text in texts)
        print(f"{args.set}: {len(texts)} rows, {tokens} tokens, {sum(t.count('[MASK]') for t in texts)} "
              f"masks; one thread; best of {args.repeats}", flush=True)
        for batch_size in (1, 32):
            best = {"pipeline": (float("inf"),) * 2, "masked rows": (float("inf"),) * 2}
            for _ in range(args.repeats):  # alternating, so a busy spell hits both sides
                best["pipeline"] = min(best["pipeline"],
                                       timed(lambda: plain(texts, top_k=5, batch_size=batch_size)))
                best["masked rows"] = min(best["masked rows"],
                                          timed(lambda: app(texts, top_k=5, batch_size=batch_size)))
            (cpu_p, wall_p), (cpu_m, wall_m) = best["pipeline"], best["masked rows"]
            print(f"batch {batch_size:2d}: CPU s pipeline {cpu_p:.2f} masked rows {cpu_m:.2f} ratio "
                  f"{cpu_p / cpu_m:.2f} | wall s {wall_p:.2f} {wall_m:.2f} ratio {wall_p / wall_m:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
