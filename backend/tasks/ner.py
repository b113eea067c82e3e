"""Named entities with transformers' token-classification pipeline: its aggregation, batched our way.

The pipeline groups sub-word pieces into entities by the chosen aggregation strategy and reports character
offsets; that part (its `postprocess`) runs unchanged, one text at a time, as in the pipeline. What this module
does differently is the part before it: the pipeline tokenizes every text on its own and feeds a DataLoader
one chunk at a time; here a batch is tokenized in one call and goes through the model in one forward pass, and
each text's unpadded slice is handed to the pipeline's postprocess. Measured on the file path
(bench/tasks_batching.py): see docs/BENCHMARKS.md, issue 18. Results equal the pipeline's own call
(tests/test_tasks.py).

Evaluation: a row of words with one BIO tag each; the words are joined by spaces, the entities found map back
to a tag per word (`entities_to_tags`), scored by seqeval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, TypedDict, cast

from backend.evaluation.sequences import parse_list
from backend.tasks.base import (
    Cell,
    EvalAdapter,
    LoadContext,
    ModelClass,
    TaskHandler,
    TaskInputs,
    TaskRequest,
    TaskSpec,
    one_of,
)
from backend.tasks.types import AGGREGATIONS, Aggregation, Entity

if TYPE_CHECKING:  # model_spec validates entries through the task table, which imports this module
    import numpy as np
    import torch

    from backend.core.model_spec import ModelSpec
    from backend.evaluation.types import EvalConfig


@dataclass(frozen=True)
class NerOptions:
    aggregation: Aggregation = "simple"  # the token-classification pipeline's strategy


class NerBatch(TypedDict):
    """A tokenized batch: the model's inputs, each token's character offsets (fast tokenizers), special tokens."""

    inputs: dict[str, torch.Tensor]
    offsets: Optional[np.ndarray]
    special: torch.Tensor


class NerOutputs(NerBatch):
    logits: torch.Tensor  # (batch, tokens, labels), on the CPU


class NerHandler(TaskHandler[NerOptions, list[Entity], NerBatch, NerOutputs]):
    def __init__(self, context: LoadContext) -> None:
        super().__init__(context)
        from transformers import pipeline

        model = context.model
        self.pipe = pipeline("token-classification", model=model,  # type: ignore[call-overload]  # v5 overloads
                             tokenizer=context.tokenizer, device=model.device)  # list model ids, not objects
        id2label = cast(dict[int, str], model.config.id2label)  # a token-classification head always has it
        self.labels = [id2label[i] for i in range(len(id2label))]

    def preprocess(self, request: TaskRequest[NerOptions]) -> NerBatch:
        import torch

        tokenizer = self.tokenizer
        # As the pipeline's preprocess, for the whole batch at once (padded; the padding is cut off in postprocess).
        truncation = bool(tokenizer.model_max_length and tokenizer.model_max_length > 0)
        # NumPy, not "pt": converting the offsets' nested lists to a torch tensor costs more than the forward pass
        # of a small model; NumPy arrays become tensors without a copy.
        encoded = tokenizer(list(request.inputs.texts), return_tensors="np", truncation=truncation, padding=True,
                            return_special_tokens_mask=True, return_offsets_mapping=tokenizer.is_fast)
        offsets = encoded.pop("offset_mapping", None)
        special = torch.from_numpy(encoded.pop("special_tokens_mask"))
        return {"inputs": {name: torch.from_numpy(value) for name, value in encoded.items()}, "offsets": offsets,
                "special": special}

    def forward(self, model_inputs: NerBatch) -> NerOutputs:
        logits = self.run_forward(model_inputs["inputs"])
        return {**model_inputs, "logits": logits["logits"].float().cpu()}

    def postprocess(self, model_outputs: NerOutputs, request: TaskRequest[NerOptions]) -> list[list[Entity]]:
        # The pipeline's own parameter check (e.g. word-level strategies need a fast tokenizer).
        _, _, post = self.pipe._sanitize_parameters(aggregation_strategy=request.options.aggregation)  # type: ignore[arg-type]  # takes str
        inputs, offsets, special = model_outputs["inputs"], model_outputs["offsets"], model_outputs["special"]
        results = []
        for row, text in enumerate(request.inputs.texts):
            keep = inputs["attention_mask"][row].bool()  # the text's own tokens, whichever side was padded
            outputs = {"logits": model_outputs["logits"][row][keep][None],
                       "input_ids": inputs["input_ids"][row][keep][None],
                       "special_tokens_mask": special[row][keep][None],
                       "offset_mapping": offsets[row][keep.numpy()][None] if offsets is not None else None,
                       "sentence": text, "is_last": True}
            results.append([_entity(item) for item in self.pipe.postprocess([outputs], **post)])
        return results


class PipelineEntity(TypedDict, total=False):
    """One item of the token-classification pipeline's postprocess (aggregated: `entity_group`; else `entity`)."""

    entity_group: str
    entity: str
    score: float  # a NumPy float32
    word: str
    start: Optional[int]
    end: Optional[int]


