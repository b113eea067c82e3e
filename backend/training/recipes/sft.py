"""Supervised fine-tuning of a chat model: conversations (a `messages` column, or a prompt and a response
column) through the model's own chat template, with the loss on the assistant tokens only. Eval perplexity."""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer, rendered_text
import json
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, TypeVar

from backend.training.recipes.base import ColumnField, Datasets, PreparedData, Recipe, own_data
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    from datasets import Dataset
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    from backend.training.runfiles import ProgressRow

    from backend.training.config import TrainConfig
    from backend.training.data import Preview

ROLES = ("system", "user", "assistant")
Row = TypeVar("Row")
Conversation = list[dict[str, str]]


@dataclass
class SFTData:
    train: list[Conversation]
    val: list[Conversation]

    @property
    def train_count(self) -> int:
        return len(self.train)

    @property
    def val_count(self) -> int:
        return len(self.val)


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]
    length_before_cut: int = 0


def split_rows(rows: list[Row], config: "TrainConfig", what: str) -> tuple[list[Row], list[Row]]:
    """A seeded random validation share of `rows` (used when no validation file is given)."""
    if len(rows) < 2:
        raise InvalidInputError(f"field 'data': at least two {what} are needed (one to validate on)", field="data")
    order = list(range(len(rows)))
    random.Random(config.seed).shuffle(order)
    val_size = max(1, int(round(len(order) * config.validation_fraction)))
    return [rows[i] for i in order[val_size:]], [rows[i] for i in order[:val_size]]


def train_and_validation(config: "TrainConfig", rows_of: "Callable[[pd.DataFrame, TrainConfig, str], list[Row]]",
                         what: str) -> tuple[list[Row], list[Row]]:
    """The data file's rows (`rows_of` reads and checks a table; its last argument names the file in errors) and
    the validation file's, or a seeded share of the data's when there is no validation file."""
    from backend.training.data import load_tables

    train, validation = load_tables(config)
    rows = rows_of(train, config, "data")
    if validation is not None:
        return rows, rows_of(validation, config, "validation")
    return split_rows(rows, config, what)


def prepare_sft(config: "TrainConfig") -> SFTData:
    """Conversations (lists of {role, content}) for training and validation, checked message by message."""
    train, val = train_and_validation(config, conversations_from_table, "conversations")
    return SFTData(train=train, val=val)


def conversations_from_table(table: "pd.DataFrame", config: "TrainConfig", what: str) -> list[Conversation]:
    from backend.training.data import table_column

    system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    if config.messages_column:
        if config.messages_column not in table.columns:
            raise InvalidInputError(f"field 'messages_column' ({what} file): there is no column "
                                    f"'{config.messages_column}'; the columns are {list(table.columns)[:20]}")
        conversations = [messages_of(value, row, "messages_column", what)
                         for row, value in enumerate(table[config.messages_column].tolist(), start=1)]
        for row, messages in enumerate(conversations, start=1):
            if not any(message["role"] == "assistant" for message in messages):
                raise InvalidInputError(f"field 'messages_column': row {row} of the {what} file has no assistant "
                                        "message: nothing to learn")
        # The system prompt goes before conversations that have none of their own.
        return [messages if messages[0]["role"] == "system" else system + messages for messages in conversations]
    prompts = table_column(table, config.prompt_column, "prompt_column", what)
    responses = table_column(table, config.response_column, "response_column", what)
    conversations = []
    for row, (prompt, response) in enumerate(zip(prompts, responses), start=1):
        if not prompt.strip() or not response.strip():
            which = "prompt_column" if not prompt.strip() else "response_column"
            raise InvalidInputError(f"field '{which}': row {row} of the {what} file is empty")
        conversations.append(system + [{"role": "user", "content": prompt},
                                       {"role": "assistant", "content": response}])
    return conversations


