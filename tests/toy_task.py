"""A toy pipeline task added through the recipe (docs/recipes/task.md), for tests/test_task_recipe.py: it counts
the tokens the model reads of each text. One module: its options, its handler (preprocess → forward →
postprocess on a real encoder) and its spec; `register(SPEC)` puts it in the task table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from backend.tasks.base import LoadContext, TaskHandler, TaskRequest, TaskSpec
from backend.core.types import InvalidInputError


@dataclass(frozen=True)
class TokenCountOptions:
    special_tokens: bool = True  # count the tokenizer's [CLS] / [SEP] too


class TokenCountHandler(TaskHandler[TokenCountOptions, int]):
    def preprocess(self, request: TaskRequest[TokenCountOptions]) -> Any:
        return self.tokenizer(list(request.inputs.texts), padding=True, truncation=True, max_length=self.max_length,
                              add_special_tokens=request.options.special_tokens, return_tensors="pt")

    def forward(self, model_inputs: Any) -> Any:
        import torch

        inputs = {name: model_inputs[name] for name in self.tokenizer.model_input_names if name in model_inputs}
        with torch.inference_mode():
            hidden = self.forward_fn(**inputs)["last_hidden_state"]
        # What the encoder read: one hidden state per position, padded positions masked out.
        return hidden.shape[1], model_inputs["attention_mask"]

    def postprocess(self, model_outputs: Any, request: TaskRequest[TokenCountOptions]) -> list[int]:
        width, mask = model_outputs
        assert mask.shape[1] == width
        return [int(n) for n in mask.sum(dim=1).tolist()]


class TokenCountSpec(TaskSpec[TokenCountOptions, int]):
    name = "token_count"
    title_key = "tasks_token_count"
    architectures = ("Model",)  # a bare encoder (BertModel, ...)
    columns = ("tokens",)
    file_stem = "token_counts"

    def model_class(self, architectures: Sequence[str]) -> Any:
        from transformers import AutoModel

        return AutoModel

    def options(self, special_tokens: Any = True) -> TokenCountOptions:
        if not isinstance(special_tokens, bool):
            raise InvalidInputError(f"special_tokens: true or false, got {special_tokens!r}", field="special_tokens")
        return TokenCountOptions(special_tokens)

    def handler(self, context: LoadContext) -> TokenCountHandler:
        context.notes.append("counts tokens")
        return TokenCountHandler(context)

    def file_row(self, result: int) -> tuple[Any, ...]:
        return (result,)


SPEC = TokenCountSpec()
