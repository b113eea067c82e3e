"""Side-by-side performance benchmark (issue: batching across concurrent users).

    python bench/run.py --out bench/results/cpu.json [--model-size 25m] [--new-tokens 128] [--device cpu]

Everything is measured in one run, side by side, because absolute times drift on shared machines; only the
ratios are meant to be compared across runs:

  stream_overhead_ratio     tokens/s seen by a gradio_client of /generate / raw model.generate tokens/s
  ttft_overhead_ms          time to first text through the app (plain HTTP + server-sent events) minus raw
  concurrency_speedup_16    aggregate tokens/s with 16 concurrent clients / 1 client (Gradio's HTTP API, one
                            session per client as browser tabs; the openai and gradio_client variants are recorded)
  batching_efficiency_16    concurrency_speedup_16 / raw_batch_ceiling_16, where the ceiling is what the hardware
                            allows: raw `model.generate` on 16 rows at once, aggregate tokens/s / one row's
                            (the same prompt in every row, as the 16 clients send; alternated, median of --rounds)
  vs_transformers_serve_16  our aggregate tokens/s / `transformers serve --continuous-batching`, the same 16
                            clients: the openai client streaming /v1/completions from each server, both
                            servers up and the rounds alternating (median of the per-round ratios)
  eval_batch_speedup        batched evaluation / per-example loop (bench/eval_batching.py, best of 3 alternating)

With --continuous-batching it measures only transformers' own continuous batching (`generate_batch`) against
the Batcher on the bigger model, in process (bench/continuous_batching.py), and writes that comparison.

How noise is kept out of the ratios (a 2-core VM here swings ±20% within seconds): each single-client repetition
runs raw generate, gradio_client and plain HTTP back to back and the ratio is taken per repetition (median of
--repeats); the 1- and 16-client measurements alternate between the ways of calling (median of --rounds).

Models: a random-weight Llama big enough that compute matters on CPU (default ~25M parameters), built from a
config with the tiny tokenizer, plus the tiny test model. Both never emit EOS under greedy decoding (its output
row is zeroed), so every request generates exactly --new-tokens tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TARGETS = {  # metric: (target, "min" means at least / "max" means at most)
    "stream_overhead_ratio": (0.97, "min"),
    "ttft_overhead_ms": (30.0, "max"),
    "concurrency_speedup_16": (3.0, "min"),
    "batching_efficiency_16": (0.85, "min"),
    "vs_transformers_serve_16": (1.2, "min"),
    "eval_batch_speedup": (4.0, "min"),
}
MODEL_SIZES = {  # hidden, layers, intermediate, heads
    "25m": (512, 8, 1408, 8),
    "1b": (2048, 20, 5632, 16),  # ~1.0B parameters
}
PROMPT = "The history of the printing press begins"
CLIENTS = 16
# Where the app's and transformers serve's output goes (bench/gpu_check_serving.py points it at its log).
SERVER_OUTPUT: Any = subprocess.DEVNULL


# ------------------------------------------------------------------------------------------- models


def build_models(workdir: Path, size: str) -> Path:
    """The tiny test models plus a bigger random Llama; returns a models.yaml listing both."""
    import torch
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from tests.tiny_models import build_tiny_models

    registry = yaml.safe_load(Path(build_tiny_models(workdir / "tiny")).read_text())
    tiny_entry = next(entry for entry in registry["models"] if entry["id"] == "tiny-chat")
    target = workdir / f"bench-{size}"
    if not (target / "config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(tiny_entry["source"])
        hidden, layers, intermediate, heads = MODEL_SIZES[size]
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                             num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                             max_position_embeddings=2048, tie_word_embeddings=False,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        with torch.no_grad():  # never emit EOS: every request then generates exactly the asked tokens
            model.lm_head.weight[tokenizer.eos_token_id].zero_()
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    entry = {**tiny_entry, "id": f"bench-{size}", "name": f"Random Llama ({size})", "source": str(target),
             "max_context": 2048}
    registry["models"] = [tiny_entry, entry]
    registry["settings"] = {"max_loaded_models": 2}
    path = workdir / "bench-models.yaml"
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------- raw generate


class RawGenerate:
    """Plain `model.generate`, greedy, loaded once; a streamer only timestamps the first token."""

    def __init__(self, model_dir: str, new_tokens: int, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # The same dtype the engine picks for the device (dtype auto): float32 on CPU, bfloat16 on CUDA.
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32 if device == "cpu" else torch.bfloat16)
        self.model.to(device).eval()
        self.inputs = tokenizer(PROMPT, return_tensors="pt").to(device)
        self.new_tokens, self.device = new_tokens, device
        self.once()  # warm-up

    def once(self) -> tuple[float, float]:
        """(tokens/s, seconds to the first token) of one greedy generate."""
        import torch
        from transformers.generation.streamers import BaseStreamer

        class FirstToken(BaseStreamer):
            def __init__(self) -> None:
                self.calls, self.first_at = 0, None

            def put(self, value: Any) -> None:
                self.calls += 1
                if self.calls == 2:  # the first call carries the prompt
                    self.first_at = time.perf_counter()

            def end(self) -> None:
                pass

        streamer = FirstToken()
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**self.inputs, max_new_tokens=self.new_tokens,
                                         min_new_tokens=self.new_tokens, do_sample=False, streamer=streamer)
        _sync(self.device)
        total = time.perf_counter() - started
        assert output.shape[1] - self.inputs["input_ids"].shape[1] == self.new_tokens
        return self.new_tokens / total, streamer.first_at - started

    def batch(self, rows: int) -> float:
        """Aggregate tokens/s of one greedy generate over `rows` copies of the prompt (no padding needed)."""
        import torch

        inputs = {name: value.repeat(rows, 1) for name, value in self.inputs.items()}
        started = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(**inputs, max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens,
                                do_sample=False)
        _sync(self.device)
        return rows * self.new_tokens / (time.perf_counter() - started)

    def batch_ceiling(self, rows: int, rounds: int) -> float:
        """Raw `rows`-row ÷ 1-row aggregate tokens/s, alternated per round (median): the batching ceiling."""
        return statistics.median(self.batch(rows) / self.batch(1) for _ in range(rounds))

    def close(self) -> None:
        self.model.to("cpu")  # free accelerator memory before the app loads its copy
        del self.model


def measure_raw(model_dir: str, new_tokens: int, device: str, repeats: int) -> dict[str, float]:
    raw = RawGenerate(model_dir, new_tokens, device)
    runs = [raw.once() for _ in range(repeats)]
    raw.close()
    return {"tokens_per_s": statistics.median(r[0] for r in runs), "ttft_s": statistics.median(r[1] for r in runs)}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------- the app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def start_app(models_yaml: Path, device: str, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """`python app.py` of the checkout at `root` (bench/ab_app.py starts two) serving `models_yaml`."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "app.py", "--models", str(models_yaml), "--port", str(port)],
                               cwd=root, env=env, stdout=SERVER_OUTPUT, stderr=SERVER_OUTPUT)
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, process)
    return process, url


