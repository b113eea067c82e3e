"""The engine path of two checkouts, interleaved in one run: before / after a change, on a noisy machine.

    python bench/ab_engine.py --before /tmp/main-checkout --after . --models-yaml Y [--model-id bench-25m]

Each round starts one process per checkout (A, then B, then the next round B first), each loading the model,
warming up, then measuring one greedy stream (median of 3) and 16 concurrent streams through
backend.services.generation.
Only the ratios B / A are meant to be compared; the machine's load moves both sides alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ONE_SIDE = r'''
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from backend.services import generation as service
from backend.core.config import load_config
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.types import GenerationParams
registry = Registry(load_config(Path(sys.argv[2])), create_engine)
model, tokens = sys.argv[3], int(sys.argv[4])
params = GenerationParams(max_new_tokens=tokens, temperature=0.0)
def one():
    for event in service.stream_generate(registry, model, "The history of the printing press begins", params):
        pass
    assert event.stats.generated_tokens == tokens
one()
single = []
for _ in range(3):
    started = time.perf_counter(); one(); single.append(tokens / (time.perf_counter() - started))
threads = [threading.Thread(target=one) for _ in range(16)]
started = time.perf_counter()
for thread in threads: thread.start()
for thread in threads: thread.join()
many = 16 * tokens / (time.perf_counter() - started)
registry.close()
print(json.dumps({"single": sorted(single)[1], "many": many}))
'''


def side(code: str, models_yaml: str, model: str, tokens: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", ONE_SIDE, code, models_yaml, model, str(tokens)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=".")
    parser.add_argument("--models-yaml", required=True)
    parser.add_argument("--model-id", default="bench-25m")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for round_index in range(args.rounds):
        order = ["before", "after"] if round_index % 2 == 0 else ["after", "before"]
        for name in order:
            code = str(Path(getattr(args, name)).resolve())
            runs[name].append(side(code, args.models_yaml, args.model_id, args.new_tokens))
            print(f"round {round_index + 1} {name}: {runs[name][-1]}", flush=True)
    result = {"model": args.model_id, "new_tokens": args.new_tokens, "rounds": args.rounds, "runs": runs}
    for key in ("single", "many"):
        ratios = [b[key] / a[key] for a, b in zip(runs["before"], runs["after"])]
        result[f"after_vs_before_{key}"] = statistics.median(ratios)
    result["concurrency_speedup_16"] = {name: statistics.median(r["many"] / r["single"] for r in values)
                                        for name, values in runs.items()}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
