"""Names for the third-party objects that travel through the engines, for type hints only.

Why: a loaded model and its tokenizer pass through a dozen functions; `Any` there hid every misuse. These aliases
name the real transformers classes under TYPE_CHECKING, so nothing imports transformers at start-up (DESIGN.md:
nothing loads at start-up) while mypy checks each call against transformers' own annotations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias, cast

if TYPE_CHECKING:
    from torch.nn import Embedding
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    HFModel: TypeAlias = PreTrainedModel
    HFTokenizer: TypeAlias = PreTrainedTokenizerBase
else:  # at run time the names only have to exist for `from backend.core.hf_types import ...`
    HFModel = object
    HFTokenizer = object



def decoded_text(tokenizer: HFTokenizer, token_ids: Sequence[int], **options: bool) -> str:
    """`tokenizer.decode` of one sequence, which is always one string (transformers types it as str | list[str])."""
    return cast(str, tokenizer.decode(list(token_ids), **options))


def rendered_text(rendered: object) -> str:
    """`apply_chat_template(..., tokenize=False)`'s result: one string (typed as a union of every mode's result)."""
    return cast(str, rendered)


def vocabulary_size(model: HFModel) -> int:
    """Rows of the input embedding: the ids the model accepts (can exceed the tokenizer's vocabulary)."""
    return int(cast("Embedding", model.get_input_embeddings()).num_embeddings)


class Generates(Protocol):
    """The part of transformers' GenerationMixin the decode loop calls (its own annotation needs a self type that
    only the generative model classes satisfy, and every causal and seq2seq LM class is one)."""

    def generate(self, **inputs: object) -> object: ...


def generator(model: HFModel) -> Generates:
    """The model as something that generates."""
    return cast(Generates, model)


# What an engine's model / tokenizer attribute holds once `close()` has run: code checks `is None` before use
# (LocalRuntime.check_loaded), and typing the attribute Optional would make every loaded-path use re-check it.
UNLOADED_MODEL = cast(HFModel, None)
UNLOADED_TOKENIZER = cast(HFTokenizer, None)
