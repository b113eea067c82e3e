"""The recipe for a new engine works end to end: a toy engine (tests/toy_engine.py, one module: `backend: reverse`
streams the prompt back reversed) put in the engine table is accepted by models.yaml validation, loaded by
`create_engine` through the registry, served by the service, and passes the whole engine contract like the built-in
engines. In process, no weights, no server: the fast tier."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import yaml

from backend.core.config import load_config, parse_config
from backend.core.registry import Registry
from backend.core.types import ConfigError, GenerationParams
from backend.engines import create_engine, engine_name, probe
from backend.engines.table import BUILT_IN, EngineKind, backends, imported, register, registered, runtimes
from backend.services import generation as service
from tests.engine_contract import EngineContract
from tests.toy_engine import KIND, ReverseEngine

GREEDY = GenerationParams(max_new_tokens=12, temperature=0.0)
ENTRY = {"id": "toy-reverse", "name": "Reverse", "tasks": ["chat", "generate"], "backend": "reverse",
         "max_context": 512}


def write_models(folder: Path) -> Path:
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [ENTRY]}))
    return path


@pytest.fixture(scope="module")
def reverse_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    models = write_models(tmp_path_factory.mktemp("toy-engine"))
    with pytest.raises(ConfigError, match="field 'backend': Input should be 'transformers' or 'openai'"):
        load_config(models)  # before the engine is in the table, models.yaml does not know it
    with registered(KIND):
        registry = Registry(load_config(models), create_engine)
        try:
            yield registry
        finally:
            registry.close()


def test_the_table_lists_the_toy_engine_only_while_it_is_registered() -> None:
    assert "reverse" not in backends()
    with registered(KIND):
        assert backends() == ("transformers", "openai", "reverse")
        assert "reverse" not in runtimes()
        with pytest.raises(ValueError, match="registered already"):
            register(EngineKind("reverse", "backend", "tests.toy_engine:other"))
    assert "reverse" not in backends()


def test_every_engine_in_the_table_names_a_factory_that_imports() -> None:
    for kind in BUILT_IN:
        assert callable(imported(kind.factory)), kind.name
        assert kind.probe is None or callable(imported(kind.probe)), kind.name
    with pytest.raises(AttributeError):
        imported("tests.toy_engine:ReverseEngine.missing")


def test_validation_applies_the_tasks_the_table_gives_the_engine() -> None:
    with registered(KIND):
        with pytest.raises(ConfigError, match="field 'tasks': backend reverse serves chat and generate only"):
            parse_config({"models": [{**ENTRY, "tasks": ["classify"]}]}, Path("models.yaml"))
        with pytest.raises(ConfigError, match="field 'quantization'|quantization / trust_remote_code"):
            parse_config({"models": [{**ENTRY, "quantization": "8bit"}]}, Path("models.yaml"))


def test_the_registry_serves_the_toy_engine_through_the_service(reverse_registry: Registry) -> None:
    spec = reverse_registry.spec("toy-reverse")
    assert engine_name(spec) == "reverse"
    assert reverse_registry.status_of("toy-reverse").state == "unloaded"  # nothing loads at start-up
    events = list(service.stream_generate(reverse_registry, "toy-reverse", "stressed", GREEDY))
    assert events[-1].text == "desserts" + "dess"  # 12 characters: round again
    status = reverse_registry.status_of("toy-reverse")
    assert status.state == "loaded" and status.backend == "reverse"
    assert "streams the prompt back reversed" in status.notes
    reply = list(service.stream_chat(reverse_registry, "toy-reverse", "olleh", [], GenerationParams(
        max_new_tokens=5, temperature=0.0)))
    assert reply[-1].text == "hello"
    assert probe(spec) == (True, "backend reverse: nothing to probe")


def test_create_engine_loads_it_from_its_import_path(reverse_registry: Registry) -> None:
    engine = create_engine(reverse_registry.spec("toy-reverse"))
    assert isinstance(engine, ReverseEngine) and engine.max_context == 512


@pytest.fixture(scope="module")
def engine(reverse_registry: Registry) -> Iterator[Any]:
    with reverse_registry.lease("toy-reverse") as leased:
        yield leased


class TestReverseEngineContract(EngineContract):
    @contextmanager
    def failing_generation(self, engine: Any) -> Iterator[None]:
        # The toy's "forward pass" fails on its third call, as a model's would.
        original = engine.step
        calls = {"n": 0}

        def failing_step(*args: Any) -> str:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("injected failure in the step")
            return original(*args)

        engine.step = failing_step
        try:
            yield
        finally:
            engine.step = original

    def tokens_generated_so_far(self, engine: Any) -> Optional[int]:
        return None  # a generator in the caller's thread: nothing runs after close, nothing to count

