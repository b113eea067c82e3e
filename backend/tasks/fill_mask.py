"""Fill-mask with transformers' fill-mask pipeline: top-k tokens for every mask in the text.

The pipeline projects every token onto the vocabulary and then reads only the masked positions; on a MiniLM-sized
model that projection (30,522 words) costs more than the encoder itself. `masked_rows_pipeline` runs the same
pipeline (its pre-processing, batching, top-k and decoding untouched) with the vocabulary projection fed only the
masked rows (bench/fill_mask_head.py, docs/BENCHMARKS.md).

The mask token is read from the checkpoint's tokenizer files before anything loads (`mask_token_of`), so a text
without it is refused at once, naming the token; a whole-file run skips such rows and counts them.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer
import json
import threading
from dataclasses import dataclass, replace
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional, Sequence, TypedDict, cast

from backend.core.checkpoint import checkpoint_file
from backend.core.error_codes import refuse
from backend.tasks.base import MAX_TOP_K, Cell, LoadContext, ModelClass, TaskHandler, TaskRequest, TaskSpec, \
    whole_number
from backend.tasks.types import MaskFill
from backend.core.types import GenerationParams, ModelLoadError

if TYPE_CHECKING:
    import torch
    from transformers import FillMaskPipeline

    from backend.core.model_spec import ModelSpec

MAX_MASKS = 10


@dataclass(frozen=True)
class FillMaskOptions:
    top_k: int = 5
    mask_token: Optional[str] = None  # this model's, when known before loading (whole-file runs skip rows without)


def mask_token_of(model: "ModelSpec") -> Optional[str]:
    """The model's mask token from its tokenizer files, without loading it (None when not on disk yet)."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = checkpoint_file(model, name)
        if path is None:
            continue
        try:
            token = json.loads(path.read_text(encoding="utf-8")).get("mask_token")
        except (OSError, ValueError):
            continue
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str) and token:
            return token
    return None


def count_masks(text: str, token: Optional[str], field: str = "text") -> int:
    """The number of masks in `text`; refuses a text without one (naming the mask token) or with too many."""
    count = text.count(token) if token else 0
    if count == 0:
        raise refuse("no_mask", "text", shown=field, token=token)
    if count > MAX_MASKS:
        raise refuse("too_many_masks", "text", count=count, most=MAX_MASKS)
    return count


_PIPELINE_CLASS: Optional[Callable[..., FillMaskPipeline]] = None


def masked_rows_pipeline(model: HFModel, tokenizer: HFTokenizer) -> FillMaskPipeline:
    """A FillMaskPipeline whose vocabulary projection sees only the masked positions.

    A forward pre-hook on the model's output embeddings (the projection every masked-LM head ends with: BERT,
    RoBERTa, DistilBERT, ALBERT, ...) keeps just the rows being predicted; `_forward` then puts those logits back
    at their positions in a (batch, length, vocabulary) tensor whose other rows are never read by `postprocess`
    and never written (allocated uninitialised, so they cost no memory traffic). A model without output
    embeddings runs the plain pipeline. (The class is made on first use: transformers loads only then.)
    """
    global _PIPELINE_CLASS
    if _PIPELINE_CLASS is None:
        _PIPELINE_CLASS = _define_pipeline_class()
    return _PIPELINE_CLASS(model=model, tokenizer=tokenizer, device=model.device)


def _define_pipeline_class() -> Callable[..., FillMaskPipeline]:
    import torch
    from transformers import FillMaskPipeline

    class MaskedRowsFillMask(FillMaskPipeline):
        def __init__(self, *args: Any, **kwargs: Any) -> None:  # the pipeline's own parameters, passed on
            super().__init__(*args, **kwargs)
            self._rows = threading.local()  # the mask of the forward pass on this thread (threads share a model)
            projection = self.model.get_output_embeddings()
            self._hooked = projection is not None
            if self._hooked:
                projection.register_forward_pre_hook(self._keep_masked_rows)

        def _keep_masked_rows(self, _module: torch.nn.Module,
                              args: tuple[torch.Tensor, ...]) -> Optional[tuple[torch.Tensor, ...]]:
            masked = getattr(self._rows, "masked", None)
            if masked is None:
                return None  # another caller's forward pass: unchanged
            return (args[0][masked].unsqueeze(0), *args[1:])

        def _forward(self, model_inputs: dict[str, torch.Tensor]  # type: ignore[override]  # as called
                     ) -> Mapping[str, torch.Tensor]:
            if not self._hooked:
                return super()._forward(model_inputs)
            input_ids = model_inputs["input_ids"]
            assert self.tokenizer is not None  # a fill-mask pipeline always has one
            masked = input_ids == self.tokenizer.mask_token_id
            self._rows.masked = masked
            try:
                compact = self.model(**model_inputs)["logits"]  # (1, masked positions, vocabulary)
            finally:
                self._rows.masked = None
            # Built on the CPU, where the pipeline moves every output before `postprocess`: on a GPU only the
            # masked rows cross over, not a (batch, length, vocabulary) tensor.
            logits = torch.empty((*input_ids.shape, compact.shape[-1]), dtype=compact.dtype)
            logits[masked.cpu()] = compact[0].cpu()
            return {"logits": logits, "input_ids": input_ids}

    return MaskedRowsFillMask


