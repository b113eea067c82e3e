"""Batched against one-by-one classification on the same rows, through the real service.

    python bench/classify_batching.py [--rows 512] [--batch-size 32] [--out results.json]

Models (built offline in a temp dir, random weights; speed does not depend on what the weights say):
- tiny-classifier: the 2-layer BERT from the tests (~0.1M parameters): overhead-bound.
- bert-15m: an 8-layer, 384-wide BERT classifier (~15M parameters), where compute matters.
- tiny-chat (LLM as classifier, 3 labels): label-continuation scoring, several texts per forward pass.
- llama-12m (LLM as classifier, 3 labels): a 6-layer, 384-wide Llama (~12M parameters), where compute matters.

For each: a warm-up (loads the model), then the same rows with batch_size 1 and with --batch-size; prints texts/s
and the speed-up, checks that both give the same scores (within 1e-5), and writes everything as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from backend.services import classification as clf  # noqa: E402
from tests import tiny_models  # noqa: E402

LLM_LABELS = ["positive", "negative", "neutral"]


def build_registry(folder: Path, device: str) -> Any:
    """The tests' tiny models plus a ~15M-parameter BERT classifier, all on `device`."""
    import yaml

    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine

    yaml_path = tiny_models.build_tiny_models(folder / "tiny")
    build_bert_15m(folder / "bert-15m")
    build_llama_12m(folder / "llama-12m")
    raw = yaml.safe_load(yaml_path.read_text())
    raw["models"].append({"id": "bert-15m", "tasks": ["classify"], "source": str(folder / "bert-15m"),
                          "dtype": "float32", "device": device})
    raw["models"].append({"id": "llama-12m", "tasks": ["generate"], "source": str(folder / "llama-12m"),
                          "dtype": "float32", "device": device, "max_context": 512})
    for entry in raw["models"]:
        entry["device"] = device
    raw["settings"] = {"max_loaded_models": 4}
    path = folder / "bench-models.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return Registry(load_config(path), create_engine)


def build_bert_15m(model_dir: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    if (model_dir / "config.json").is_file():
        return
    tokenizer = tiny_models.make_classifier_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=8, num_attention_heads=6,
                        intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
                        pad_token_id=tokenizer.pad_token_id, id2label=dict(tiny_models.SENTIMENT_LABELS),
                        label2id={v: k for k, v in tiny_models.SENTIMENT_LABELS.items()})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    tiny_models.save_model_and_tokenizer(model, tokenizer, model_dir)


def build_llama_12m(model_dir: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (model_dir / "config.json").is_file():
        return
    tokenizer = tiny_models.make_chat_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                         num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    tiny_models.save_model_and_tokenizer(model, tokenizer, model_dir)


def make_rows(count: int, seed: int = 0) -> list[str]:
    """Texts of 1 to 6 corpus sentences (about 10 to 120 tokens): realistic spread, so padding costs something."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(tiny_models.CORPUS) for _ in range(rng.randint(1, 6))) for _ in range(count)]


def timed(registry: Any, model_id: str, rows: list[str], labels: Optional[list[str]], batch_size: int) -> tuple:
    started = time.perf_counter()
    result = clf.classify_texts(registry, model_id, rows, labels, batch_size=batch_size)
    return time.perf_counter() - started, result


def max_difference(first: Any, second: Any) -> float:
    worst = 0.0
    for a, b in zip(first.scores, second.scores):
        scores_b = {item.label: item.score for item in b}
        worst = max([worst] + [abs(item.score - scores_b[item.label]) for item in a])
    return worst


def bench_model(registry: Any, model_id: str, rows: list[str], labels: Optional[list[str]], batch_size: int,
                repeats: int) -> dict[str, Any]:
    clf.classify_texts(registry, model_id, rows[:batch_size], labels, batch_size=batch_size)  # load + warm up
    parameters = registry.status_of(model_id).parameters
    # Best of `repeats`: the least disturbed run is the closest to what the code costs.
    single_s, single = min((timed(registry, model_id, rows, labels, 1) for _ in range(repeats)), key=lambda r: r[0])
    batched_s, batched = min((timed(registry, model_id, rows, labels, batch_size) for _ in range(repeats)),
                             key=lambda r: r[0])
    return {
        "model": model_id,
        "mode": batched.mode,
        "parameters": parameters,
        "rows": len(rows),
        "batch_size": batch_size,
        "one_by_one_s": round(single_s, 3),
        "batched_s": round(batched_s, 3),
        "one_by_one_texts_per_s": round(len(rows) / single_s, 1),
        "batched_texts_per_s": round(len(rows) / batched_s, 1),
        "speedup": round(single_s / batched_s, 2),
        "max_score_difference": max_difference(single, batched),
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting; the fastest counts")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--models", default="tiny-classifier,bert-15m,tiny-chat,llama-12m",
                        help="comma-separated subset of tiny-classifier, bert-15m, tiny-chat, llama-12m")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    rows = make_rows(args.rows)
    results = []
    with tempfile.TemporaryDirectory(prefix="classify-bench-") as folder:
        registry = build_registry(Path(folder), args.device)
        try:
            for model_id in [name.strip() for name in args.models.split(",") if name.strip()]:
                labels = LLM_LABELS if model_id in ("tiny-chat", "llama-12m") else None
                entry = bench_model(registry, model_id, rows, labels, args.batch_size, args.repeats)
                results.append(entry)
                print(f"{model_id:16s} {entry['mode']:10s} {entry['parameters'] or 0:>11,} params  "
                      f"one-by-one {entry['one_by_one_texts_per_s']:8.1f} texts/s  "
                      f"batched({args.batch_size}) {entry['batched_texts_per_s']:8.1f} texts/s  "
                      f"speed-up x{entry['speedup']:.2f}  max |diff| {entry['max_score_difference']:.1e}",
                      flush=True)
        finally:
            registry.close()
    report = {
        "benchmark": "classify_batching",
        "command": " ".join([Path(sys.argv[0]).as_posix()] + (argv if argv is not None else sys.argv[1:])),
        "rows": args.rows,
        "batch_size": args.batch_size,
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        # Other work on the machine slows both runs; the ratio is what to compare across machines.
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    worst = max((entry["max_score_difference"] for entry in results), default=0.0)
    if worst > 1e-5:
        print(f"error: batched and one-by-one scores differ by {worst:.2e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
