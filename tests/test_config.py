"""models.yaml validation: every kind of mistake is refused with the file, the entry and the field named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backend.core.config import load_config
from backend.core.types import ConfigError
from tests.conftest import ROOT


def registry_file(tmp_path: Path, models: list[dict], settings: dict | None = None) -> Path:
    path = tmp_path / "models.yaml"
    raw: dict = {"models": models}
    if settings is not None:
        raw["settings"] = settings
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def entry(**fields) -> dict:
    return {"id": "m1", "tasks": ["chat"], "source": "org/model", **fields}


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_the_shipped_registry_is_valid() -> None:
    config = load_config(ROOT / "models.yaml")
    tasks = {task for spec in config.models for task in spec.tasks}
    assert tasks == {"chat", "generate", "classify", "zero_shot", "ner", "question_answering", "fill_mask",
                     "summarize", "translate", "embed"}
    assert all(not spec.trust_remote_code for spec in config.models)


def test_unknown_field_names_file_entry_and_field(tmp_path: Path) -> None:
    message = refused(registry_file(tmp_path, [entry(temprature=0.5)]))
    assert str(tmp_path / "models.yaml") in message
    assert "entry 'm1' (models[0])" in message and "'temprature'" in message and "unknown field" in message


def test_duplicate_ids(tmp_path: Path) -> None:
    message = refused(registry_file(tmp_path, [entry(), entry(source="other/model")]))
    assert "entry 'm1' (models[1]), field 'id'" in message and "duplicate" in message


def test_missing_source(tmp_path: Path) -> None:
    bad = entry()
    del bad["source"]
    message = refused(registry_file(tmp_path, [bad]))
    assert "entry 'm1' (models[0]), field 'source'" in message and "missing" in message


def test_unknown_task_and_mixed_heads(tmp_path: Path) -> None:
    assert "field 'tasks" in refused(registry_file(tmp_path, [entry(tasks=["summarise"])]))
    mixed = refused(registry_file(tmp_path, [entry(tasks=["chat", "classify"])]))
    assert "field 'tasks'" in mixed and "second entry" in mixed


def test_task_the_checkpoint_cannot_do(tmp_path: Path, tiny_config) -> None:
    classifier_dir = str(tiny_config.spec("tiny-classifier").local_path())
    message = refused(registry_file(tmp_path, [entry(id="clf", tasks=["chat"], source=classifier_dir)]))
    assert "entry 'clf' (models[0]), field 'tasks'" in message and "ForCausalLM" in message
    not_nli = refused(registry_file(tmp_path, [entry(id="clf", tasks=["zero_shot"], source=classifier_dir)]))
    assert "entailment" in not_nli


def test_out_of_range_generation_default(tmp_path: Path) -> None:
    message = refused(registry_file(tmp_path, [entry(generation={"temperature": -1})]))
    assert "entry 'm1' (models[0]), field 'generation'" in message and "temperature" in message


def test_bad_values_of_each_field(tmp_path: Path) -> None:
    cases = {
        "dtype": entry(dtype="float8"),
        "device": entry(device="tpu"),
        "quantization": entry(quantization="3bit"),
        "max_context": entry(max_context=4),
        "trust_remote_code": entry(trust_remote_code="maybe"),
        "id": entry(id="has space"),
    }
    for field, bad in cases.items():
        assert f"field '{field}'" in refused(registry_file(tmp_path, [bad])), field


def test_bad_settings_and_file_level_errors(tmp_path: Path) -> None:
    assert "field 'settings.max_loaded_models'" in refused(
        registry_file(tmp_path, [entry()], settings={"max_loaded_models": 0}))
    assert "at least one model" in refused(registry_file(tmp_path, []))
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [\n  - id: x\n")
    assert "not valid YAML" in refused(broken)
    assert "file not found" in refused(tmp_path / "absent.yaml")
    top_list = tmp_path / "list.yaml"
    top_list.write_text("- id: x\n")
    assert "'models' list" in refused(top_list)


def test_relative_local_source_resolves_against_the_registry_file(tmp_path: Path, tiny_config) -> None:
    chat_dir = tiny_config.spec("tiny-chat").local_path()
    (tmp_path / "weights").symlink_to(chat_dir)
    config = load_config(registry_file(tmp_path, [entry(source="./weights")]))
    assert config.models[0].local_path() == tmp_path / "weights"


@pytest.mark.full
def test_app_refuses_to_start_on_a_bad_registry(tmp_path: Path) -> None:
    path = registry_file(tmp_path, [entry(temprature=0.5)])
    result = subprocess.run([sys.executable, "app.py", "--models", str(path), "--port", "7999"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "entry 'm1' (models[0]), field 'temprature'" in result.stderr


def test_remote_entries_need_a_base_url_and_only_generate(tmp_path: Path) -> None:
    remote = {"id": "r1", "tasks": ["chat"], "backend": "openai"}
    assert "field 'base_url'" in refused(registry_file(tmp_path, [remote]))
    assert "field 'tasks'" in refused(registry_file(tmp_path, [{**remote, "base_url": "http://x/v1",
                                                                "tasks": ["classify"]}]))
    assert "only for backend openai" in refused(registry_file(tmp_path, [entry(base_url="http://x/v1")]))
    assert "field 'api_key_env'" in refused(registry_file(tmp_path, [{**remote, "base_url": "http://x/v1",
                                                                      "api_key_env": "sk-not-a-name!"}]))
    config = load_config(registry_file(tmp_path, [{**remote, "base_url": "http://localhost:8000/v1",
                                                   "model": "served-name", "api_key_env": "MY_KEY"}]))
    assert config.models[0].remote_model == "served-name"
