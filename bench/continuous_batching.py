"""transformers' own continuous batching against the app's Batcher, same model, same requests, one process.

    python bench/continuous_batching.py --models-yaml Y --model-id bench-25m --out X.json [--new-tokens 32]

Run by `bench/run.py --continuous-batching` (which builds the models). Rounds alternate between the two ways,
so a busy spell of a shared machine does not land on one side only; medians are reported.

  batcher_N          N concurrent greedy streams through the engine (backend.services.generation.stream_generate, as the
                     app serves them: text decoding, stop matching, the Final event), aggregate tokens/s
  cb_generate_batch  `model.generate_batch` over the same N prompts (transformers' continuous batching with its
                     paged cache; no streaming, no per-request text), aggregate tokens/s
  batcher_1, cb_1    the same with one request (what batching gains over a lone request)

Both sides generate exactly --new-tokens per request (the bench model never emits EOS under greedy decoding).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "The history of the printing press begins"


def timed(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    tokens = run()
    return tokens / (time.perf_counter() - started)


def batcher_runner(registry: Any, model_id: str, new_tokens: int, clients: int) -> Callable[[], int]:
    from backend.services import generation as service
    from backend.core.types import GenerationParams

    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0)

    def run() -> int:
        counts = [0] * clients

        def one(index: int) -> None:
            for event in service.stream_generate(registry, model_id, PROMPT, params):
                final = event
            counts[index] = final.stats.generated_tokens  # type: ignore[union-attr]

        threads = [threading.Thread(target=one, args=(index,)) for index in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counts == [new_tokens] * clients, counts
        return sum(counts)

    return run


def cb_runner(model: Any, prompt_ids: list[int], new_tokens: int, clients: int, config: Any,
              cb_config: Any) -> Callable[[], int]:
    def run() -> int:
        outputs = model.generate_batch(inputs=[list(prompt_ids)] * clients, generation_config=config,
                                       continuous_batching_config=cb_config, warmup=False)
        counts = [len(output.generated_tokens) for output in outputs.values()]
        assert counts == [new_tokens] * clients, counts
        return sum(counts)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-yaml", required=True)
    parser.add_argument("--model-id", default="bench-25m")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer, ContinuousBatchingConfig, GenerationConfig

    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine

    config = load_config(Path(args.models_yaml))
    source = config.spec(args.model_id).local_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source).eval()
    generation = GenerationConfig(max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
    # A small paged cache (the default sizes it from free memory, gigabytes on a shared CPU machine).
    cb_config = ContinuousBatchingConfig(num_blocks=64, page_size=64)
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    registry = Registry(config, create_engine)
    ways = {
        f"batcher_{args.clients}": batcher_runner(registry, args.model_id, args.new_tokens, args.clients),
        f"cb_generate_batch_{args.clients}": cb_runner(model, prompt_ids, args.new_tokens, args.clients, generation,
                                                       cb_config),
        "batcher_1": batcher_runner(registry, args.model_id, args.new_tokens, 1),
        "cb_generate_batch_1": cb_runner(model, prompt_ids, args.new_tokens, 1, generation, cb_config),
    }
    rates: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for run in ways.values():  # load, warm up
            run()
        for round_index in range(args.rounds):
            for name, run in ways.items():
                rates[name].append(timed(run))
                print(f"round {round_index + 1} {name}: {rates[name][-1]:.1f} tokens/s", flush=True)
    finally:
        registry.close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    many = args.clients
    result = {
        "machine": {"platform": platform.platform()},
        "model": args.model_id, "new_tokens": args.new_tokens, "clients": many, "rounds": args.rounds,
        "tokens_per_s": medians, "per_round": rates,
        f"cb_vs_batcher_{many}": medians[f"cb_generate_batch_{many}"] / medians[f"batcher_{many}"],
        "cb_vs_batcher_1": medians["cb_generate_batch_1"] / medians["batcher_1"],
        f"batcher_speedup_{many}": medians[f"batcher_{many}"] / medians["batcher_1"],
        f"cb_speedup_{many}": medians[f"cb_generate_batch_{many}"] / medians["cb_generate_batch_1"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({key: value for key, value in result.items() if key != "per_round"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
