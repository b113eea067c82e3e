"""Text classification: a text and a label column, a stratified split, a new classification head, accuracy and
macro F1. A LoRA run is saved merged into a full model (its new head and labels belong to the model)."""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer, decoded_text
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.core.error_codes import refuse
from backend.training.recipes.base import ColumnField, Datasets, MemoryShape, PreparedData, Recipe, own_data
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset
    from transformers import EvalPrediction
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    from backend.training.config import TrainConfig
    from backend.training.data import Preview


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list[int]
    val_texts: list[str]
    val_labels: list[int]
    id2label: dict[int, str]

    @property
    def train_count(self) -> int:
        return len(self.train_texts)

    @property
    def val_count(self) -> int:
        return len(self.val_texts)


def prepare_classification(config: "TrainConfig") -> ClassificationData:
    """Texts and label ids, stratified train / validation split, label names in sorted order."""
    from backend.training.data import load_tables

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


def _text_label_rows(table: "pd.DataFrame", config: "TrainConfig", what: str) -> tuple[list[str], list[str]]:
    from backend.training.data import table_column

    texts = table_column(table, config.text_column, "text_column", what)
    labels = table_column(table, config.label_column, "label_column", what)
    blank_text = [index for index, text in enumerate(texts) if not text.strip()]
    if blank_text:
        raise refuse("blank_texts", "text_column", count=len(blank_text), column=config.text_column, what=what,
                     row=blank_text[0] + 1)
    blank_label = [index for index, label in enumerate(labels) if not label.strip()]
    if blank_label:
        raise refuse("blank_labels", "label_column", count=len(blank_label), column=config.label_column, what=what,
                     row=blank_label[0] + 1)
    return texts, [label.strip() for label in labels]


def classification_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro F1 from scikit-learn."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    predicted = np.argmax(logits, axis=-1)
    return {"accuracy": float(accuracy_score(labels, predicted)),
            "f1_macro": float(f1_score(labels, predicted, average="macro"))}


class ClassificationRecipe(Recipe):
    task = "classification"
    title = "text classification"
    pipeline_tag = "text-classification"
    # Every encoder: a classifier's head is replaced, a plain encoder (MiniLM registered for `embed`) gets one.
    base_tasks = ("classify", "zero_shot", "embed", "fill_mask", "ner", "question_answering")
    columns = (ColumnField("text_column", ("text", "sentence", "review", "content"), "classification: the texts"),
               ColumnField("label_column", ("label", "labels", "class", "category"), "classification: the labels"))
    default_method = "full"
    generative = False
    needs_chat_template = False
    best_metric = "accuracy"
    greater_is_better = True
    progress_keys = (("eval_accuracy", "eval accuracy"), ("eval_f1_macro", "eval macro F1"))
    final_keys = ("loss", "accuracy", "f1_macro")

    def check_columns(self, config: "TrainConfig") -> None:
        for name in ("text_column", "label_column"):
            if not getattr(config, name):
                raise ValueError(f"field '{name}': required for classification")

    def prepare(self, config: "TrainConfig") -> ClassificationData:
        return prepare_classification(config)

    def preview(self, tokenizer: HFTokenizer, data: PreparedData, config: "TrainConfig") -> "Preview":
        from backend.training.data import Preview, length_stats

        data = own_data(data, ClassificationData)
        lengths = [len(ids) for ids in tokenizer(data.train_texts, add_special_tokens=True)["input_ids"]]
        first = decoded_text(tokenizer, tokenizer(data.train_texts[0], truncation=True,
                                                  max_length=config.max_length)["input_ids"])
        label = data.id2label[data.train_labels[0]]
        counts = Counter(data.id2label[label_id] for label_id in data.train_labels)
        return Preview(segments=[(first, False), (f"  → label: {label}", True)],
                       stats=length_stats(lengths, config.max_length), label_counts=dict(sorted(counts.items())))

    def datasets(self, config: "TrainConfig", tokenizer: HFTokenizer, data: PreparedData) -> Datasets:
        from datasets import Dataset
        from transformers import DataCollatorWithPadding

        data = own_data(data, ClassificationData)

        def encode(texts: list[str], labels: list[int]) -> Dataset:
            encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
            return Dataset.from_dict({**encoded, "labels": labels})

        return Datasets(encode(data.train_texts, data.train_labels), encode(data.val_texts, data.val_labels),
                        DataCollatorWithPadding(tokenizer), classification_metrics)

    def model_class(self) -> type[_BaseAutoModelClass]:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def peft_task_type(self) -> str:
        return "SEQ_CLS"

    def model_kwargs(self, data: PreparedData) -> dict[str, object]:
        data = own_data(data, ClassificationData)
        return {"num_labels": len(data.id2label), "id2label": dict(data.id2label),
                "label2id": {label: index for index, label in data.id2label.items()},
                "ignore_mismatched_sizes": True}  # a base with another head gets a new one

    def memory_shape(self, data: PreparedData) -> MemoryShape:
        data = own_data(data, ClassificationData)
        return MemoryShape(num_labels=len(data.id2label))

    def score(self, final: dict[str, float]) -> str:
        return f"accuracy {final['accuracy']:.3f}" if "accuracy" in final else super().score(final)

    def card_data_lines(self, config: "TrainConfig") -> list[str]:
        return [f"- columns: text `{config.text_column}`, label `{config.label_column}`"]
