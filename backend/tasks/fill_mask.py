"""Fill-mask with transformers' fill-mask pipeline: top-k tokens for every mask in the text.

The pipeline projects every token onto the vocabulary and then reads only the masked positions; on a MiniLM-sized
model that projection (30,522 words) costs more than the encoder itself. `MaskedRowsFillMask` runs the same
pipeline (its pre-processing, batching, top-k and decoding untouched) with the vocabulary projection fed only the
masked rows (bench/fill_mask_head.py, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import torch
from transformers import AutoModelForMaskedLM, FillMaskPipeline

from backend.tasks.types import MaskFill
from backend.types import InvalidInputError

MODEL_CLASS = AutoModelForMaskedLM
MAX_MASKS = 10


class MaskedRowsFillMask(FillMaskPipeline):
    """FillMaskPipeline whose vocabulary projection sees only the masked positions.

    A forward pre-hook on the model's output embeddings (the projection every masked-LM head ends with: BERT,
    RoBERTa, DistilBERT, ALBERT, ...) keeps just the rows being predicted; `_forward` then puts those logits back
    at their positions in a (batch, length, vocabulary) tensor whose other rows are never read by `postprocess`
    and never written (allocated uninitialised, so they cost no memory traffic). A model without output
    embeddings runs the plain pipeline.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows = threading.local()  # the mask of the forward pass running on this thread (threads share a model)
        projection = self.model.get_output_embeddings()
        self._hooked = projection is not None
        if self._hooked:
            projection.register_forward_pre_hook(self._keep_masked_rows)

    def _keep_masked_rows(self, _module: Any, args: tuple[Any, ...]) -> Optional[tuple[Any, ...]]:
        masked = getattr(self._rows, "masked", None)
        if masked is None:
            return None  # another caller's forward pass: unchanged
        return (args[0][masked].unsqueeze(0), *args[1:])

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        if not self._hooked:
            return super()._forward(model_inputs)
        input_ids = model_inputs["input_ids"]
        masked = input_ids == self.tokenizer.mask_token_id  # type: ignore[union-attr]  # a fill-mask tokenizer
        self._rows.masked = masked
        try:
            compact = self.model(**model_inputs)["logits"]  # (1, masked positions, vocabulary)
        finally:
            self._rows.masked = None
        # Built on the CPU, where the pipeline moves every output before `postprocess`: on a GPU only the masked
        # rows cross over, not a (batch, length, vocabulary) tensor.
        logits = torch.empty((*input_ids.shape, compact.shape[-1]), dtype=compact.dtype)
        logits[masked.cpu()] = compact[0].cpu()
        return {"logits": logits, "input_ids": input_ids}


class FillMaskTask:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.pipe = MaskedRowsFillMask(model=model, tokenizer=tokenizer, device=model.device)
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
        outputs: Any = self.pipe(list(texts), top_k=top_k, batch_size=batch_size)  # one text: unwrapped
        if len(texts) == 1:  # the pipeline unwraps a one-text list
            outputs = [outputs]
        results = []
        for count, output in zip(counts, outputs):
            # The pipeline returns a flat list for one mask and a list per mask for several.
            per_mask = [output] if count == 1 else output
            results.append([[MaskFill(token=str(c["token_str"]), score=float(c["score"]), sequence=str(c["sequence"]))
                             for c in candidates] for candidates in per_mask])
        return results
