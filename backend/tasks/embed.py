"""Sentence embeddings from any encoder, pooled as its sentence-transformers folder says.

preprocess: tokenize a batch (padded, cut to the model's limit). forward: the encoder's last hidden state.
postprocess: CLS or attention-masked mean pooling, then optional L2 normalisation, the two choices a
sentence-transformers folder records in modules.json and 1_Pooling/config.json (read by `pooling_of`, without
importing sentence-transformers). A plain encoder without that folder gets mean pooling, normalised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from backend.tasks.base import Cell, LoadContext, ModelClass, TaskHandler, TaskRequest, TaskSpec
from backend.tasks.types import Embedding, Pooling

if TYPE_CHECKING:
    import torch
    from transformers import BatchEncoding

# The tokenized batch and each text's length before truncation.
EmbedBatch = tuple["BatchEncoding", list[int]]
# The last hidden states (batch, tokens, hidden), the attention mask, the lengths.
EmbedOutputs = tuple["torch.Tensor", "torch.Tensor", list[int]]


@dataclass(frozen=True)
class EmbedOptions:
    """Nothing to choose: the model's folder says how to pool."""


def pooling_of(find_file: Callable[[str], Optional[Path]]) -> tuple[Pooling, bool, Optional[int]]:
    """(pooling, normalise, max_seq_length) from a sentence-transformers folder; `find_file(name)` locates files."""
    pooling: Pooling = "mean"
    normalize = True
    max_length = None
    modules_file = find_file("modules.json")
    if modules_file is None:
        return pooling, normalize, max_length
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = {str(module.get("type", "")).rsplit(".", 1)[-1]: module for module in modules}
    normalize = "Normalize" in kinds
    if "Pooling" in kinds:
        config_file = find_file(f"{kinds['Pooling'].get('path') or '1_Pooling'}/config.json")
        if config_file is not None:
            config = json.loads(config_file.read_text(encoding="utf-8"))
            pooling = "cls" if config.get("pooling_mode_cls_token") else "mean"
    settings = find_file("sentence_bert_config.json")
    if settings is not None:
        max_length = json.loads(settings.read_text(encoding="utf-8")).get("max_seq_length")
    return pooling, normalize, max_length


class EmbedHandler(TaskHandler[EmbedOptions, Embedding, EmbedBatch, EmbedOutputs]):
    def __init__(self, context: LoadContext, pooling: Pooling = "mean", normalize: bool = True) -> None:
        super().__init__(context)
        self.pooling = pooling
        self.normalize = normalize

    @property
    def dimensions(self) -> int:
        return int(self.model.config.hidden_size)

    def preprocess(self, request: TaskRequest[EmbedOptions]) -> EmbedBatch:
        texts = list(request.inputs.texts)
        lengths = [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return encoded, lengths

    def forward(self, model_inputs: EmbedBatch) -> EmbedOutputs:
        encoded, lengths = model_inputs
        output = self.run_forward(self.model_inputs(encoded))
        return output["last_hidden_state"].float().cpu(), encoded["attention_mask"], lengths

    def postprocess(self, model_outputs: EmbedOutputs, request: TaskRequest[EmbedOptions]) -> list[Embedding]:
        import torch

        hidden, attention_mask, lengths = model_outputs
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return [Embedding(vector=vector, tokens=min(n, self.max_length), truncated=n > self.max_length,
                          pooling=self.pooling, normalized=self.normalize)
                for vector, n in zip(pooled.tolist(), lengths)]


class EmbedSpec(TaskSpec[EmbedOptions, Embedding]):
    name = "embed"
    title_key = "tasks_embed"
    # Any encoder embeds: a bare model (BertModel) or one with a head, whose base AutoModel loads; decoder-only and
    # text-to-text classes are not encoders.
    architectures = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
                     "ForQuestionAnswering")
    not_architectures = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
    needs_words = "an encoder (*Model, *ForMaskedLM, ...; not a decoder-only or text-to-text model)"
    onnx = True
    text_field = "input"
    columns = ("embedding",)
    file_stem = "embeddings"

    def model_class(self, architectures: Sequence[str]) -> ModelClass:
        from transformers import AutoModel

        return AutoModel

    def options(self) -> EmbedOptions:
        return EmbedOptions()

    def handler(self, context: LoadContext) -> EmbedHandler:
        pooling, normalize, max_length = pooling_of(context.find_file)
        if max_length:
            context.max_length = min(context.max_length, max_length)
        context.notes.append(f"pooling: {pooling}{', normalised' if normalize else ''}; {context.max_length} tokens")
        return EmbedHandler(context, pooling, normalize)

    def file_row(self, result: Embedding) -> tuple[Cell, ...]:
        return (json.dumps([round(x, 6) for x in result.vector]),)


SPEC = EmbedSpec()
