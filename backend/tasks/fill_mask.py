"""Fill-mask with transformers' fill-mask pipeline: top-k tokens for every mask in the text."""

from __future__ import annotations

from typing import Any, Sequence

from transformers import AutoModelForMaskedLM, pipeline

from backend.tasks.types import MaskFill
from backend.types import InvalidInputError

MODEL_CLASS = AutoModelForMaskedLM
MAX_MASKS = 10


class FillMaskTask:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.pipe = pipeline("fill-mask", model=model, tokenizer=tokenizer, device=model.device)
        self.mask_token = tokenizer.mask_token

    def check(self, text: str) -> int:
        """The number of masks in `text`; refuses a text without one, naming this model's mask token."""
        count = text.count(self.mask_token) if self.mask_token else 0
        if count == 0:
            raise InvalidInputError(f"text: has no mask token; put {self.mask_token} where a word should be "
                                    "predicted (this model's mask token)")
        if count > MAX_MASKS:
            raise InvalidInputError(f"text: {count} mask tokens; at most {MAX_MASKS}")
        return count

    def __call__(self, texts: Sequence[str], top_k: int = 5, batch_size: int = 16) -> list[list[list[MaskFill]]]:
        """For each text, for each mask (left to right), the top-k candidates."""
        counts = [self.check(text) for text in texts]
        outputs = self.pipe(list(texts), top_k=top_k, batch_size=batch_size)
        if len(texts) == 1:  # the pipeline unwraps a one-text list
            outputs = [outputs]
        results = []
        for count, output in zip(counts, outputs):
            # The pipeline returns a flat list for one mask and a list per mask for several.
            per_mask = [output] if count == 1 else output
            results.append([[MaskFill(token=str(c["token_str"]), score=float(c["score"]), sequence=str(c["sequence"]))
                             for c in candidates] for candidates in per_mask])
        return results
