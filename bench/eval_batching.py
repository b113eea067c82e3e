"""Batched evaluation vs a per-example loop, on the same data, models and code path.

    python bench/eval_batching.py [--examples 32] [--batch-size 8] [--max-new-tokens 32] [--repeat 1] [--out F.json]

Builds (offline, in a temporary folder) tiny-chat from tests/tiny_models.py and a ~20M-parameter random Llama
that uses tiny-chat's tokenizer, then times `run_evaluation` for generation (greedy) and perplexity with
--batch-size B against batch size 1, i.e. one example per `generate` / forward call. Model loading is outside
the timings (each model is loaded first). Also checks that batched and per-example greedy outputs are identical.
Prints one line per model and task with the speed-up ratio; --out writes the figures as JSON. With --repeat R
each timing is the best of R alternating rounds (a shared machine adds noise, never speed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LLAMA_20M_ID = "llama-20m"


def build_llama_20m(tokenizer_dir: Path, out_dir: Path) -> int:
    """A random LlamaForCausalLM of about 20M parameters with tiny-chat's tokenizer; returns its parameter count."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import save_model_and_tokenizer, silence_special_token_logits

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1536, num_hidden_layers=6,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(20)
    model = LlamaForCausalLM(config).eval()
    # As for tiny-chat: never pick eos or a role marker, so every example generates exactly max_new_tokens.
    silence_special_token_logits(model, [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens])
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    save_model_and_tokenizer(model, tokenizer, out_dir)
    return model.num_parameters()


def write_registry(work: Path, tiny_yaml: Path, llama_dir: Path) -> Path:
    import yaml

    config = yaml.safe_load(tiny_yaml.read_text(encoding="utf-8"))
    chat = next(entry for entry in config["models"] if entry["id"] == "tiny-chat")
    config["models"] = [chat, {"id": LLAMA_20M_ID, "tasks": ["generate"], "source": str(llama_dir),
                               "dtype": "float32", "device": "cpu"}]
    path = work / "bench-models.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def write_data(work: Path, count: int) -> Path:
    """Prompts of varied length (1 to ~40 words) from the tiny models' corpus, with references."""
    import pandas as pd

    from tests.tiny_models import CORPUS

    rows = []
    for index in range(count):
        words = CORPUS[index % len(CORPUS)].split()
        cut = 1 + (index * 7) % len(words)
        rows.append({"text": " ".join(words[:cut]), "reference": " ".join(words[cut:]) or words[-1]})
    path = work / "bench-data.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def time_pair(registry: Any, batched: Any, single: Any, repeat: int) -> tuple[float, Any, float, Any]:
    """Best wall times of `repeat` rounds, batched and per-example alternating (so that a busy spell on a
    shared machine does not land on one side only); returns (batched_s, batched_run, single_s, single_run)."""
    from backend.evaluation.runner import run_evaluation

    best = {"batched": float("inf"), "single": float("inf")}
    runs: dict[str, Any] = {}
    for _ in range(repeat):
        for name, config in (("batched", batched), ("single", single)):
            started = time.perf_counter()
            runs[name] = run_evaluation(config, registry, runs_dir=None)
            best[name] = min(best[name], time.perf_counter() - started)
    return best["batched"], runs["batched"], best["single"], runs["single"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="time each run this many times, keep the best")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()

    import torch

    from backend.core.config import load_config
    from backend.evaluation.data import ColumnMapping, DataSource
    from backend.evaluation.types import EvalConfig
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from tests.tiny_models import CHAT_ID, build_tiny_models

    with tempfile.TemporaryDirectory(prefix="eval-bench-") as folder:
        work = Path(folder)
        tiny_yaml = build_tiny_models(work / "tiny")
        parameters = build_llama_20m(work / "tiny" / CHAT_ID, work / LLAMA_20M_ID)
        registry = Registry(load_config(write_registry(work, tiny_yaml, work / LLAMA_20M_ID)), create_engine)
        data = write_data(work, args.examples)
        results = []
        try:
            for model_id in (CHAT_ID, LLAMA_20M_ID):
                registry.load(model_id)  # loading is not what is measured
                for task, columns in (("generation", ColumnMapping(input="text", reference="reference")),
                                      ("perplexity", ColumnMapping(input="text"))):
                    config = EvalConfig(task=task, data=DataSource(path=str(data)), columns=columns,
                                        models=(model_id,), max_new_tokens=args.max_new_tokens, bootstrap=0,
                                        chat_template=False, batch_size=args.batch_size)
                    warm_up = config.with_overrides(limit=2)  # first-call overheads (imports, metric loading)
                    time_pair(registry, warm_up, warm_up, 1)
                    batched_s, batched, single_s, single = time_pair(
                        registry, config, config.with_overrides(batch_size=1), args.repeat)
                    same = (batched.models[model_id].predictions == single.models[model_id].predictions
                            if task == "generation" else
                            abs(batched.models[model_id].metrics["perplexity"]
                                / single.models[model_id].metrics["perplexity"] - 1) < 1e-4)
                    row = {"model": model_id, "task": task, "examples": args.examples,
                           "batch_size": args.batch_size, "per_example_s": round(single_s, 3),
                           "batched_s": round(batched_s, 3), "speedup": round(single_s / batched_s, 2),
                           "identical_outputs": bool(same)}
                    results.append(row)
                    print(f"{model_id:>10} {task:>10}: per-example {single_s:7.2f}s, batch {args.batch_size} "
                          f"{batched_s:7.2f}s -> x{single_s / batched_s:.2f} (identical: {same})", flush=True)
        finally:
            registry.close()
    report = {"benchmark": "eval_batching", "command": " ".join(["python", *sys.argv]),
              "max_new_tokens": args.max_new_tokens, "repeat": args.repeat, "llama_20m_parameters": parameters,
              "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "results": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0 if all(row["identical_outputs"] for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
