"""Training data: tables read with the app's one file reader, checked, split, and turned into model inputs.

Everything that can be wrong with a dataset (missing column, blank labels, one class only, a `messages` cell that
is not a conversation) is found here, before a model is loaded, as an `InvalidInputError` naming the column and
row. Tokenizing (`tokenize_*`, `preview_*`) imports transformers-side objects only through the tokenizer passed in.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pandas as pd

from backend.datafiles import column_texts, read_table
from backend.error_codes import refuse
from backend.training.config import TrainConfig
from backend.types import InvalidInputError

IGNORE_INDEX = -100  # labels with this value carry no loss (PyTorch's cross-entropy default)
ROLES = ("system", "user", "assistant")


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list[int]
    val_texts: list[str]
    val_labels: list[int]
    id2label: dict[int, str]


@dataclass
class SFTData:
    train: list[list[dict[str, str]]]
    val: list[list[dict[str, str]]]


@dataclass
class LengthStats:
    """Token lengths of the examples and how many the chosen max length cuts."""

    count: int
    min: int
    mean: float
    p95: int
    max: int
    max_length: int
    truncated: int
    loss_tokens: Optional[int] = None  # sft: tokens that carry the loss (assistant tokens), after truncation

    def describe(self) -> str:
        text = (f"{self.count} examples, tokens: min {self.min}, mean {self.mean:.0f}, p95 {self.p95}, "
                f"max {self.max}; {self.truncated} of {self.count} longer than max length {self.max_length} "
                "(cut)")
        return text + (f"; {self.loss_tokens} tokens carry the loss" if self.loss_tokens is not None else "")


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]
    length_before_cut: int = 0


@dataclass
class Preview:
    """One formatted training example as the model sees it: (text piece, carries loss) segments."""

    segments: list[tuple[str, bool]] = field(default_factory=list)
    stats: Optional[LengthStats] = None
    label_counts: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- loading


def load_tables(config: TrainConfig) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """The training table and the separate validation table (None: split from the training data)."""
    train = read_table(config.data)
    validation = read_table(config.validation) if config.validation else None
    return train, validation


def prepare_classification(config: TrainConfig) -> ClassificationData:
    """Texts and label ids, stratified train / validation split, label names in sorted order."""
    train, validation = load_tables(config)
    texts, labels = _text_label_rows(train, config, "data")
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts))
        raise refuse("one_class", "label_column", column=config.label_column, label=only)
    names = sorted(counts)
    label2id = {name: index for index, name in enumerate(names)}
    if validation is not None:
        val_texts, val_label_names = _text_label_rows(validation, config, "validation")
        unknown = sorted(set(val_label_names) - set(names))
        if unknown:
            raise InvalidInputError(f"field 'validation': labels {unknown[:5]} do not occur in the training data "
                                    f"(its labels: {names[:20]})", field="validation")
        train_texts, train_names = texts, labels
    else:
        rare = [name for name, count in counts.items() if count < 2]
        if rare:
            raise refuse("label_once", "label_column", label=rare[0])
        from sklearn.model_selection import train_test_split

        val_size = max(int(round(len(texts) * config.validation_fraction)), len(counts))
        if len(texts) - val_size < len(counts):
            raise refuse("too_few_rows", "data", rows=len(texts), labels=len(counts))
        train_texts, val_texts, train_names, val_label_names = train_test_split(
            texts, labels, test_size=val_size, random_state=config.seed, stratify=labels)
    return ClassificationData(
        train_texts=list(train_texts), train_labels=[label2id[name] for name in train_names],
        val_texts=list(val_texts), val_labels=[label2id[name] for name in val_label_names],
        id2label={index: name for name, index in label2id.items()},
    )


def _text_label_rows(table: pd.DataFrame, config: TrainConfig, what: str) -> tuple[list[str], list[str]]:
    texts = _column(table, config.text_column, "text_column", what)
    labels = _column(table, config.label_column, "label_column", what)
    blank_text = [index for index, text in enumerate(texts) if not text.strip()]
    if blank_text:
        raise refuse("blank_texts", "text_column", count=len(blank_text), column=config.text_column, what=what,
                     row=blank_text[0] + 1)
    blank_label = [index for index, label in enumerate(labels) if not label.strip()]
    if blank_label:
        raise refuse("blank_labels", "label_column", count=len(blank_label), column=config.label_column, what=what,
                     row=blank_label[0] + 1)
    return texts, [label.strip() for label in labels]


def _column(table: pd.DataFrame, column: Optional[str], field_name: str, what: str) -> list[str]:
    try:
        return column_texts(table, column)
    except InvalidInputError as error:
        # The same error (code and params) about this config field, its message naming the field and the file.
        raise InvalidInputError(f"field '{field_name}' ({what} file): {str(error).removeprefix('column: ')}",
                                code=error.code, field=field_name, params=error.params) from None


def prepare_sft(config: TrainConfig) -> SFTData:
    """Conversations (lists of {role, content}) for training and validation, checked message by message."""
    train, validation = load_tables(config)
    conversations = conversations_from_table(train, config, "data")
    if validation is not None:
        return SFTData(train=conversations, val=conversations_from_table(validation, config, "validation"))
    if len(conversations) < 2:
        raise InvalidInputError("field 'data': at least two conversations are needed (one to validate on)",
                                field="data")
    import random

    order = list(range(len(conversations)))
    random.Random(config.seed).shuffle(order)
    val_size = max(1, int(round(len(order) * config.validation_fraction)))
    return SFTData(train=[conversations[i] for i in order[val_size:]],
                   val=[conversations[i] for i in order[:val_size]])


def conversations_from_table(table: pd.DataFrame, config: TrainConfig, what: str) -> list[list[dict[str, str]]]:
    system = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    if config.messages_column:
        if config.messages_column not in table.columns:
            raise InvalidInputError(f"field 'messages_column' ({what} file): there is no column "
                                    f"'{config.messages_column}'; the columns are {list(table.columns)[:20]}")
        conversations = [_messages(value, row, config.messages_column, what)
                         for row, value in enumerate(table[config.messages_column].tolist(), start=1)]
        # The system prompt goes before conversations that have none of their own.
        return [messages if messages[0]["role"] == "system" else system + messages for messages in conversations]
    prompts = _column(table, config.prompt_column, "prompt_column", what)
    responses = _column(table, config.response_column, "response_column", what)
    conversations = []
    for row, (prompt, response) in enumerate(zip(prompts, responses), start=1):
        if not prompt.strip() or not response.strip():
            which = "prompt_column" if not prompt.strip() else "response_column"
            raise InvalidInputError(f"field '{which}': row {row} of the {what} file is empty")
        conversations.append(system + [{"role": "user", "content": prompt},
                                       {"role": "assistant", "content": response}])
    return conversations


def _messages(value: Any, row: int, column: str, what: str) -> list[dict[str, str]]:
    where = f"field 'messages_column': row {row} of the {what} file"
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInputError(f"{where} is not a JSON list of messages") from None
    if hasattr(value, "tolist"):  # Parquet lists arrive as arrays
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{where} is not a list of messages like "
                                '[{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]')
    messages = []
    for message in value:
        if not isinstance(message, dict) or message.get("role") not in ROLES or \
                not isinstance(message.get("content"), str):
            raise InvalidInputError(f"{where}: each message needs a 'role' ({', '.join(ROLES)}) and a text "
                                    "'content'", field=where)
        messages.append({"role": message["role"], "content": message["content"]})
    if not any(message["role"] == "assistant" for message in messages):
        raise InvalidInputError(f"{where} has no assistant message: nothing to learn")
    return messages


# ---------------------------------------------------------------------------------------- tokenizing


def tokenize_sft(tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int) -> SFTExample:
    """The conversation through the model's own chat template; only assistant tokens carry the loss.

    The template is rendered once for the whole conversation and once up to each assistant turn: the characters
    an assistant turn adds (its text and the template's end-of-turn marker, so the model learns to stop) are
    mapped to tokens through the tokenizer's offsets.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(list(messages[:index]), tokenize=False, add_generation_prompt=True) \
            if index else ""
        through = tokenizer.apply_chat_template(list(messages[: index + 1]), tokenize=False)
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


def length_stats(lengths: Sequence[int], max_length: int, loss_tokens: Optional[int] = None) -> LengthStats:
    if not lengths:
        raise InvalidInputError("field 'data': no examples", field="data")
    ordered = sorted(lengths)
    return LengthStats(count=len(ordered), min=ordered[0], mean=sum(ordered) / len(ordered),
                       p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], max=ordered[-1],
                       max_length=max_length, truncated=sum(length > max_length for length in ordered),
                       loss_tokens=loss_tokens)