def messages_of(value: object, row: int, field: str, what: str) -> Conversation:
    """A cell holding a list of {role, content} messages (JSON text in CSV, arrays in Parquet), checked."""
    where = f"field '{field}': row {row} of the {what} file"
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInputError(f"{where} is not a JSON list of messages", field=field) from None
    if hasattr(value, "tolist"):  # Parquet lists arrive as arrays
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{where} is not a list of messages like "
                                '[{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]',
                                field=field)
    messages = []
    for message in value:
        if not isinstance(message, dict) or message.get("role") not in ROLES or \
                not isinstance(message.get("content"), str):
            raise InvalidInputError(f"{where}: each message needs a 'role' ({', '.join(ROLES)}) and a text "
                                    "'content'", field=field)
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def tokenize_sft(tokenizer: HFTokenizer, messages: Sequence[dict[str, str]], max_length: int) -> SFTExample:
    """The conversation through the model's own chat template; only assistant tokens carry the loss.

    The template is rendered once for the whole conversation and once up to each assistant turn: the characters
    an assistant turn adds (its text and the template's end-of-turn marker, so the model learns to stop) are
    mapped to tokens through the tokenizer's offsets.
    """
    from backend.training.data import IGNORE_INDEX

    text = rendered_text(tokenizer.apply_chat_template(list(messages), tokenize=False))
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = rendered_text(tokenizer.apply_chat_template(list(messages[:index]), tokenize=False,
                                                             add_generation_prompt=True)) if index else ""
        through = rendered_text(tokenizer.apply_chat_template(list(messages[: index + 1]), tokenize=False))
        if not text.startswith(through) or not through.startswith(before):
            raise InvalidInputError("the model's chat template does not render a conversation as the sum of its "
                                    "turns; assistant tokens cannot be told apart for the loss")
        spans.append((len(before), len(through)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    labels = []
    for token, (start, end) in zip(input_ids, encoded["offset_mapping"]):
        inside = any(start >= low and end <= high and end > start for low, high in spans)
        labels.append(token if inside else IGNORE_INDEX)
    length = len(input_ids)
    return SFTExample(input_ids=input_ids[:max_length], labels=labels[:max_length], length_before_cut=length)


def preview_sft(tokenizer: HFTokenizer, data: SFTData, max_length: int) -> "Preview":
    """The first training conversation as tokens marked by loss, and length statistics over all of them."""
    from backend.training.data import IGNORE_INDEX, Preview, length_stats, marked_segments

    examples = [tokenize_sft(tokenizer, messages, max_length) for messages in data.train]
    first = examples[0]
    segments = marked_segments(tokenizer, first.input_ids, [label != IGNORE_INDEX for label in first.labels])
    loss_tokens = sum(sum(label != IGNORE_INDEX for label in example.labels) for example in examples)
    stats = length_stats([example.length_before_cut for example in examples], max_length, loss_tokens)
    return Preview(segments=segments, stats=stats)


class SFTRecipe(Recipe):
    task = "sft"
    title = "chat (supervised fine-tuning)"
    pipeline_tag = "text-generation"
    base_tasks = ("chat",)
    columns = (ColumnField("messages_column", ("messages", "conversation", "conversations"),
                           "sft: a column of [{role, content}, ...] lists"),
               ColumnField("prompt_column", ("prompt", "instruction", "question", "input"),
                           "sft / dpo: the prompts", yields_to="messages_column"),
               ColumnField("response_column", ("response", "answer", "output", "completion"),
                           "sft: the responses", yields_to="messages_column"))
    progress_keys = (("eval_perplexity", "eval perplexity"),)
    final_keys = ("loss", "perplexity")

    def check_columns(self, config: "TrainConfig") -> None:
        if config.messages_column and (config.prompt_column or config.response_column):
            raise ValueError("field 'messages_column': give either a messages column or prompt and response "
                             "columns, not both")
        if not config.messages_column and not (config.prompt_column and config.response_column):
            raise ValueError("field 'messages_column': sft needs a messages column, or both 'prompt_column' and "
                             "'response_column'")

    def prepare(self, config: "TrainConfig") -> SFTData:
        return prepare_sft(config)

    def preview(self, tokenizer: HFTokenizer, data: PreparedData, config: "TrainConfig") -> "Preview":
        return preview_sft(tokenizer, own_data(data, SFTData), config.max_length)

    def datasets(self, config: "TrainConfig", tokenizer: HFTokenizer, data: PreparedData) -> Datasets:
        from datasets import Dataset
        from transformers import DataCollatorForSeq2Seq

        data = own_data(data, SFTData)

        def encode_all(conversations: list[Conversation]) -> Dataset:
            rows = []
            for messages in conversations:
                example = tokenize_sft(tokenizer, messages, config.max_length)
                rows.append({"input_ids": example.input_ids, "labels": example.labels,
                             "attention_mask": [1] * len(example.input_ids)})
            return Dataset.from_list(rows)

        # Pads input_ids with the pad id and labels with -100, so padding never carries loss.
        return Datasets(encode_all(data.train), encode_all(data.val), DataCollatorForSeq2Seq(tokenizer, padding=True))

    def model_class(self) -> type[_BaseAutoModelClass]:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def derived(self, row: ProgressRow) -> dict[str, float]:
        return {"eval_perplexity": math.exp(min(row["eval_loss"], 50.0))} if "eval_loss" in row else {}

    def final_metrics(self, evaluated: dict[str, float]) -> dict[str, float]:
        return {**evaluated, "perplexity": math.exp(min(evaluated["loss"], 50.0))}

    def card_data_lines(self, config: "TrainConfig") -> list[str]:
        if config.messages_column:
            return [f"- conversations: column `{config.messages_column}`, loss on assistant tokens only"]
        return [f"- prompt `{config.prompt_column}`, response `{config.response_column}`, loss on the response only"]
