"""The engine's batched decoding against raw `model.generate`, in one process, interleaved, in CPU time.

    python bench/batch_step.py [--model-size 25m] [--model-id tiny-chat] [--new-tokens 64] [--rounds 5] [--threads 1] \
        [--stagger-ms 0] [--out bench/results/batch_step.json]

Three ways of decoding the same greedy rows with the same weights, each with 1 row and with 16, alternated per
round (median of --rounds):

  raw      `model.generate` on the rows at once (bench/run.py's `raw_batch_ceiling_16` is raw 16 ÷ raw 1)
  step     the engine's GPU step alone (backend/engines/decode.py's `decode_batch`, a callback that does nothing)
  engine   concurrent streams through the engine (`stream_generate`: the Batcher, its text decoding and stop
           matching, one consumer thread per stream, as the app's request handlers); --stagger-ms spreads the
           streams' arrivals as an HTTP server does, so that running batches merge with late arrivals

Per decode step it records the process's CPU time (all threads: torch's, the batch thread's, the consumers')
and the wall time. On a shared machine the wall time follows the load; CPU time with one torch thread
(--threads 1, the default) does not, because torch's intra-op threads spin-wait whenever another process holds
one of their cores. The figures to compare are the ratios: `step_16_vs_raw_16` and `engine_16_vs_raw_16` (CPU
per step) and `batching_efficiency_16` (engine 16 ÷ 1 over raw 16 ÷ 1, in tokens per CPU second and per wall
second), the in-process counterpart of bench/run.py's metric of the same name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROMPT = "The history of the printing press begins"
ROWS = 16


def measure(run: Callable[[], object], steps: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per decode step of one run."""
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return (time.process_time() - cpu) * 1000 / steps, (time.perf_counter() - wall) * 1000 / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="25m")
    parser.add_argument("--model-id", help="bench-<size> (default) or tiny-chat, whose forward pass is so cheap that "
                        "the engine's own per-step work shows, as on a GPU")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--stagger-ms", type=float, default=0.0,
                        help="gap between the 16 streams' arrivals (0: all at once, behind a barrier)")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "workbench-bench"))
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()

    import torch

    from run import build_models

    torch.set_num_threads(args.threads)
    from backend.core.config import load_config
    from backend.core.types import GenerationParams
    from backend.engines.decode import RowPlan, decode_batch
    from backend.engines.local import LocalGenerativeEngine

    config = load_config(build_models(Path(args.workdir), args.model_size))
    model_id = args.model_id or f"bench-{args.model_size}"
    spec = next(spec for spec in config.models if spec.id == model_id)
    engine = LocalGenerativeEngine.load(spec)
    runtime, tokens = engine.runtime, args.new_tokens
    model = runtime.model
    prompt_ids = runtime.encode_prompt(PROMPT)
    params = GenerationParams(max_new_tokens=tokens, temperature=0.0)
    plan = RowPlan.of(prompt_ids, params, tokens, seed=0)

    def raw(rows: int) -> None:
        ids = torch.tensor([prompt_ids] * rows)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                 min_new_tokens=tokens, do_sample=False)
        assert out.shape[1] == len(prompt_ids) + tokens

    def step(rows: int) -> None:
        decode_batch(model, runtime.decoding, [plan] * rows, torch.zeros(rows, dtype=torch.bool), lambda _: None)

    def one_stream() -> None:
        for event in engine.stream_generate(PROMPT, params):
            pass
        assert event.stats.generated_tokens == tokens  # type: ignore[attr-defined]

    batches: list[int] = []

    def streams(count: int) -> None:
        before = engine.batcher.batches_run
        barrier = threading.Barrier(count + 1)

        def client(index: int) -> None:
            barrier.wait()
            time.sleep(index * args.stagger_ms / 1000)
            one_stream()

        threads = [threading.Thread(target=client, args=(index,)) for index in range(count)]
        for thread in threads:
            thread.start()
        barrier.wait()
        for thread in threads:
            thread.join()
        if count == ROWS:
            batches.append(engine.batcher.batches_run - before)

    ways: dict[str, Callable[[], object]] = {
        "raw_1": lambda: raw(1), "step_1": lambda: step(1), "engine_1": lambda: streams(1),
        "raw_16": lambda: raw(ROWS), "step_16": lambda: step(ROWS), "engine_16": lambda: streams(ROWS)}
    for run in ways.values():  # warm-up
        run()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    load_before = os.getloadavg()
    for round_index in range(args.rounds):
        order = list(ways) if round_index % 2 == 0 else list(reversed(ways))
        for name in order:
            samples[name].append(measure(ways[name], tokens))
        print(f"round {round_index + 1}: " + ", ".join(f"{name} {samples[name][-1][0]:.1f}" for name in ways)
              + " CPU ms/step", flush=True)
    engine.close()

    cpu = {name: statistics.median(s[0] for s in values) for name, values in samples.items()}
    wall = {name: statistics.median(s[1] for s in values) for name, values in samples.items()}

    def efficiency(per_step: dict[str, float]) -> float:
        # tokens per second of 16 rows ÷ of 1 row is ROWS * t1 / t16, for the engine and for raw generate
        return (per_step["engine_1"] / per_step["engine_16"]) / (per_step["raw_1"] / per_step["raw_16"])

    results = {
        "model": model_id, "new_tokens": tokens, "rounds": args.rounds, "threads": args.threads,
        "stagger_ms": args.stagger_ms, "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "cpu_ms_per_step": cpu, "wall_ms_per_step": wall,
        "step_16_vs_raw_16": cpu["step_16"] / cpu["raw_16"], "step_1_vs_raw_1": cpu["step_1"] / cpu["raw_1"],
        "engine_16_vs_raw_16": cpu["engine_16"] / cpu["raw_16"], "engine_1_vs_raw_1": cpu["engine_1"] / cpu["raw_1"],
        "raw_batch_ceiling_16_cpu": ROWS * cpu["raw_1"] / cpu["raw_16"],
        "engine_speedup_16_cpu": ROWS * cpu["engine_1"] / cpu["engine_16"],
        "batching_efficiency_16_cpu": efficiency(cpu), "batching_efficiency_16_wall": efficiency(wall),
        "batches_per_16_streams": batches[1:],  # after the warm-up
    }
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
