"""Names for the third-party objects that travel through the engines, for type hints only.

Why: a loaded model and its tokenizer pass through a dozen functions; `Any` there hid every misuse. These aliases
name the real transformers classes under TYPE_CHECKING, so nothing imports transformers at start-up (DESIGN.md:
nothing loads at start-up) while mypy checks each call against transformers' own annotations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    HFModel: TypeAlias = PreTrainedModel
    HFTokenizer: TypeAlias = PreTrainedTokenizerBase
else:  # at run time the names only have to exist for `from backend.core.hf_types import ...`
    HFModel = object
    HFTokenizer = object

__all__ = ["HFModel", "HFTokenizer"]
