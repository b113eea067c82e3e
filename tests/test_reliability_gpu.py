"""A real CUDA out-of-memory, during generation and during load (skipped without a CUDA GPU).

test_reliability_faults.py injects torch.OutOfMemoryError on CPU; this fills a real GPU until the allocator
refuses, then checks the same promises: a clear message, a consistent registry, and the next request works once
memory is free. Recorded in docs/RELIABILITY.md (run on an H200).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
# Alone, never beside another test, like the other reliability figures (the `alone` marker, pytest.ini).
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"), pytest.mark.alone]

CHAT = "tiny-chat"


def fill_gpu() -> list[Any]:
    """Allocates until CUDA refuses, in shrinking chunks, so almost nothing is left."""
    hog = []
    for size in (2**30, 2**26, 2**20, 2**16):
        while True:
            try:
                hog.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    return hog


def test_real_cuda_out_of_memory_while_generating_and_loading(tiny_models_yaml: Path, tmp_path: Path) -> None:
    from backend.services import generation as service
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import Final, GenerationError, GenerationParams, ModelLoadError
    from tests.app_process import models_yaml_variant, record_figures

    def on_gpu(config: dict[str, Any]) -> None:
        config["models"] = [{**next(e for e in config["models"] if e["id"] == CHAT), "device": "cuda:0"}]

    registry = Registry(load_config(models_yaml_variant(tiny_models_yaml, tmp_path / "models.yaml", on_gpu)),
                        create_engine)
    short = GenerationParams(max_new_tokens=16, temperature=0)

    def reply(prompt: str = "Hello", params: GenerationParams = short) -> Final:
        return [event for event in service.stream_chat(registry, CHAT, prompt, params=params)][-1]

    hog: list[Any] = []
    try:
        assert reply().stats.generated_tokens == 16
        hog += fill_gpu()
        with pytest.raises(GenerationError, match="out of memory while generating") as generating:
            reply("Once upon a time " * 20, GenerationParams(max_new_tokens=200, temperature=0))
        status = registry.status_of(CHAT)
        assert (status.state, status.active_requests) == ("loaded", 0)

        registry.unload(CHAT)
        hog += fill_gpu()  # unloading gave the weights' memory back: take that too
        with pytest.raises(ModelLoadError, match="out of memory while loading") as loading:
            reply()
        status = registry.status_of(CHAT)
        assert (status.state, status.active_requests) == ("failed", 0)

        hog.clear()
        torch.cuda.empty_cache()
        assert reply().stats.generated_tokens == 16
        assert registry.status_of(CHAT).state == "loaded"
        record_figures("gpu_oom", {"gpu": torch.cuda.get_device_name(0), "generating": str(generating.value),
                                   "loading": str(loading.value)})
    finally:
        hog.clear()
        registry.close()
        torch.cuda.empty_cache()
