"""The recipe for a new pipeline task works end to end: a toy task (tests/toy_task.py, one module) registered in
the task table is accepted by models.yaml validation, loaded by the engine layer, served by the service, run over
a file, and passes the whole task contract like the built-in tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import pytest
import yaml

from backend.core.config import load_config
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.tasks.table import registered
from backend.core.types import ConfigError
from tests.task_contract import TaskContract
from tests.toy_task import SPEC


def write_models(folder: Path, source: Path) -> Path:
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [{"id": "tiny-counter", "tasks": ["token_count"], "source": str(source),
                                                "dtype": "float32", "device": "cpu"}]}))
    return path


@pytest.fixture(scope="module")
def counter_registry(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    models = write_models(tmp_path_factory.mktemp("toy-task"), tiny_models_yaml.parent / "tiny-embed")
    with pytest.raises(ConfigError, match="field 'tasks.0': Input should be 'chat'.* or 'embed'"):
        load_config(models)  # before the task is registered, models.yaml does not know it
    with registered(SPEC):
        registry = Registry(load_config(models), create_engine)
        try:
            yield registry
        finally:
            registry.close()


class TestTokenCount(TaskContract):
    task = "token_count"
    model_id = "tiny-counter"
    texts = ("The cat sat on the mat.", "Prices rose 3.5% in March, and again in April.")
    options = {"special_tokens": True}
    bad_options = (({"special_tokens": "yes"}, "special_tokens"),)

    @pytest.fixture
    def task_registry(self, counter_registry: Registry) -> Registry:
        return counter_registry

    @pytest.fixture(autouse=True)
    def _tokenizer(self, counter_registry: Registry) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(counter_registry.spec(self.model_id).source)

    def check_result(self, text: str, question: Optional[str], result: int) -> None:
        assert isinstance(result, int) and result == len(self.tokenizer(text)["input_ids"])


def test_the_toy_task_counts_what_the_tokenizer_counts(counter_registry: Registry, tiny_models_yaml: Path) -> None:
    from transformers import AutoTokenizer

    from backend.tasks import service

    tokenizer = AutoTokenizer.from_pretrained(tiny_models_yaml.parent / "tiny-embed")
    texts = ["One.", "A somewhat longer sentence than the first one."]
    assert service.run_task(counter_registry, "tiny-counter", "token_count", texts) == \
        [len(tokenizer(text)["input_ids"]) for text in texts]
    assert service.run_task(counter_registry, "tiny-counter", "token_count", texts, special_tokens=False) == \
        [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    assert "counts tokens" in counter_registry.status_of("tiny-counter").notes


def test_a_task_without_a_view_has_no_sub_tab_and_breaks_nothing(counter_registry: Registry) -> None:
    import ui.tasks

    assert not ui.tasks.has_tasks(counter_registry)  # the toy task has no view: the Tasks tab is not shown
