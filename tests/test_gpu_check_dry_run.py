"""The prepared GPU check (bench/gpu_check.sh) in its --cpu dry run: every step runs or says why not, and each
step that ran carries its numbers, so the script is known to work before a GPU is lent to run it for real.

Slow (about 100 s on a quiet 2-core machine, several minutes on a loaded one): it starts the app,
`transformers serve`, pytest and three training processes; the full tier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Launches the app, a server, a training process or real weights: the full tier (tests/tiers.py).
pytestmark = pytest.mark.full

RUN_ON_CPU = {"env", "models", "serving", "transformers_serve", "contract", "sft_lora", "zerogpu", "train_throughput"}
NEED_CUDA = {"qlora", "quantized"}


@pytest.mark.timeout(3600)
def test_dry_run_runs_every_step_and_records_its_numbers(tmp_path: Path, tiny_models_yaml: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    # The session's tiny models, already built: the models step finds a complete build in work/tiny (the build's
    # marker holds the resolved folder) and goes on to build only the bench model, as a second call on a warm
    # device machine does.
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "tiny").symlink_to(tiny_models_yaml.parent, target_is_directory=True)
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu", "--workdir", str(tmp_path / "work")], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=3500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = list(out.glob("gpu-check-cpu-*.json"))
    assert len(reports) == 1, list(out.iterdir())
    report = json.loads(reports[0].read_text())
    steps = report["steps"]
    assert set(steps) == RUN_ON_CPU | NEED_CUDA | {"smollm2"}

    failed = {name: record.get("error") for name, record in steps.items() if name in RUN_ON_CPU
              and record["status"] != "ok"}
    assert not failed, failed
    for name in NEED_CUDA:
        assert steps[name]["status"] == "skipped: no CUDA"
    assert steps["smollm2"]["status"].startswith("skipped: ")
    for name in RUN_ON_CPU:
        assert steps[name]["numbers"] and steps[name]["seconds"] > 0 and "cpu_s" in steps[name]

    serving = steps["serving"]["numbers"]
    assert serving["clients"] == 2 and serving["new_tokens"] == 8
    for key in ("stream_overhead_ratio", "ttft_overhead_ms", "concurrency_of_raw_ceiling", "raw_tokens_per_s",
                "app_http_many_tokens_per_s", "raw_many_rows_tokens_per_s"):
        assert isinstance(serving[key], float) and serving[key] != 0, key
    assert steps["transformers_serve"]["numbers"]["vs_transformers_serve"] > 0
    contract = steps["contract"]["numbers"]
    assert contract["passed"] == contract["tests"] >= 2 and contract["failures"] == contract["errors"] == 0
    sft = steps["sft_lora"]["numbers"]
    assert sft["steps"] == 2 and sft["model_kind"] == "adapter" and sft["adapter_saved"]
    assert sft["train_samples_per_second"] > 0
    zerogpu = steps["zerogpu"]["numbers"]
    assert zerogpu["outputs_equal_without_spaces"] and zerogpu["gpu_calls"] > 0
    assert zerogpu["cuda_tensors_crossing"] == 0 and zerogpu["unpicklable_crossings"] == 0
    assert steps["train_throughput"]["numbers"]["app_vs_plain"] > 0

    verdicts = {f"{check['step']}.{check['metric']}": check["verdict"] for check in report["checks"]}
    assert set(verdicts) == {"serving.stream_overhead_ratio", "serving.ttft_overhead_ms",
                             "serving.concurrency_of_raw_ceiling", "transformers_serve.vs_transformers_serve",
                             "train_throughput.app_vs_plain", "zerogpu.cuda_tensors_crossing"}
    assert all(verdict.startswith(("met", "MISSED")) for verdict in verdicts.values()), verdicts
    summary = reports[0].with_suffix(".txt").read_text()
    assert "DRY RUN" in summary and all(f"- {name}: " in summary for name in steps)
    assert (out / reports[0].name.replace(".json", "-log.txt")).is_file()
