"""Counting tokens with a registry model's own tokenizer, loaded alone (no weights): cheap enough for stats."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Optional

from backend.core.config import ModelSpec
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    from backend.core.hf_types import HFTokenizer

TokenCounter = Callable[[list[str]], list[int]]


def token_counter(spec: ModelSpec) -> TokenCounter:
    """texts -> their token counts (without special tokens) under `spec`'s tokenizer."""
    if spec.backend != "transformers":
        raise InvalidInputError(f"model '{spec.id}': a remote model's tokenizer is not available here; pick a "
                                "local model to count tokens")
    from backend.engines.loading import hub_checked_offline, model_source
    from backend.core.types import ModelLoadError

    try:
        source = model_source(spec)
        # The server's rule for every command: ask the Hub once with a short timeout; unreachable, a tokenizer
        # that is not cached fails at once saying what to do (not after ~50 s of huggingface_hub's retries).
        cached_only = hub_checked_offline(spec)
    except ModelLoadError as error:
        raise InvalidInputError(str(error)) from None
    tokenizer = _tokenizer(spec.id, source, spec.revision, spec.trust_remote_code, cached_only)

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    return count


@lru_cache(maxsize=4)
def _tokenizer(model_id: str, source: str, revision: Optional[str], trust_remote_code: bool,
               cached_only: bool) -> HFTokenizer:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code,
                                             local_files_only=cached_only)
    except Exception as error:  # offline Hub id, a damaged folder ...
        raise InvalidInputError(f"model '{model_id}': its tokenizer cannot be loaded ({type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else ''})") from None
