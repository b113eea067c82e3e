""""Compare with base" from the Train tab: a finished run -> the Evaluate form's values (ui/evaluate/prefill.py).

Tiny real model folders (built locally) stand in for the run's model and its base; nothing is loaded: the mapping
reads the run's config.yaml, metrics and the models' config.json only. The click itself is in the browser loop
(tests/browser/test_train_browser.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator, Optional

import gradio as gr
import pandas as pd
import pytest
import yaml

from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.registry_source import open_registry
from backend.core.types import InvalidInputError
from backend.training.config import TrainConfig, save_train_config
from backend.training.runs import RunInfo
from ui.evaluate.prefill import EvalPrefill, prefill_for_run, prefill_updates
from ui.evaluate.tab import EvaluateTab


def _value(update: object, key: str = "value") -> object:
    """A component's value (or another property) in an update: a dict, a component, or the plain value."""
    if isinstance(update, dict):
        return update.get(key)
    return getattr(update, key) if isinstance(update, gr.blocks.Block) else update


@pytest.fixture
def runs(tiny_models_yaml: Path, tmp_path: Path) -> Iterator[tuple[Registry, Path]]:
    """A registry with tiny-chat and tiny-classifier as bases, tiny-nli (other labels), and two finished runs'
    models: `dpo-ft` (trained from tiny-chat) and `cls-ft` (trained from tiny-classifier)."""
    tiny = {entry["id"]: entry for entry in yaml.safe_load(tiny_models_yaml.read_text())["models"]}
    entries = list(tiny.values())
    for run, base in (("dpo-run", "tiny-chat"), ("cls-run", "tiny-classifier")):
        shutil.copytree(tiny[base]["source"], tmp_path / run / "model")
        entries.append({**tiny[base], "id": run.replace("-run", "-ft"), "source": str(tmp_path / run / "model")})
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    registry = open_registry(models, runs_root=tmp_path / "no-overlay", engine_factory=create_engine)
    yield registry, tmp_path
    registry.close()


def _run(root: Path, name: str, config: TrainConfig, status: str = "completed",
         registered: Optional[str] = None) -> tuple[RunInfo, TrainConfig]:
    save_train_config(config, root / name / "config.yaml")
    return RunInfo(run_id=name, run_dir=root / name, status=status, task=config.task,
                   registered_as=registered), config


def _dpo(root: Path, validation: Optional[Path]) -> TrainConfig:
    data = root / "pref.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "chosen": "hello", "rejected": "no"}) + "\n", encoding="utf-8")
    return TrainConfig(task="dpo", base="tiny", base_id="tiny-chat", data=str(data),
                       validation=str(validation) if validation else None, prompt_column="prompt",
                       chosen_column="chosen", rejected_column="rejected")


def test_a_dpo_run_with_its_validation_file_is_compared_on_it_at_once(runs: tuple[Registry, Path]) -> None:
    registry, root = runs
    validation = root / "val.csv"
    pd.DataFrame({"prompt": ["a", "b"], "chosen": ["x", "y"], "rejected": ["p", "q"]}).to_csv(validation, index=False)
    prefill = prefill_for_run(registry, *_run(root, "dpo-run", _dpo(root, validation), registered="dpo-ft"))
    assert prefill == EvalPrefill(run_id="dpo-run", model="dpo-ft", base="tiny-chat", task="generation",
                                  data=str(validation), input_column="prompt", reference_column="chosen")
    assert prefill.ready

    with gr.Blocks():
        tab = EvaluateTab.build(registry, runs_dir=root / "eval-runs")
    updates = prefill_updates(tab, prefill)
    assert updates[tab.form.task] == "generation"
    assert updates[tab.judge.with_base] is True
    assert _value(updates[tab.form.models]) == ["dpo-ft"]
    assert _value(updates[tab.form.input_col]) == "prompt"
    assert _value(updates[tab.form.reference_col]) == "chosen"
    assert updates[tab.form.source]["path"] == str(validation)
    assert "`dpo-ft` (run dpo-run) with its base `tiny-chat`" in updates[tab.data.info]
    assert _value(updates[tab.compare.box], "visible") is False  # the last run's comparison is not left on show


def test_without_a_validation_file_the_data_is_left_to_the_user(runs: tuple[Registry, Path]) -> None:
    registry, root = runs
    prefill = prefill_for_run(registry, *_run(root, "dpo-run", _dpo(root, None), registered="dpo-ft"))
    assert prefill.data is None and not prefill.ready
    with gr.Blocks():
        tab = EvaluateTab.build(registry, runs_dir=root / "eval-runs")
    updates = prefill_updates(tab, prefill)
    assert updates[tab.form.source] is None
    assert updates[tab.judge.with_base] is True
    assert "pick the data to evaluate on" in updates[tab.data.info]


def test_an_unfinished_or_unregistered_run_is_refused(runs: tuple[Registry, Path]) -> None:
    registry, root = runs
    for status, registered, code in (("running", "dpo-ft", "compare_run_unfinished"),
                                     ("completed", None, "compare_run_unregistered"),
                                     ("completed", "no-such-model", "compare_run_unregistered")):
        with pytest.raises(InvalidInputError) as refused:
            prefill_for_run(registry, *_run(root, "dpo-run", _dpo(root, None), status, registered))
        assert refused.value.code == code


def test_a_classifier_is_compared_only_with_a_base_of_the_same_labels(runs: tuple[Registry, Path]) -> None:
    registry, root = runs
    data = root / "cls.csv"
    pd.DataFrame({"text": ["good", "bad"], "label": ["positive", "negative"]}).to_csv(data, index=False)
    config = TrainConfig(task="classification", base="tiny", base_id="tiny-classifier", data=str(data),
                         validation=str(data), text_column="text", label_column="label")
    prefill = prefill_for_run(registry, *_run(root, "cls-run", config, registered="cls-ft"))
    assert (prefill.task, prefill.base, prefill.input_column, prefill.reference_column) == (
        "classification", "tiny-classifier", "text", "label")
    # The same run recorded as trained from the NLI model, whose labels are others: refused, saying why.
    other = config.model_copy(update={"base_id": "tiny-nli"})
    with pytest.raises(InvalidInputError) as refused:
        prefill_for_run(registry, *_run(root, "cls-run", other, registered="cls-ft"))
    assert refused.value.code == "compare_labels_differ"
    assert "tiny-nli" in str(refused.value)
