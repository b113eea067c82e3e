"""Sentence embeddings from any encoder, pooled as its sentence-transformers folder says.

preprocess: tokenize a batch (padded, cut to the model's limit). forward: the encoder's last hidden state.
postprocess: CLS or attention-masked mean pooling, then optional L2 normalisation, the two choices a
sentence-transformers folder records in modules.json and 1_Pooling/config.json (read by `pooling_of`, without
importing sentence-transformers). A plain encoder without that folder gets mean pooling, normalised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from transformers import AutoModel

from backend.tasks.types import Embeddings, Pooling

MODEL_CLASS = AutoModel


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


class EmbedTask:
    def __init__(self, model: Any, tokenizer: Any, max_length: int, pooling: Pooling = "mean",
                 normalize: bool = True) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.forward_fn = model  # `runtime: onnx` replaces it (backend/engines/onnx_runtime.py)

    @property
    def dimensions(self) -> int:
        return int(self.model.config.hidden_size)

    def __call__(self, texts: Sequence[str]) -> Embeddings:
        encoded, lengths = self.preprocess(texts)
        hidden = self.forward(encoded)
        vectors = self.postprocess(hidden, encoded["attention_mask"])
        return Embeddings(vectors=vectors, tokens=[min(n, self.max_length) for n in lengths],
                          truncated=[n > self.max_length for n in lengths], pooling=self.pooling,
                          normalized=self.normalize)

    def preprocess(self, texts: Sequence[str]) -> tuple[Any, list[int]]:
        lengths = [len(ids) for ids in self.tokenizer(list(texts), verbose=False)["input_ids"]]
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return encoded, lengths

    def forward(self, encoded: Any) -> torch.Tensor:
        inputs = {name: encoded[name] for name in self.tokenizer.model_input_names if name in encoded}
        with torch.inference_mode():
            device = getattr(self.model, "device", "cpu")
            output = self.forward_fn(**{name: value.to(device) for name, value in inputs.items()})
        return output["last_hidden_state"].float().cpu()

    def postprocess(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> list[list[float]]:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.tolist()
