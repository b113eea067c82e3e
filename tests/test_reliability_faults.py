"""Faults: damaged weights, a load that fails then works, out of memory while loading and while generating.

Each fault is injected into a real tiny model (damaged files on disk, or torch.OutOfMemoryError raised from the
real `from_pretrained` / `forward` via monkeypatch). Each must give a clear message, leave the registry
consistent (state, active_requests 0) and let the next request work; the other models keep serving throughout.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from backend.services import generation as service
from backend.core.config import load_config
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.types import GenerationError, GenerationParams, ModelLoadError
from tests.app_process import models_yaml_variant, record_figures
from ui.common.components import collect

# Reliability figures (docs/RELIABILITY.md): alone, never beside another test (the `alone` marker, pytest.ini).
pytestmark = pytest.mark.alone

CHAT, CLASSIFIER, BROKEN = "tiny-chat", "tiny-classifier", "broken-chat"
SHORT = GenerationParams(max_new_tokens=6, temperature=0)


@pytest.fixture
def broken_setup(tiny_models_yaml: Path, tmp_path: Path) -> Iterator[tuple[Registry, Path]]:
    """The tiny models plus `broken-chat`: a copy of tiny-chat's folder whose weights a test damages."""
    folder = tmp_path / BROKEN
    shutil.copytree(tiny_models_yaml.parent / CHAT, folder)

    def change(config: dict[str, Any]) -> None:
        chat = next(entry for entry in config["models"] if entry["id"] == CHAT)
        config["models"].append({**chat, "id": BROKEN, "source": str(folder)})

    registry = Registry(load_config(models_yaml_variant(tiny_models_yaml, tmp_path / "models.yaml", change)),
                        create_engine)
    yield registry, folder
    registry.close()


def reply(registry: Registry, model: str = CHAT) -> str:
    return collect(service.stream_chat(registry, model, "Hello", params=SHORT)).text


def assert_consistent(registry: Registry, model: str, state: str) -> None:
    status = registry.status_of(model)
    assert status.state == state and status.active_requests == 0, status
    assert registry._slots[model].leases == 0 and registry._slots[model].loading is None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_weights_give_a_clear_error_and_the_other_models_keep_serving(broken_setup, damage: str) -> None:
    registry, folder = broken_setup
    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes({"garbage": b"\x00not safetensors\x00" * 64, "truncated": original[: len(original) // 2],
                         "empty": b""}[damage])
    assert reply(registry) and reply(registry, CHAT)  # another model, loaded and serving

    with pytest.raises(ModelLoadError) as failed:
        reply(registry, BROKEN)
    message = str(failed.value)
    assert message.startswith(f"model '{BROKEN}': the weights of {folder} are damaged or incomplete"), message
    assert "download them again" in message
    assert_consistent(registry, BROKEN, "failed")
    assert registry.status_of(BROKEN).last_error == message
    # The others were never disturbed: still loaded, still answering, classifier loads fine too.
    assert reply(registry) and registry.status_of(CHAT).state == "loaded"
    assert collect_classify(registry)
    record_figures(f"fault_damaged_weights_{damage}", {"message": message})

    # Repaired on disk: the next request loads it (a failed load is retried, never cached as failed).
    weights.write_bytes(original)
    assert reply(registry, BROKEN)
    assert_consistent(registry, BROKEN, "loaded")


def collect_classify(registry: Registry) -> list[Any]:
    with registry.lease(CLASSIFIER, "classify") as engine:
        return engine.classify(["I loved it"])


def test_a_model_that_fails_to_load_is_retried_on_the_next_request(broken_setup, monkeypatch) -> None:
    registry, _ = broken_setup
    from backend.engines import local

    calls = {"n": 0}
    real = local.AutoModelForCausalLM.from_pretrained

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("Connection reset by peer while reading the weights")
        return real(*args, **kwargs)

    monkeypatch.setattr(local.AutoModelForCausalLM, "from_pretrained", flaky)
    with pytest.raises(ModelLoadError, match="could not load"):
        reply(registry)
    assert_consistent(registry, CHAT, "failed")
    assert reply(registry)  # the next request tries again, and works
    assert calls["n"] == 2 and registry.load_count(CHAT) == 1
    assert_consistent(registry, CHAT, "loaded")
    assert registry.status_of(CHAT).last_error is None


def test_out_of_memory_while_loading(broken_setup, monkeypatch) -> None:
    import torch

    from backend.engines import local

    registry, _ = broken_setup

    def oom(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr(local.AutoModelForCausalLM, "from_pretrained", oom)
        with pytest.raises(ModelLoadError) as failed:
            reply(registry)
    message = str(failed.value)
    assert "out of memory while loading" in message and "Unload other models" in message, message
    assert_consistent(registry, CHAT, "failed")
    record_figures("fault_oom_load", {"message": message, "state_after": registry.status_of(CHAT).state})
    assert reply(registry)
    assert_consistent(registry, CHAT, "loaded")


def test_out_of_memory_while_generating(registry: Registry, monkeypatch) -> None:
    """OOM inside `forward`, in the batch thread, with three requests sharing the batch: all three get the
    clear error at once (no hang), the model stays loaded, and the next request works."""
    import torch

    assert reply(registry)
    model = registry._slots[CHAT].engine.model

    def oom(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    errors: list[BaseException] = []

    def request(index: int) -> None:
        try:
            collect(service.stream_generate(registry, CHAT, f"Once {index}",
                                            GenerationParams(max_new_tokens=50, temperature=0)))
        except BaseException as error:  # noqa: BLE001 - collected for the assertions
            errors.append(error)

    with monkeypatch.context() as patch:
        patch.setattr(model, "forward", oom)
        threads = [threading.Thread(target=request, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung after the OOM"
    assert len(errors) == 3 and all(isinstance(error, GenerationError) for error in errors), errors
    message = str(errors[0])
    assert message.startswith(f"model '{CHAT}': out of memory while generating"), message
    assert "max_new_tokens" in message and "try again" in message
    assert_consistent(registry, CHAT, "loaded")
    record_figures("fault_oom_generate", {"message": message, "state_after": registry.status_of(CHAT).state,
                                          "active_requests_after": registry.status_of(CHAT).active_requests})
    assert reply(registry)  # forward restored: the next request works


def test_out_of_memory_reaches_the_ui_and_the_openai_api_as_the_same_message(registry: Registry,
                                                                              monkeypatch) -> None:
    import gradio as gr
    import torch
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from backend.api import add_openai_routes
    from ui.common.components import handle_errors

    assert reply(registry)
    monkeypatch.setattr(registry._slots[CHAT].engine.model, "forward",
                        lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("out of memory")))

    @handle_errors
    def ui_handler() -> Iterator[str]:
        yield from (state.text for state in [collect(service.stream_chat(registry, CHAT, "Hi", params=SHORT))])

    with pytest.raises(gr.Error, match="out of memory while generating"):
        list(ui_handler())
    app = FastAPI()
    add_openai_routes(app, registry)
    with TestClient(app) as http:
        answer = http.post("/v1/chat/completions", json={"model": CHAT, "max_tokens": 4,
                                                         "messages": [{"role": "user", "content": "Hi"}]})
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "generation_failed"
    assert "out of memory while generating" in answer.json()["error"]["message"]
    assert registry.status_of(CHAT).active_requests == 0