def preview_sft(tokenizer: Any, data: SFTData, max_length: int) -> Preview:
    """The first training conversation as tokens marked by loss, and length statistics over all of them."""
    examples = [tokenize_sft(tokenizer, messages, max_length) for messages in data.train]
    first = examples[0]
    segments: list[tuple[str, bool]] = []
    for token, label in zip(first.input_ids, first.labels):
        piece = tokenizer.decode([token], skip_special_tokens=False)
        loss = label != IGNORE_INDEX
        if segments and segments[-1][1] == loss:
            segments[-1] = (segments[-1][0] + piece, loss)
        else:
            segments.append((piece, loss))
    loss_tokens = sum(sum(label != IGNORE_INDEX for label in example.labels) for example in examples)
    stats = length_stats([example.length_before_cut for example in examples], max_length, loss_tokens)
    return Preview(segments=segments, stats=stats)


def preview_classification(tokenizer: Any, data: ClassificationData, max_length: int) -> Preview:
    lengths = [len(ids) for ids in tokenizer(data.train_texts, add_special_tokens=True)["input_ids"]]
    first = tokenizer.decode(tokenizer(data.train_texts[0], truncation=True, max_length=max_length)["input_ids"])
    label = data.id2label[data.train_labels[0]]
    counts = Counter(data.id2label[label_id] for label_id in data.train_labels)
    return Preview(segments=[(first, False), (f"  → label: {label}", True)],
                   stats=length_stats(lengths, max_length), label_counts=dict(sorted(counts.items())))