class Candidate(TypedDict):
    """One candidate of the fill-mask pipeline."""

    score: float
    token: int
    token_str: str
    sequence: str


# The texts, their mask counts, top_k, batch size.
FillMaskBatch = tuple[list[str], list[int], int, int]


class FillMaskHandler(TaskHandler[FillMaskOptions, list[list[MaskFill]], FillMaskBatch, list[list[list[Candidate]]]]):
    """The pipeline batches internally (its DataLoader), so the three steps are its own: preprocess counts the
    masks, forward runs the pipeline over the batch, postprocess shapes its candidates."""

    def __init__(self, context: LoadContext) -> None:
        super().__init__(context)
        self.pipe = masked_rows_pipeline(context.model, context.tokenizer)
        self.mask_token: str = context.tokenizer.mask_token

    def preprocess(self, request: TaskRequest[FillMaskOptions]) -> FillMaskBatch:
        texts = list(request.inputs.texts)
        many = len(texts) > 1
        counts = [count_masks(text, self.mask_token, f"text[{index}]" if many else "text")
                  for index, text in enumerate(texts)]
        return texts, counts, request.options.top_k, request.batch_size or 16

    def forward(self, model_inputs: FillMaskBatch) -> list[list[list[Candidate]]]:
        """The pipeline's candidates per text, per mask."""
        texts, counts, top_k, batch_size = model_inputs
        outputs = self.pipe(texts, top_k=top_k, batch_size=batch_size)
        per_text: list[object] = [outputs] if len(texts) == 1 else list(outputs)  # it unwraps a one-text list
        # ... and returns a flat list for one mask, a list per mask for several (its annotation says neither).
        return cast("list[list[list[Candidate]]]",
                    [[output] if count == 1 else output for count, output in zip(counts, per_text)])

    def postprocess(self, model_outputs: list[list[list[Candidate]]],
                    request: TaskRequest[FillMaskOptions]) -> list[list[list[MaskFill]]]:
        return [[[MaskFill(token=str(c["token_str"]), score=float(c["score"]), sequence=str(c["sequence"]))
                  for c in candidates] for candidates in per_mask] for per_mask in model_outputs]

    def __call__(self, request: TaskRequest[FillMaskOptions]) -> list[list[list[MaskFill]]]:
        # One call: the pipeline splits the batch itself.
        return self.postprocess(self.forward(self.preprocess(request)), request)


class FillMaskSpec(TaskSpec[FillMaskOptions, list[list[MaskFill]]]):
    name = "fill_mask"
    title_key = "tasks_fill_mask"
    architectures = ("ForMaskedLM",)
    columns = ("prediction", "predictions")
    file_stem = "fills"

    def model_class(self, architectures: Sequence[str]) -> ModelClass:
        from transformers import AutoModelForMaskedLM

        return AutoModelForMaskedLM

    def options(self, top_k: int = 5) -> FillMaskOptions:
        return FillMaskOptions(whole_number("top_k", top_k, 1, MAX_TOP_K))

    def check_model(self, request: TaskRequest[FillMaskOptions], model: "ModelSpec") -> None:
        token = mask_token_of(model)
        if token is None:
            return  # not on disk yet: the loaded tokenizer's token is checked by the handler
        texts = request.inputs.texts
        for index, text in enumerate(texts):
            count_masks(text, token, "text" if len(texts) == 1 else f"text[{index}]")

    def handler(self, context: LoadContext) -> FillMaskHandler:
        if not context.tokenizer.mask_token:
            raise ModelLoadError(f"model '{context.model_id}': its tokenizer has no mask token; it cannot fill masks")
        context.notes.append(f"mask token: {context.tokenizer.mask_token}")
        return FillMaskHandler(context)

    def file_options(self, model: "ModelSpec", raw: Mapping[str, object],
                     params: Optional[GenerationParams] = None) -> FillMaskOptions:
        return replace(self.checked_options(raw), mask_token=mask_token_of(model))

    def usable(self, text: str, options: FillMaskOptions) -> bool:
        return bool(options.mask_token) and options.mask_token in text  # type: ignore[operator]

    def loaded_options(self, model: "ModelSpec", options: FillMaskOptions) -> FillMaskOptions:
        """After loading, the tokenizer files are on disk even for a Hub model that was not downloaded before."""
        return options if options.mask_token else replace(options, mask_token=mask_token_of(model))

    def file_row(self, result: list[list[MaskFill]]) -> tuple[Cell, ...]:
        best = " | ".join(candidates[0].token for candidates in result if candidates)
        detail = [[{"token": c.token, "score": c.score} for c in candidates] for candidates in result]
        return best, json.dumps(detail, ensure_ascii=False)


SPEC = FillMaskSpec()
