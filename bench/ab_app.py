"""The whole app of two checkouts, both serving at once, 16 concurrent streams alternating between them.

    python bench/ab_app.py --before /tmp/before-checkout [--after .] [--way openai|http] [--rounds 8] \\
        [--new-tokens 64] [--out FILE.json]

Both apps (`python app.py` of each checkout, the same bench-25m model as bench/run.py) stay up; each round runs 16
simultaneous clients against one, then the other (the order flips every round), so a slow spell of the machine
lands on both. Reported: each side's aggregate tokens/s per round, the median of the per-round ratios after ÷
before, and each app process's own CPU time per generated token over all rounds (what the server spent, apart from
the clients, which share the machine). `--way openai` streams /v1/completions, `--way http` Gradio's /generate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import CLIENTS, GradioHttp, build_models, openai_stream, run_concurrently, start_app  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, type=Path, help="checkout of the code before the change")
    parser.add_argument("--after", default=Path("."), type=Path, help="checkout of the code after it")
    parser.add_argument("--way", choices=["openai", "http"], default="openai")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "workbench-bench"))
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()

    import psutil
    from openai import OpenAI

    models_yaml = build_models(Path(args.workdir), "25m")
    apps = {side: start_app(models_yaml, "cpu", root.resolve())
            for side, root in (("before", args.before), ("after", args.after))}
    try:
        def client(url: str) -> Callable[[int], int]:
            if args.way == "openai":
                openai = OpenAI(base_url=f"{url}v1", api_key="unused", timeout=600)
                return lambda _: openai_stream(openai, "bench-25m", args.new_tokens)
            http = GradioHttp(url, "bench-25m", args.new_tokens)
            return lambda index: http.stream(f"bench-client-{index}")[2]

        clients = {side: client(url) for side, (_, url) in apps.items()}
        for request in clients.values():  # loads the model, warms up, builds every session
            run_concurrently(1, request)
            run_concurrently(CLIENTS, request)

        def cpu_s(side: str) -> float:
            times = psutil.Process(apps[side][0].pid).cpu_times()
            return times.user + times.system

        cpu_before = {side: cpu_s(side) for side in apps}
        rates: dict[str, list[float]] = {side: [] for side in apps}
        for round_index in range(args.rounds):
            for side in (("before", "after") if round_index % 2 == 0 else ("after", "before")):
                rates[side].append(run_concurrently(CLIENTS, clients[side]))
        tokens = CLIENTS * args.new_tokens * args.rounds
        cpu_ms = {side: (cpu_s(side) - cpu_before[side]) * 1000 / tokens for side in apps}
    finally:
        for process, _ in apps.values():
            process.terminate()
            process.wait(timeout=30)
    ratios = [after / before for before, after in zip(rates["before"], rates["after"])]
    results = {"way": args.way, "rounds": args.rounds, "new_tokens": args.new_tokens, "clients": CLIENTS,
               "tokens_per_s": rates, "after_vs_before": statistics.median(ratios),
               "after_vs_before_rounds": ratios, "server_cpu_ms_per_token": cpu_ms}
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
