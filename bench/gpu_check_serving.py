"""The web path on the device: the app over HTTP (Gradio and the OpenAI API) against raw `generate`, and
against `transformers serve --continuous-batching`. Every measurement is bench/run.py's own function."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.gpu_check_common import Details, Numbers, say


def server_output(context: dict[str, Any], name: str) -> Any:
    """bench/run.py's servers write to this step's own file (the app's traceback when it fails to start)."""
    from bench import run as bench_run

    bench_run.SERVER_OUTPUT = open(Path(context["workdir"]) / f"{name}-server.log", "a", encoding="utf-8")
    return bench_run.SERVER_OUTPUT


def server_log_tail(handle: Any) -> str:
    handle.flush()
    return Path(handle.name).read_text(encoding="utf-8", errors="replace")[-4000:]


def raw_batch_rate(raw: Any, rows: int, repeats: int) -> float:
    """The ceiling for `rows` concurrent streams: tokens/s of one plain `generate` over `rows` copies of the
    prompt (the app's concurrent requests are the same prompt, so no padding on either side), with the model
    `raw` (bench/run.py's RawGenerate) loaded."""
    import torch

    from bench import run as bench_run

    new_tokens, device = raw.new_tokens, raw.device
    inputs = {key: value.repeat(rows, 1) for key, value in raw.inputs.items()}

    def once() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            output = raw.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                        do_sample=False)
        bench_run._sync(device)
        assert output.shape == (rows, inputs["input_ids"].shape[1] + new_tokens)
        return rows * new_tokens / (time.perf_counter() - started)

    once()  # warm-up at this batch size
    return statistics.median(once() for _ in range(max(1, repeats)))


def serving_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """Stream ÷ raw generate and TTFT added (one client), N streams ÷ 1 and ÷ the raw N-row ceiling."""
    from bench import run as bench_run

    device, model_id, model_dir = context["device"], context["model_id"], context["model_dir"]
    new_tokens, clients = context["new_tokens"], context["clients"]
    output = server_output(context, "app")
    say("starting the app")
    try:
        app, url = bench_run.start_app(Path(context["models_yaml"]), device)
    except RuntimeError as error:
        raise RuntimeError(f"{error}; its output: {server_log_tail(output)}") from error
    try:
        say(f"app at {url}; raw generate and one client, interleaved")
        raw = bench_run.RawGenerate(model_dir, new_tokens, device)
        try:
            single = bench_run.measure_app_single(url, model_id, raw, context["repeats"])
            say(f"raw {clients}-row generate")
            ceiling = raw_batch_rate(raw, clients, context["repeats"])
        finally:
            raw.close()
        say(f"1 and {clients} concurrent streams, three ways")
        rates = bench_run.measure_app_concurrent(url, model_id, new_tokens, clients, context["rounds"])
        say("done")
    finally:
        app.terminate()
        app.wait(timeout=30)
    many = f"{clients}"
    numbers: Numbers = {
        "clients": clients, "new_tokens": new_tokens,
        "raw_tokens_per_s": single["raw_tokens_per_s"], "app_tokens_per_s": single["tokens_per_s"],
        "stream_overhead_ratio": single["stream_overhead_ratio"],
        "stream_overhead_ratio_plain_http": single["stream_overhead_ratio_plain_http"],
        "raw_ttft_ms": single["raw_ttft_s"] * 1000, "app_ttft_ms": single["ttft_s"] * 1000,
        "ttft_overhead_ms": single["ttft_overhead_s"] * 1000,
        "raw_many_rows_tokens_per_s": ceiling,
        "app_http_1_tokens_per_s": rates["http_1"], "app_http_many_tokens_per_s": rates[f"http_{many}"],
        "app_openai_1_tokens_per_s": rates["openai_1"], "app_openai_many_tokens_per_s": rates[f"openai_{many}"],
        "app_gradio_client_many_tokens_per_s": rates[f"gradio_client_{many}"],
        "concurrency_speedup": rates[f"http_{many}"] / rates["http_1"],
        "concurrency_of_raw_ceiling": rates[f"http_{many}"] / ceiling,
        "concurrency_of_raw_ceiling_openai": rates[f"openai_{many}"] / ceiling,
    }
    return numbers, {"single_client_repetitions": single["repetitions"], "rates": rates}


def transformers_serve_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """`transformers serve --continuous-batching` under the same N openai clients as the app's /v1/completions
    in the serving step (bench/run.py's comparison)."""
    from bench import run as bench_run

    device, model_dir = context["device"], context["model_dir"]
    say("starting transformers serve --continuous-batching")
    # On the CPU a small KV cache: by default it takes a share of the free RAM (12 GB seen on a 24 GB machine).
    extra = ("--cb-num-blocks", "64") if device == "cpu" else ()
    output = server_output(context, "transformers-serve")
    try:
        serve, base_url = bench_run.start_transformers_serve(model_dir, device, extra)
    except RuntimeError as error:
        raise RuntimeError(f"{error}; its output: {server_log_tail(output)}") from error
    say(f"serving at {base_url}; {context['clients']} openai clients")
    try:
        rate = bench_run.measure_serve_concurrent(base_url, model_dir, context["new_tokens"], context["clients"],
                                                  context["rounds"])
    except RuntimeError as error:
        raise RuntimeError(f"{error}; its output: {server_log_tail(output)}") from error
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    numbers: Numbers = {"clients": context["clients"], "serve_openai_many_tokens_per_s": rate}
    ours = context.get("results_so_far", {}).get("serving", {}).get("app_openai_many_tokens_per_s")
    if ours:
        numbers.update(app_openai_many_tokens_per_s=ours, vs_transformers_serve=ours / rate)
    return numbers, {"note": "ours is the serving step's app_openai_many_tokens_per_s (same client code)"
                     if ours else "the serving step gave no figure for ours: ratio not measured"}
