"""The live registry on real tiny models: adding or removing a model bumps the version and tells subscribers; a
removed model's running request finishes and its weights are let go; the one source of models (models.yaml plus
the runs' overlay) and a served registry following the overlay file; pickers keep a value while it is valid."""

from __future__ import annotations

import time

import pytest
import yaml

from backend.services import generation as service
from backend.core.config import ModelSpec
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.registry_source import OverlayFollower, open_registry, registry_config
from backend.training import overlay
from backend.core.types import Delta, Final, GenerationParams, ModelNotFoundError
from ui.common.registry_sync import kept_value

GREEDY = GenerationParams(max_new_tokens=8, temperature=0.0)


def copy_of(registry: Registry, model_id: str, new_id: str) -> ModelSpec:
    """Another entry over the same weights (what a registered fine-tuned model looks like to the registry)."""
    spec = registry.spec(model_id)
    return ModelSpec(**{**spec.model_dump(exclude={"base_dir"}), "id": new_id, "name": new_id,
                        "source": str(spec.local_path())})


def test_add_and_remove_bump_the_version_and_notify(registry: Registry) -> None:
    seen: list[int] = []
    unsubscribe = registry.subscribe(seen.append)
    start = registry.version
    registry.add(copy_of(registry, "tiny-chat", "chat-two"))
    assert registry.version == start + 1 and seen == [start + 1]
    assert "chat-two" in registry.ids("chat") and registry.spec("chat-two", "chat").name == "chat-two"
    assert registry.config.models[-1].id == "chat-two"
    registry.remove("chat-two")
    assert registry.version == start + 2 and seen == [start + 1, start + 2]
    assert "chat-two" not in registry.ids() and all(spec.id != "chat-two" for spec in registry.config.models)
    with pytest.raises(ModelNotFoundError, match="chat-two"):
        registry.spec("chat-two")
    with pytest.raises(ValueError, match="already"):
        registry.add(copy_of(registry, "tiny-chat", "tiny-classifier"))
    assert registry.version == start + 2  # a refused add changes nothing
    unsubscribe()
    registry.add(copy_of(registry, "tiny-chat", "chat-three"))
    assert seen == [start + 1, start + 2]


def test_a_listener_that_fails_does_not_stop_the_change(registry: Registry) -> None:
    def broken(version: int) -> None:
        raise RuntimeError("listener bug")

    seen: list[int] = []
    registry.subscribe(broken)
    registry.subscribe(seen.append)
    registry.add(copy_of(registry, "tiny-chat", "chat-two"))
    assert seen == [registry.version] and "chat-two" in registry.ids()


def test_removing_a_model_in_use_lets_its_stream_finish_then_unloads(registry: Registry) -> None:
    registry.add(copy_of(registry, "tiny-chat", "chat-two"))
    stream = service.stream_chat(registry, "chat-two", "hello", params=GREEDY)
    first = next(stream)  # loaded, leased, generating
    registry.remove("chat-two")
    events = [first, *stream]  # the request that was running completes on the removed model
    final = events[-1]
    assert isinstance(final, Final) and final.stats.generated_tokens >= 1 and final.stats.error is None
    assert final.text == "".join(event.text for event in events if isinstance(event, Delta))
    assert "chat-two" not in [status.id for status in registry.status()]
    with pytest.raises(ModelNotFoundError):
        list(service.stream_chat(registry, "chat-two", "hello", params=GREEDY))


def test_every_command_reads_models_yaml_plus_the_overlay(tiny_models_yaml, tmp_path) -> None:
    runs = tmp_path / "runs"
    base = registry_config(tiny_models_yaml, runs)
    chat = next(spec for spec in base.models if spec.id == "tiny-chat")
    entry = {**chat.model_dump(mode="json", exclude={"base_dir"}), "id": "tuned-chat",
             "source": str(chat.local_path())}
    overlay.add_entry(entry, runs)
    assert [spec.id for spec in registry_config(tiny_models_yaml, runs).models] == \
        [spec.id for spec in base.models] + ["tuned-chat"]
    registry = open_registry(tiny_models_yaml, runs, engine_factory=create_engine)
    try:
        assert registry.spec("tuned-chat", "chat").local_path() == chat.local_path()
    finally:
        registry.close()


def test_a_served_registry_follows_the_overlay_file(tiny_models_yaml, tmp_path) -> None:
    runs = tmp_path / "runs"
    registry = open_registry(tiny_models_yaml, runs, engine_factory=create_engine)
    follower = OverlayFollower(registry, registry_config(tiny_models_yaml), runs)
    try:
        chat = registry.spec("tiny-chat")
        entry = {**chat.model_dump(mode="json", exclude={"base_dir"}), "source": str(chat.local_path())}
        assert not follower.sync()  # no file yet: nothing to do
        overlay.add_entry({**entry, "id": "from-cli"}, runs)
        version = registry.version
        assert follower.sync() and "from-cli" in registry.ids("chat") and registry.version == version + 1
        assert not follower.sync()  # the file did not change since
        # An entry whose id models.yaml has is left out; models.yaml's entry stays as it is.
        overlay.add_entry({**entry, "id": "tiny-classifier"}, runs)
        follower.sync()
        assert registry.spec("tiny-classifier").tasks == ("classify",)
        # Entries that leave the file leave the registry; models.yaml's never do.
        path = overlay.overlay_path(runs)
        time.sleep(0.01)  # a new modification time even on coarse clocks
        path.write_text(yaml.safe_dump({"models": []}))
        assert follower.sync() and "from-cli" not in registry.ids()
        assert {"tiny-chat", "tiny-classifier"} <= registry.ids()
    finally:
        registry.close()


def test_a_picker_keeps_its_value_while_it_is_a_choice() -> None:
    choices = [("Tiny chat", "tiny-chat"), ("Tuned", "tuned")]
    assert kept_value("tuned", choices) == "tuned"
    assert kept_value("gone", choices) == "tiny-chat"
    assert kept_value("gone", choices, index=1) == "tuned"
    assert kept_value("gone", choices, index=5) == "tuned"
    assert kept_value("gone", []) is None
    assert kept_value(["gone", "tuned"], choices, multiselect=True) == ["tuned"]
    assert kept_value("none", ["none", "tiny-chat"]) == "none"
