"""Named entities with transformers' token-classification pipeline: its aggregation, batched our way.

The pipeline groups sub-word pieces into entities by the chosen aggregation strategy and reports character
offsets; that part (its `postprocess`) runs unchanged, one text at a time, as in the pipeline. What this module
does differently is the part before it: the pipeline tokenizes every text on its own and feeds a DataLoader
one chunk at a time; here a batch is tokenized in one call and goes through the model in one forward pass, and
each text's unpadded slice is handed to the pipeline's postprocess. Measured on the file path
(bench/tasks_batching.py): see docs/BENCHMARKS.md, issue 18. Results equal the pipeline's own call
(tests/test_tasks.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import AutoModelForTokenClassification, pipeline

from backend.tasks.types import AGGREGATIONS, Entity
from backend.types import InvalidInputError

MODEL_CLASS = AutoModelForTokenClassification


class NerTask:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, device=model.device)
        self.model = model
        self.tokenizer = tokenizer
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def __call__(self, texts: Sequence[str], aggregation: str = "simple", batch_size: int = 16) -> list[list[Entity]]:
        if aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"aggregation: one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        # The pipeline's own parameter check (e.g. word-level strategies need a fast tokenizer).
        _, _, post = self.pipe._sanitize_parameters(aggregation_strategy=aggregation)  # type: ignore[arg-type]
        texts = list(texts)
        found: list[list[Entity]] = []
        for start in range(0, len(texts), max(1, batch_size)):
            found.extend(self._batch(texts[start:start + batch_size], post))
        return found

    def _batch(self, texts: list[str], post: dict[str, Any]) -> list[list[Entity]]:
        tokenizer = self.tokenizer
        # As the pipeline's preprocess, for the whole batch at once (padded; the padding is cut off below).
        truncation = bool(tokenizer.model_max_length and tokenizer.model_max_length > 0)
        # NumPy, not "pt": converting the offsets' nested lists to a torch tensor costs more than the forward pass
        # of a small model; NumPy arrays become tensors without a copy.
        encoded = tokenizer(texts, return_tensors="np", truncation=truncation, padding=True,
                            return_special_tokens_mask=True, return_offsets_mapping=tokenizer.is_fast)
        offsets = encoded.pop("offset_mapping", None)
        special = torch.from_numpy(encoded.pop("special_tokens_mask"))
        inputs = {name: torch.from_numpy(value) for name, value in encoded.items()}
        device = self.model.device
        with torch.inference_mode():
            logits = self.model(**{name: value.to(device) for name, value in inputs.items()})["logits"]
        logits = logits.float().cpu()
        results = []
        for row, text in enumerate(texts):
            keep = inputs["attention_mask"][row].bool()  # the text's own tokens, whichever side was padded
            outputs = {"logits": logits[row][keep][None], "input_ids": inputs["input_ids"][row][keep][None],
                       "special_tokens_mask": special[row][keep][None],
                       "offset_mapping": offsets[row][keep.numpy()][None] if offsets is not None else None,
                       "sentence": text, "is_last": True}
            results.append([_entity(item) for item in self.pipe.postprocess([outputs], **post)])
        return results


def _entity(item: dict[str, Any]) -> Entity:
    # Aggregated results name the type `entity_group`; token-level ones the BIO label `entity`.
    kind = item.get("entity_group") or item.get("entity") or ""
    return Entity(entity=str(kind), score=float(item["score"]), word=str(item.get("word", "")),
                  start=int(item["start"]) if item.get("start") is not None else -1,
                  end=int(item["end"]) if item.get("end") is not None else -1)