def gradio_client_stream(client: Any, model_id: str, new_tokens: int) -> tuple[float, float, int]:
    """One /generate stream through gradio_client: (time to first text, total time, generated tokens)."""
    started = time.perf_counter()
    first_at = None
    job = client.submit(prompt=PROMPT, model=model_id, max_new_tokens=new_tokens, temperature=0,
                        api_name="/generate")
    for partial in job:
        if first_at is None and partial:
            first_at = time.perf_counter()
    total = time.perf_counter() - started
    return (first_at or total) - started, total, new_tokens


class GradioHttp:
    """/generate over Gradio's plain HTTP API (POST gradio_api/call/generate, then its server-sent events), as
    a browser tab or curl uses it. gradio_client cannot time a first token: it polls for new messages every
    50 ms (gradio_client/utils.py, `time.sleep(0.05)`), and its iterator every 1 ms, which on a 2-core machine
    also takes CPU from the server. Each client is a session of its own, as a browser tab is: Gradio builds a
    session's state (~25 ms for this app's 300 components) on its first request only."""

    def __init__(self, url: str, model_id: str, new_tokens: int) -> None:
        from gradio_client import Client

        client = Client(url, verbose=False)
        parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"][
            "parameters"]
        client.close()
        given = {"prompt": PROMPT, "model": model_id, "max_new_tokens": new_tokens, "temperature": 0}
        self.arguments = [given.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]
        self.url, self.new_tokens = url, new_tokens
        self._clients: dict[str, Any] = {}  # session: its httpx.Client

    def client(self, session: str) -> Any:
        """The session's HTTP client, made on its first request and kept, as a browser tab keeps its connection.
        Making one costs ~20 ms of the bench process's CPU (an SSL context, even for http://): made per request,
        16 clients starting together spent ~0.3 s of the measured wall time making them, one after another."""
        import httpx

        if session not in self._clients:
            self._clients[session] = httpx.Client(base_url=self.url, timeout=600)
        return self._clients[session]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def stream(self, session: str) -> tuple[float, float, int]:
        """(time to the first non-empty text, total time, generated tokens) of one request in `session`."""
        first_at = None
        http = self.client(session)
        started = time.perf_counter()
        event_id = http.post("gradio_api/call/generate",
                             json={"data": self.arguments, "session_hash": session}).json()["event_id"]
        with http.stream("GET", f"gradio_api/call/generate/{event_id}") as events:
            for line in events.iter_lines():
                if line.startswith("event: error"):
                    raise RuntimeError(f"/generate failed: {line}")
                if first_at is None and line.startswith("data:") and \
                        line[5:].strip() not in ("", "null", '[""]'):
                    first_at = time.perf_counter()
        total = time.perf_counter() - started
        if first_at is None:
            raise RuntimeError("the stream ended without text")
        return first_at - started, total, self.new_tokens


