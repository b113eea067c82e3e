"""Named entities with transformers' token-classification pipeline (preprocess → forward → postprocess there).

The pipeline already groups sub-word pieces into entities by the chosen aggregation strategy and reports
character offsets; this module only batches, validates the strategy against the tokenizer and converts results.
"""

from __future__ import annotations

from typing import Any, Sequence

from transformers import AutoModelForTokenClassification, pipeline

from backend.tasks.types import AGGREGATIONS, Entity
from backend.types import InvalidInputError

MODEL_CLASS = AutoModelForTokenClassification


class NerTask:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, device=model.device)
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def __call__(self, texts: Sequence[str], aggregation: str = "simple", batch_size: int = 16) -> list[list[Entity]]:
        if aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"aggregation: one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        outputs = self.pipe(list(texts), aggregation_strategy=aggregation, batch_size=batch_size)
        return [[_entity(item) for item in found] for found in outputs]


def _entity(item: dict[str, Any]) -> Entity:
    # Aggregated results name the type `entity_group`; token-level ones the BIO label `entity`.
    kind = item.get("entity_group") or item.get("entity") or ""
    return Entity(entity=str(kind), score=float(item["score"]), word=str(item.get("word", "")),
                  start=int(item["start"]) if item.get("start") is not None else -1,
                  end=int(item["end"]) if item.get("end") is not None else -1)
