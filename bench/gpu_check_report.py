"""The GPU check's targets, verdicts and its two outputs: one JSON and a short text summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (step, metric, "min" = at least / "max" = at most, target, what it is)
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("serving", "stream_overhead_ratio", "min", 0.97, "stream / raw generate (1 client, gradio_client)"),
    ("serving", "ttft_overhead_ms", "max", 30.0, "time to first text over HTTP minus raw first token"),
    ("serving", "concurrency_of_raw_ceiling", "min", 0.85,
     "16 streams over HTTP / raw 16-row generate (tokens/s)"),
    ("transformers_serve", "vs_transformers_serve", "min", 1.2,
     "ours / transformers serve --continuous-batching, 16 openai clients"),
    ("train_throughput", "app_vs_plain", "min", 0.95, "training via the app / plain Trainer (samples/s)"),
    ("zerogpu", "cuda_tensors_crossing", "max", 0, "CUDA tensors in the arguments / results of spaces.GPU calls"),
]


def verdict(value: Any, kind: str, target: float) -> str:
    if not isinstance(value, (int, float)):
        return "not measured"
    met = value >= target if kind == "min" else value <= target
    sign = ">=" if kind == "min" else "<="
    if met:
        return f"met ({value:.3g} {sign} {target})"
    gap = f"{(1 - value / target) * 100:.1f}%" if kind == "min" else f"{value - target:.3g}"
    return f"MISSED by {gap} ({value:.3g}, target {sign} {target})"


def judge_all(steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    for step, metric, kind, target, what in TARGETS:
        value = steps.get(step, {}).get("numbers", {}).get(metric)
        checks.append({"step": step, "metric": metric, "value": value, "target": target,
                       "kind": "at least" if kind == "min" else "at most", "what": what,
                       "verdict": verdict(value, kind, target)})
    return checks


def summary(report: dict[str, Any]) -> str:
    """A few lines: each step's status and time with its headline numbers, then every target with its verdict."""
    lines = [f"GPU check, {report['mode']} mode, started {report['started']} on {report.get('device', '?')} "
             f"({report.get('wall_s', 0)} s, {report.get('cpu_s', 0)} CPU s so far)"]
    if report["mode"] == "cpu":
        lines.append("DRY RUN on CPU with tiny sizes: the figures only show that each path ran, not its speed.")
    for name, record in report["steps"].items():
        numbers = {k: v for k, v in record.get("numbers", {}).items() if isinstance(v, (int, float, str, bool))}
        shown = ", ".join(f"{k} {_short(v)}" for k, v in list(numbers.items())[:8])
        line = (f"- {name}: {record['status']} ({record.get('seconds', 0)} s, {record.get('cpu_s', 0)} CPU s)"
                + (f": {shown}" if shown else ""))
        if record.get("error"):
            line += f"\n    error: {record['error'][:400]}"
        lines.append(line)
    lines.append("Targets:")
    for check in report.get("checks", []):
        lines.append(f"- {check['step']}.{check['metric']} ({check['what']}), target {check['kind']} "
                     f"{check['target']}: {check['verdict']}")
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(report: dict[str, Any], json_path: Path, text_path: Path) -> None:
    env = report["steps"].get("env", {}).get("numbers", {})
    report["device"] = env.get("device_name", report.get("device", "?"))
    json_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    text_path.write_text(summary(report), encoding="utf-8")