def openai_stream(client: Any, model: str, new_tokens: int) -> int:
    """One streamed /v1/completions request (the app's and transformers serve's): the tokens generated."""
    stream = client.completions.create(model=model, prompt=PROMPT, max_tokens=new_tokens, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    pieces, usage = 0, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].text:
            pieces += 1
    return usage if usage else pieces


def measure_app_single(url: str, model_id: str, raw: RawGenerate, repeats: int) -> dict[str, float]:
    """One client at a time, each repetition running raw generate, gradio_client and plain HTTP back to back,
    so that a slow spell of a shared machine lands on both sides of a ratio; the ratios are per repetition."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    http = GradioHttp(url, model_id, raw.new_tokens)
    gradio_client_stream(client, model_id, raw.new_tokens)  # loads the model and warms up
    http.stream("bench-single")  # the session's first request builds its state
    rows = []
    for repeat in range(repeats):
        raw_rate, raw_ttft = raw.once()
        client_ttft, total, tokens = gradio_client_stream(client, model_id, raw.new_tokens)
        ttft, http_total, _ = http.stream("bench-single")
        new_session_ttft, _, _ = http.stream(f"bench-new-{repeat}")
        rows.append({"raw_rate": raw_rate, "raw_ttft": raw_ttft, "app_rate": tokens / total, "ttft": ttft,
                     "http_rate": tokens / http_total, "gradio_client_ttft": client_ttft,
                     "new_session_ttft": new_session_ttft})
    client.close()
    http.close()
    median = lambda key: statistics.median(row[key] for row in rows)  # noqa: E731
    return {"raw_tokens_per_s": median("raw_rate"), "raw_ttft_s": median("raw_ttft"),
            "tokens_per_s": median("app_rate"), "ttft_s": median("ttft"),
            "new_session_ttft_s": median("new_session_ttft"),
            "gradio_client_ttft_s": median("gradio_client_ttft"),
            "stream_overhead_ratio": statistics.median(row["app_rate"] / row["raw_rate"] for row in rows),
            "stream_overhead_ratio_plain_http": statistics.median(row["http_rate"] / row["raw_rate"] for row in rows),
            "ttft_overhead_s": statistics.median(row["ttft"] - row["raw_ttft"] for row in rows),
            "repetitions": [{key: round(value, 4) for key, value in row.items()} for row in rows]}


def run_concurrently(clients: int, one_request: Callable[[int], int]) -> float:
    """Aggregate tokens/s of `clients` simultaneous requests (wall time from start to the last finish)."""
    barrier = threading.Barrier(clients + 1)
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        barrier.wait()
        try:
            counts.append(one_request(index))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} of {clients} requests failed: {errors[0]!r}")
    return sum(counts) / elapsed


def measure_app_concurrent(url: str, model_id: str, new_tokens: int, clients: int,
                           rounds: int) -> dict[str, float]:
    """Aggregate tokens/s of 1 and of `clients` simultaneous streams through the app, three ways: Gradio's HTTP
    API (a session per client, as browser tabs), the app's OpenAI-compatible /v1/completions (the client that
    also measures transformers serve), and gradio_client (which polls, and takes CPU from the server)."""
    from gradio_client import Client
    from openai import OpenAI

    http = GradioHttp(url, model_id, new_tokens)
    openai_client = OpenAI(base_url=f"{url}v1", api_key="unused", timeout=600)
    pool = [Client(url, verbose=False) for _ in range(clients)]
    ways: dict[str, Callable[[int], int]] = {
        "http": lambda i: http.stream(f"bench-client-{i}")[2],
        "openai": lambda i: openai_stream(openai_client, model_id, new_tokens),
        "gradio_client": lambda i: gradio_client_stream(pool[i], model_id, new_tokens)[2],
    }
    try:
        for way in ways.values():
            run_concurrently(clients, way)  # warm-up, and every session's first request
        rates: dict[str, list[float]] = {f"{name}_{count}": [] for name in ways for count in (1, clients)}
        for _ in range(rounds):  # the ways alternate, so drift of the machine lands on all of them
            for name, way in ways.items():
                rates[f"{name}_1"].append(run_concurrently(1, way))
                rates[f"{name}_{clients}"].append(run_concurrently(clients, way))
    finally:
        for client in pool:
            client.close()
        http.close()
    return {key: statistics.median(values) for key, values in rates.items()}


# ------------------------------------------------------------------------- the engine, in process


def measure_engine(models_yaml: Path, model_id: str, new_tokens: int, repeats: int,
                   clients: int) -> dict[str, float]:
    """The same requests through backend.services.generation in this process: the app minus Gradio and HTTP. Used where
    Gradio is not installed (the GPU machine), and to split the app's overhead into engine and web parts."""
    from backend.services import generation as service
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import GenerationParams

    registry = Registry(load_config(models_yaml), create_engine)
    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0)

    def one(_: int = 0) -> tuple[float, float, int]:
        started = time.perf_counter()
        first_at = None
        for event in service.stream_generate(registry, model_id, PROMPT, params):
            if first_at is None and getattr(event, "text", ""):
                first_at = time.perf_counter()
        total = time.perf_counter() - started
        assert event.stats.generated_tokens == new_tokens
        return (first_at or total) - started, total, new_tokens

    try:
        one()  # load and warm up
        runs = [one() for _ in range(repeats)]
        aggregate = run_concurrently(clients, lambda i: one(i)[2])
    finally:
        registry.close()
    return {"tokens_per_s": statistics.median(n / total for _, total, n in runs),
            "ttft_s": statistics.median(ttft for ttft, _, _ in runs), "aggregate_tokens_per_s": aggregate}