def _entity(item: PipelineEntity) -> Entity:
    # Aggregated results name the type `entity_group`; token-level ones the BIO label `entity`.
    kind = item.get("entity_group") or item.get("entity") or ""
    return Entity(entity=str(kind), score=float(item["score"]), word=str(item.get("word", "")),
                  start=int(start) if (start := item.get("start")) is not None else -1,
                  end=int(end) if (end := item.get("end")) is not None else -1)


# ------------------------------------------------------------------------------------------- evaluation


def words_to_text(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The words joined by spaces, and each word's character span in that text."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def entities_to_tags(spans: list[tuple[int, int]], entities: Sequence[Entity]) -> list[str]:
    """BIO tags per word from character-offset entities: a word overlapping an entity takes its type, B- for the
    entity's first word and I- for the rest; other words are O."""
    tags = ["O"] * len(spans)
    for entity in entities:
        inside = [i for i, (start, end) in enumerate(spans) if start < entity.end and entity.start < end]
        for order, index in enumerate(inside):
            if tags[index] == "O":
                tags[index] = f"{'B' if order == 0 else 'I'}-{entity.entity}"
    return tags


class NerEvaluation(EvalAdapter[NerOptions, list[Entity]]):
    """Rows of words with a BIO tag each: the words joined by spaces go in, the entities found come back as a tag
    per word, for seqeval."""

    task = "ner"

    def options(self, config: EvalConfig, model: ModelSpec) -> NerOptions:
        return NerOptions("simple")

    def inputs(self, inputs: Sequence[str], contexts: Optional[Sequence[str]]) -> TaskInputs:
        return TaskInputs(tuple(words_to_text(parse_list(text))[0] for text in inputs))

    def prediction(self, example_input: str, result: list[Entity]) -> str:
        return " ".join(entities_to_tags(words_to_text(parse_list(example_input))[1], result))

    def reference(self, reference: str) -> str:
        return " ".join(parse_list(reference))

    def notices(self, predictions: Sequence[Optional[str]], references: Sequence[str]) -> list[str]:
        mismatched = sum(1 for prediction, reference in zip(predictions, references)
                         if prediction is not None and len(prediction.split()) != len(reference.split()))
        return [f"{mismatched:,} example(s) have a different number of tokens and tags"] if mismatched else []


# ------------------------------------------------------------------------------------------------- spec


class NerSpec(TaskSpec[NerOptions, list[Entity]]):
    name = "ner"
    title_key = "tasks_ner"
    architectures = ("ForTokenClassification",)
    onnx = True
    columns = ("entities",)
    file_stem = "entities"
    evaluation = NerEvaluation()
    aggregations = AGGREGATIONS

    def model_class(self, architectures: Sequence[str]) -> ModelClass:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def options(self, aggregation: str = "simple") -> NerOptions:
        return NerOptions(one_of("aggregation", aggregation, AGGREGATIONS))  # type: ignore[arg-type]

    def handler(self, context: LoadContext) -> NerHandler:
        handler = NerHandler(context)
        context.notes.append(f"labels: {', '.join(handler.labels)}")
        return handler

    def file_row(self, result: list[Entity]) -> tuple[Cell, ...]:
        return (json.dumps([e.to_dict() for e in result], ensure_ascii=False),)


SPEC = NerSpec()
