"""Training plans without training: config and dataset errors name the field before anything runs, the SFT
preview marks exactly the assistant tokens, length statistics count truncation, memory is estimated from the
real parameter counts, and the overlay / launch command / adapter field behave."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.training.config import parse_train_config
from backend.training.service import TrainingService
from backend.core.types import InvalidInputError
from tests.training_data import sentiment_rows, write_chat_jsonl, write_csv


@pytest.fixture
def service(registry, tmp_path):
    service = TrainingService(registry, root=tmp_path / "runs")
    yield service
    service.close()


def classification(service, data: Path, **extra):
    base, spec = service.resolve_base("tiny-classifier", "classification")
    return parse_train_config({"task": "classification", "base": base, "base_id": spec.id, "data": str(data),
                               "text_column": "text", "label_column": "label", **extra})


def test_config_errors_name_the_field():
    with pytest.raises(InvalidInputError, match="field 'label_column': required for classification"):
        parse_train_config({"task": "classification", "base": "x", "data": "d.csv", "text_column": "text"})
    with pytest.raises(InvalidInputError, match="field 'learning_rate'"):
        parse_train_config({"task": "sft", "base": "x", "data": "d.jsonl", "messages_column": "m",
                            "learning_rate": -1})
    with pytest.raises(InvalidInputError, match="field 'messages_column'"):
        parse_train_config({"task": "sft", "base": "x", "data": "d.jsonl"})
    with pytest.raises(InvalidInputError, match="field 'bacth_size': unknown field"):
        parse_train_config({"task": "sft", "base": "x", "data": "d.jsonl", "messages_column": "m",
                            "bacth_size": 4})
    with pytest.raises(InvalidInputError, match="field 'max_steps'"):  # bounded like epochs, not queued for ever
        parse_train_config({"task": "sft", "base": "x", "data": "d.jsonl", "messages_column": "m",
                            "max_steps": 10**12})


def test_bad_datasets_are_clear_errors_before_training(service, tmp_path):
    missing = write_csv(tmp_path / "missing.csv", [{"sentence": "a", "label": "x"}, {"sentence": "b", "label": "y"}])
    with pytest.raises(InvalidInputError, match=r"field 'text_column' \(data file\): there is no column 'text'"):
        service.start(classification(service, missing))
    one_class = write_csv(tmp_path / "one.csv", [{"text": f"t{i}", "label": "same"} for i in range(10)])
    with pytest.raises(InvalidInputError, match="field 'label_column': every row .* same label .*two classes"):
        service.start(classification(service, one_class))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="'empty.csv' is empty"):
        service.start(classification(service, empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    with pytest.raises(InvalidInputError, match="has a header but no rows"):
        service.start(classification(service, header_only))
    blank_label = write_csv(tmp_path / "blank.csv", sentiment_rows(10, 1) + [{"text": "x", "label": " "}])
    with pytest.raises(InvalidInputError, match="field 'label_column': 1 row.* no label .*row 11"):
        service.start(classification(service, blank_label))
    no_reply = tmp_path / "chat.jsonl"
    no_reply.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' * 3)
    base, _ = service.resolve_base("tiny-chat", "sft")
    with pytest.raises(InvalidInputError, match="field 'messages_column': row 1 of the data file has no assistant"):
        service.start(parse_train_config({"task": "sft", "base": base, "data": str(no_reply),
                                          "messages_column": "messages"}))
    with pytest.raises(InvalidInputError, match="field 'base': 'tiny-classifier' does classify; sft needs"):
        service.resolve_base("tiny-classifier", "sft")
    assert not list((tmp_path / "runs").rglob("config.yaml"))  # nothing was created, nothing started


def test_classification_plan_splits_stratified_and_previews(service, tmp_path):
    long_rows = [{"text": "loved " * 12, "label": "positive"}, {"text": "rude " * 12, "label": "negative"}]
    data = write_csv(tmp_path / "data.csv", sentiment_rows(50, 2) + long_rows)
    config = classification(service, data, max_length=9)
    plan = service.plan(config)
    assert (plan.train_examples, plan.val_examples) == (42, 10)
    assert plan.preview.label_counts == {"negative": 21, "positive": 21}  # stratified: 26/26 -> 21/21 + 5/5
    from transformers import AutoTokenizer

    from backend.training.recipes.classification import prepare_classification

    tokenizer = AutoTokenizer.from_pretrained(config.base)
    lengths = [len(tokenizer(text)["input_ids"]) for text in prepare_classification(config).train_texts]
    assert plan.preview.stats.truncated == sum(length > 9 for length in lengths) > 0
    assert plan.preview.stats.max == max(lengths)
    assert 0 < plan.memory.trainable < plan.memory.parameters  # LoRA (the default) plus the new head

def test_sft_preview_marks_assistant_tokens_and_counts_truncation(service, tmp_path):
    data = write_chat_jsonl(tmp_path / "chat.jsonl", copies=4)
    base, spec = service.resolve_base("tiny-chat", "sft")
    config = parse_train_config({"task": "sft", "base": base, "base_id": spec.id, "data": str(data),
                                 "messages_column": "messages", "max_length": 20})
    plan = service.plan(config)
    loss_text = "".join(text for text, loss in plan.preview.segments if loss)
    other_text = "".join(text for text, loss in plan.preview.segments if not loss)
    assert other_text.startswith("<|bos|><|user|>\n") and other_text.endswith("<|assistant|>\n")
    assert plan.preview.stats.truncated > 0 and plan.preview.stats.max_length == 20
    assert 0 < len(loss_text) and plan.memory.trainable < plan.memory.parameters / 2  # LoRA trains few
    assert plan.memory.total_bytes > plan.memory.weights_bytes > 0 and plan.memory.verdict == "fits"


def test_adapter_field_and_overlay_are_validated(tiny_models_yaml, tmp_path, capsys):
    import yaml

    from backend.core.config import load_config
    from backend.training import overlay
    from backend.core.types import ConfigError

    raw = yaml.safe_load(tiny_models_yaml.read_text())
    chat = next(entry for entry in raw["models"] if entry["id"] == "tiny-chat")
    raw["models"].append({**chat, "id": "tuned", "adapter": str(tmp_path)})  # a folder, but no adapter in it
    bad = tmp_path / "models.yaml"
    bad.write_text(yaml.safe_dump(raw))
    index = len(raw["models"]) - 1
    with pytest.raises(ConfigError,
                       match=rf"entry 'tuned' \(models\[{index}\]\), field 'adapter': .* \(no adapter_config"):
        load_config(bad)
    raw["models"][-1] = {"id": "tuned", "tasks": ["chat"], "backend": "openai", "base_url": "http://x/v1",
                         "adapter": "a"}
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="entry 'tuned'.*field 'adapter': only for backend transformers"):
        load_config(bad)

    config = load_config(tiny_models_yaml)
    runs = tmp_path / "runs"
    overlay.add_entry({**chat, "id": "gone", "source": str(tmp_path / "deleted-run" / "model")}, runs)
    overlay.add_entry({**chat, "id": "tiny-chat"}, runs)  # an id models.yaml already has: models.yaml wins
    overlay.add_entry({**chat, "id": "kept", "tasks": ["chat"]}, runs)
    merged = overlay.with_overlay(config, runs)
    assert [spec.id for spec in merged.models] == [spec.id for spec in config.models] + ["kept"]
    notes = capsys.readouterr().err
    assert "'gone' left out" in notes and "'tiny-chat' left out" in notes
    assert tiny_models_yaml.read_text() == yaml.safe_dump(yaml.safe_load(tiny_models_yaml.read_text()),
                                                          sort_keys=False, allow_unicode=True)


def test_launch_command_uses_accelerate_on_several_gpus(tmp_path):
    from backend.training.launch import worker_command

    config = parse_train_config({"task": "sft", "base": "b", "data": "d.jsonl", "messages_column": "m",
                                 "num_gpus": 4, "accelerate_config": "fsdp.yaml"})
    command = worker_command(config, tmp_path / "config.yaml", resume=True, python="python")
    assert command == ["python", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4",
                       "--config_file", "fsdp.yaml", "--module", "backend.training.worker", "--config",
                       str(tmp_path / "config.yaml"), "--resume"]
    single = worker_command(config.model_copy(update={"num_gpus": 1}), tmp_path / "config.yaml", python="python")
    assert single == ["python", "-m", "backend.training.worker", "--config", str(tmp_path / "config.yaml")]


def test_a_classifier_trains_from_a_plain_encoder_of_the_registry(service, tmp_path):
    """An encoder registered for `embed` (no classification head: a plain BertModel folder) is a valid base for a
    classifier: the plan reads the data and counts a new head's parameters; a chat model stays refused, and the
    refusal says which models do and that a folder works from the command line."""
    base, spec = service.resolve_base("tiny-embed", "classification")
    assert spec is not None and "classify" not in spec.tasks and (Path(base) / "config.json").is_file()
    data = write_csv(tmp_path / "train.csv", sentiment_rows(40, seed=1))
    config = parse_train_config({"task": "classification", "base": base, "base_id": spec.id, "data": str(data),
                                 "text_column": "text", "label_column": "label", "method": "full"})
    plan = service.plan(config)
    assert plan.train_examples > 0 and plan.memory.parameters > 0
    with pytest.raises(InvalidInputError, match=r"or an encoder: one that does embed.*--base also takes a model"):
        service.resolve_base("tiny-chat", "classification")
def test_a_new_recipe_in_the_table_is_a_task_everywhere(service, tmp_path, monkeypatch):
    """docs/TRAINING.md's "Adding a training task", kept true: a toy recipe (SFT on a column of replies to one
    fixed question) added to the table is accepted by the config, planned with its own data and preview, and gets
    its own card lines and registry tasks, with nothing else changed."""
    from backend.training.card import model_card
    from backend.training.recipes import RECIPES, ColumnField
    from backend.training.recipes.sft import SFTData, SFTRecipe

    class EchoRecipe(SFTRecipe):
        task = "echo"
        title = "echoing"
        columns = (ColumnField("response_column", ("reply",)),)

        def check_columns(self, config):
            if not config.response_column:
                raise ValueError("field 'response_column': required for echo")

        def prepare(self, config):
            from backend.training.data import load_tables, table_column

            replies = table_column(load_tables(config)[0], config.response_column, "response_column", "data")
            chats = [[{"role": "user", "content": "Say something."}, {"role": "assistant", "content": reply}]
                     for reply in replies]
            return SFTData(train=chats[1:], val=chats[:1])

        def card_data_lines(self, config):
            return [f"- replies: column `{config.response_column}`"]

    monkeypatch.setitem(RECIPES, "echo", EchoRecipe())
    data = write_csv(tmp_path / "replies.csv", [{"reply": f"hello {index}"} for index in range(4)])
    base, _ = service.resolve_base("tiny-chat", "echo")
    with pytest.raises(InvalidInputError, match="field 'response_column': required for echo"):
        parse_train_config({"task": "echo", "base": base, "data": str(data)})
    with pytest.raises(InvalidInputError, match="field 'messages_column': not read by echo"):
        parse_train_config({"task": "echo", "base": base, "data": str(data), "response_column": "reply",
                            "messages_column": "m"})
    config = parse_train_config({"task": "echo", "base": base, "data": str(data), "response_column": "reply"})
    plan = service.plan(config)
    assert (plan.train_examples, plan.val_examples) == (3, 1)
    assert "".join(text for text, loss in plan.preview.segments if loss).startswith("hello 1")
    card = model_card(config, {"final": {"loss": 1.0}}, "adapter", "python -m backend.training.worker")
    assert "Fine-tuned for echoing" in card and "- replies: column `reply`" in card
    with pytest.raises(InvalidInputError, match="field 'task': one of classification, sft, dpo"):
        parse_train_config({"task": "nope", "base": base, "data": str(data)})