# ------------------------------------------------------------------------------- transformers serve


def start_transformers_serve(model_dir: str, device: str, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """`transformers serve --continuous-batching` on `device`; `extra` options go to it (e.g. --cb-num-blocks:
    it sizes its KV cache to a share of the free memory otherwise, several GB of RAM on a CPU)."""
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="serve-home-"))
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)  # /v1/models fails without it
    env = {**os.environ, "HOME": str(home), "HF_HOME": str(home / ".cache" / "huggingface"),
           "HF_HUB_OFFLINE": "1"}
    # The interpreter's own transformers, not whatever `transformers` is first on PATH.
    process = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", model_dir,
                                "--port", str(port), "--host", "127.0.0.1",
                                "--device", device, "--continuous-batching", *extra],
                               env=env, stdout=SERVER_OUTPUT, stderr=SERVER_OUTPUT)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health", process)
    return process, f"{base}/v1"


def measure_serve_concurrent(base_url: str, model_dir: str, new_tokens: int, clients: int, rounds: int) -> float:
    """transformers serve under the same client code and requests as the app's /v1/completions."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="unused", timeout=600)
    run_concurrently(clients, lambda i: openai_stream(client, model_dir, new_tokens))  # loads and warms up
    return statistics.median(run_concurrently(clients, lambda i: openai_stream(client, model_dir, new_tokens))
                             for _ in range(rounds))


def measure_side_by_side(app_url: str, model_id: str, serve_url: str, model_dir: str, new_tokens: int,
                         clients: int, rounds: int) -> dict[str, float]:
    """Ours and transformers serve, both running, under the same `clients` openai clients, alternating round by
    round so that a slow spell of the machine lands on both: each side's median, and the median of the per-round
    ratios (ours ÷ serve)."""
    from openai import OpenAI

    ours = OpenAI(base_url=f"{app_url}v1", api_key="unused", timeout=600)
    theirs = OpenAI(base_url=serve_url, api_key="unused", timeout=600)
    # Loads and warms up: one request first (16 threads making the openai client's first chunk models at once
    # raced in pydantic: "BaseModel cannot be instantiated directly").
    for warm_up in (1, clients):
        run_concurrently(warm_up, lambda i: openai_stream(ours, model_id, new_tokens))
        run_concurrently(warm_up, lambda i: openai_stream(theirs, model_dir, new_tokens))
    app_rates, serve_rates = [], []
    for _ in range(rounds):
        app_rates.append(run_concurrently(clients, lambda i: openai_stream(ours, model_id, new_tokens)))
        serve_rates.append(run_concurrently(clients, lambda i: openai_stream(theirs, model_dir, new_tokens)))
    return {"app": statistics.median(app_rates), "serve": statistics.median(serve_rates),
            "ratio": statistics.median(a / s for a, s in zip(app_rates, serve_rates)),
            "app_rounds": app_rates, "serve_rounds": serve_rates}


# ------------------------------------------------------------------------------------------- report


def judge(results: dict[str, Any]) -> dict[str, str]:
    verdicts = {}
    for metric, (target, kind) in TARGETS.items():
        value = results.get(metric)
        if value is None:
            verdicts[metric] = "not measured"
            continue
        met = value >= target if kind == "min" else value <= target
        if met:
            verdicts[metric] = f"met ({value:.3g} {'>=' if kind == 'min' else '<='} {target})"
        elif kind == "min":
            verdicts[metric] = f"MISSED by {(1 - value / target) * 100:.1f}% ({value:.3g} < {target})"
        else:
            verdicts[metric] = f"MISSED by {value - target:.3g} ({value:.3g} > {target})"
    return verdicts


def eval_speedup(batch_size: int) -> tuple[float | None, list[dict[str, Any]]]:
    """Runs bench/eval_batching.py (batched evaluation vs a per-example loop, same data and code path) and
    returns the generation speed-up on its larger model, with all its rows."""
    out = Path(tempfile.mkdtemp()) / "eval.json"
    result = subprocess.run([sys.executable, "bench/eval_batching.py", "--batch-size", str(batch_size),
                             "--examples", str(2 * batch_size), "--repeat", "3", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if not out.exists():
        print(f"eval benchmark failed: {result.stderr[-2000:]}", file=sys.stderr)
        return None, []
    rows = json.loads(out.read_text())["results"]
    generation = [row for row in rows if row["task"] == "generation"]
    headline = [row for row in generation if row["model"] != "tiny-chat"] or generation
    return (headline[0]["speedup"] if headline else None), rows


def engine_only(args: argparse.Namespace, models_yaml: Path, entries: dict[str, Any],
                results: dict[str, Any]) -> int:
    """Raw generate against the engine path (no Gradio, no HTTP), 1 and 16 concurrent streams."""
    for model_id, entry in entries.items():
        print(f"[{model_id}] raw generate ...", flush=True)
        raw = measure_raw(entry["source"], args.new_tokens, args.device, args.repeats)
        print(f"[{model_id}] engine, 1 and {CLIENTS} streams ...", flush=True)
        engine = measure_engine(models_yaml, model_id, args.new_tokens, args.repeats, CLIENTS)
        row = {"raw_tokens_per_s": raw["tokens_per_s"], "raw_ttft_ms": raw["ttft_s"] * 1000,
               "engine_tokens_per_s": engine["tokens_per_s"], "engine_ttft_ms": engine["ttft_s"] * 1000,
               "engine_aggregate_tokens_per_s_16": engine["aggregate_tokens_per_s"],
               "engine_overhead_ratio": engine["tokens_per_s"] / raw["tokens_per_s"],
               "engine_ttft_overhead_ms": (engine["ttft_s"] - raw["ttft_s"]) * 1000,
               "engine_concurrency_speedup_16": engine["aggregate_tokens_per_s"] / engine["tokens_per_s"]}
        results["per_model"][model_id] = row
        print(json.dumps({model_id: row}, indent=2), flush=True)
    results["mode"] = "engine only: backend.services.generation in process, no Gradio / HTTP"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="25m")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=9, help="single-client repetitions (raw and app interleaved)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 1- and 16-client measurements")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "workbench-bench"))
    parser.add_argument("--skip-serve", action="store_true", help="skip the transformers serve comparison")
    parser.add_argument("--skip-eval", action="store_true", help="skip the evaluation batching comparison")
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--continuous-batching", action="store_true",
                        help="only compare transformers' generate_batch with the Batcher "
                             "(bench/continuous_batching.py)")
    parser.add_argument("--engine-only", action="store_true",
                        help="measure the engine in process instead of the app (no Gradio needed: GPU machines)")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    models_yaml = build_models(workdir, args.model_size)
    import yaml

    entries = {e["id"]: e for e in yaml.safe_load(models_yaml.read_text())["models"]}
    if args.device != "cpu":
        for entry in entries.values():
            entry["device"], entry["dtype"] = args.device, "auto"
        models_yaml.write_text(yaml.safe_dump({"settings": {"max_loaded_models": 2},
                                               "models": list(entries.values())}, sort_keys=False))
    results: dict[str, Any] = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                           "device": args.device},
                               "new_tokens": args.new_tokens, "clients": CLIENTS, "per_model": {}}
    if args.continuous_batching:
        return subprocess.run([sys.executable, "bench/continuous_batching.py", "--models-yaml", str(models_yaml),
                               "--model-id", f"bench-{args.model_size}", "--new-tokens", str(args.new_tokens),
                               "--clients", str(CLIENTS), "--rounds", str(args.rounds), "--out", args.out],
                              cwd=ROOT).returncode
    if args.engine_only:
        return engine_only(args, models_yaml, entries, results)
    app, url = start_app(models_yaml, args.device)
    try:
        for model_id, entry in entries.items():
            print(f"[{model_id}] raw generate and the app, 1 client, interleaved ...", flush=True)
            raw = RawGenerate(entry["source"], args.new_tokens, args.device)
            single = measure_app_single(url, model_id, raw, args.repeats)
            print(f"[{model_id}] raw generate, {CLIENTS} rows at once / 1 row ...", flush=True)
            ceiling = raw.batch_ceiling(CLIENTS, args.rounds)
            raw.close()
            print(f"[{model_id}] the app, 1 and {CLIENTS} clients ...", flush=True)
            rates = measure_app_concurrent(url, model_id, args.new_tokens, CLIENTS, args.rounds)
            row = {
                "raw_tokens_per_s": single["raw_tokens_per_s"], "raw_ttft_ms": single["raw_ttft_s"] * 1000,
                "app_tokens_per_s": single["tokens_per_s"], "app_ttft_ms": single["ttft_s"] * 1000,
                "app_ttft_ms_new_session": single["new_session_ttft_s"] * 1000,
                "app_ttft_ms_via_gradio_client": single["gradio_client_ttft_s"] * 1000,
                **{f"app_{key}_tokens_per_s": value for key, value in rates.items()},
                "stream_overhead_ratio": single["stream_overhead_ratio"],
                "stream_overhead_ratio_of_medians": single["tokens_per_s"] / single["raw_tokens_per_s"],
                # The same requests as a browser receives them (server-sent events, no client-side polling).
                "stream_overhead_ratio_plain_http": single["stream_overhead_ratio_plain_http"],
                "ttft_overhead_ms": single["ttft_overhead_s"] * 1000,
                "concurrency_speedup_16": rates[f"http_{CLIENTS}"] / rates["http_1"],
                "raw_batch_ceiling_16": ceiling,
                "batching_efficiency_16": rates[f"http_{CLIENTS}"] / rates["http_1"] / ceiling,
                "concurrency_speedup_16_openai": rates[f"openai_{CLIENTS}"] / rates["openai_1"],
                "concurrency_speedup_16_gradio_client": rates[f"gradio_client_{CLIENTS}"] / rates["gradio_client_1"],
            }
            print(json.dumps({model_id: row}, indent=2), flush=True)
            row["single_client_repetitions"] = single["repetitions"]  # rates in tokens/s, times in s
            results["per_model"][model_id] = row
        big = f"bench-{args.model_size}"
        if not args.skip_serve:
            print(f"[{big}] ours and transformers serve --continuous-batching, {CLIENTS} clients, alternating ...",
                  flush=True)
            source = entries[big]["source"]
            # Its defaults, as a user runs it (on the CPU its KV cache takes a share of the free RAM: 12 GB seen on
            # 24 GB).
            serve, base_url = start_transformers_serve(source, args.device)
            try:
                both = measure_side_by_side(url, big, base_url, source, args.new_tokens, CLIENTS, args.rounds)
            finally:
                serve.terminate()
                serve.wait(timeout=30)
            row = results["per_model"][big]
            # The same client code and requests on both sides: the openai client streaming /v1/completions.
            row.update(serve_openai_16_tokens_per_s=both["serve"], app_openai_16_beside_serve_tokens_per_s=both["app"],
                       vs_transformers_serve_16=both["ratio"],
                       vs_transformers_serve_16_rounds={"app": both["app_rounds"], "serve": both["serve_rounds"]})
    finally:
        app.terminate()
        app.wait(timeout=30)

    headline = results["per_model"][big]
    for metric in ("stream_overhead_ratio", "ttft_overhead_ms", "concurrency_speedup_16", "batching_efficiency_16",
                   "vs_transformers_serve_16"):
        results[metric] = headline.get(metric)
    if not args.skip_eval:
        print(f"evaluation: batch {args.eval_batch_size} vs per-example loop ...", flush=True)
        results["eval_batch_speedup"], results["eval_batching"] = eval_speedup(args.eval_batch_size)
    results["verdicts"] = judge(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results.get(k) for k in (*TARGETS, "verdicts")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
