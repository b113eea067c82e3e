"""One text's token ids with as little work under the GIL as transformers' own call allows.

`tokenizer(text)["input_ids"]` on a transformers 5 `TokenizersBackend` runs the Rust tokenizer's `encode_batch`
(which releases the GIL), then makes Python lists of the ids *and* of the attention mask, and callers copied the
ids once more with `list(...)`: three single C calls that hold the GIL for the whole length. For the longest chat
/tokenize takes (1,000 messages of 3,900 characters, 1,818,003 tokens) that was 0.14-0.19 s + 0.02 s in which no
other thread of the server ran, the event loop included (docs/RELIABILITY.md, issue 27).

Freeing that encoding held the GIL longer still (0.21-0.23 s: its offsets, token strings, masks), and making them
was most of the encoding's CPU (3.8 s of 1.8 million ids, against 1.4 s without).

`encode_ids` asks the Rust tokenizer itself, as transformers does for one text, but through `encode_batch_fast`
(the same ids; offsets not tracked: 0.003 s to free) where the installed tokenizers has it (0.20 and later), then
the encoding's `ids`, and makes one list (~0.05 s for those ids); `count_ids` makes none. They do so only for
a tokenizer whose call is transformers' own and whose Rust tokenizer is set as that call would set it (no
truncation or padding, the same `split_special_tokens`); any other tokenizer (a slow one, a subclass with its own
encoding) goes through `tokenizer(...)` as before. tests/test_token_ids.py checks the ids are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, cast

from backend.core.hf_types import HFTokenizer

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer


def _rust_tokenizer(tokenizer: HFTokenizer) -> Optional["Tokenizer"]:
    """The `tokenizers.Tokenizer` that transformers' call would run with nothing changed, or None."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    kind = type(tokenizer)
    if not isinstance(tokenizer, TokenizersBackend) or hasattr(tokenizer, "_switch_to_input_mode"):
        return None
    if kind.__call__ is not PreTrainedTokenizerBase.__call__ or \
            kind._encode_plus is not TokenizersBackend._encode_plus:  # type: ignore[attr-defined]
        return None
    rust = getattr(tokenizer, "_tokenizer", None)
    if not isinstance(rust, Tokenizer) or rust.truncation is not None or rust.padding is not None:
        return None
    if rust.encode_special_tokens != bool(getattr(tokenizer, "split_special_tokens", False)):
        return None
    return rust


def _encoding(rust: "Tokenizer", text: str, add_special_tokens: bool) -> "Encoding":
    encode = getattr(rust, "encode_batch_fast", None) or rust.encode_batch
    return cast("Encoding", encode([text], add_special_tokens=add_special_tokens)[0])


def encode_ids(tokenizer: HFTokenizer, text: str, add_special_tokens: bool = True) -> list[int]:
    """`list(tokenizer(text, add_special_tokens=...)["input_ids"])`, the same ids made into one Python list."""
    rust = _rust_tokenizer(tokenizer)
    if rust is None:
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    return _encoding(rust, text, add_special_tokens).ids  # a new list


def count_ids(tokenizer: HFTokenizer, text: str, add_special_tokens: bool = True) -> int:
    """`len(tokenizer(text, add_special_tokens=...)["input_ids"])` without making the ids Python ints."""
    rust = _rust_tokenizer(tokenizer)
    if rust is None:
        return len(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    return len(_encoding(rust, text, add_special_tokens))
