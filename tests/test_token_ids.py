"""backend/engines/token_ids.py gives the ids transformers' own call gives: the same list for prompts and rendered
chats, with and without special tokens, on the tiny test tokenizer (byte-level BPE, added special tokens) here and
on real ones (SmolLM2's, MiniLM's WordPiece with [CLS] / [SEP]) in the full tier; a tokenizer it cannot prove the
same for goes through transformers' call."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.engines.token_ids import _rust_tokenizer, count_ids, encode_ids

TEXT = "the printing press spread news and ideas across europe within decades. "
TEXTS = ["", " ", "hello", "  two  spaces\nand a newline\t", "ünïcödé ✓ 漢字 🙂", TEXT * 40,
         "<|user|>hi<|end|>", " <|bos|> leading special", "text<|eos|>"]


def same_ids(tokenizer) -> None:  # noqa: ANN001 - a transformers tokenizer
    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": (TEXT * 3)[: 40 + 17 * i]} for i in range(9)]
    texts = list(TEXTS)
    if tokenizer.chat_template:
        texts.append(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
    texts += [f"{tokenizer.bos_token or ''}{TEXT}{tokenizer.eos_token or ''} {TEXT}"]
    for text in texts:
        for special in (True, False):
            expected = list(tokenizer(text, add_special_tokens=special)["input_ids"])
            assert encode_ids(tokenizer, text, special) == expected, (text[:80], special)
            assert count_ids(tokenizer, text, special) == len(expected), (text[:80], special)


def test_the_tiny_tokenizer_gives_the_same_ids_by_the_short_way(tiny_models_yaml: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models_yaml.parent / "tiny-chat")
    assert _rust_tokenizer(tokenizer) is not None  # the short way is taken
    same_ids(tokenizer)


def test_a_tokenizer_set_otherwise_goes_through_transformers(tiny_models_yaml: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models_yaml.parent / "tiny-chat")
    tokenizer.split_special_tokens = True  # transformers' call would change the Rust tokenizer first
    assert _rust_tokenizer(tokenizer) is None
    assert encode_ids(tokenizer, "<|user|>hi") == list(tokenizer("<|user|>hi")["input_ids"])
    assert len(encode_ids(tokenizer, "<|user|>hi")) > 2  # the special token's text was split
    tokenizer = AutoTokenizer.from_pretrained(tiny_models_yaml.parent / "tiny-chat")
    tokenizer.backend_tokenizer.enable_truncation(4)
    assert _rust_tokenizer(tokenizer) is None
    assert encode_ids(tokenizer, TEXT) == list(tokenizer(TEXT)["input_ids"])
    assert len(encode_ids(tokenizer, TEXT)) > 4  # transformers' call turns truncation off


@pytest.mark.full
def test_real_tokenizers_give_the_same_ids_by_the_short_way(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SmolLM2-135M-Instruct's tokenizer (byte-level BPE, a chat template of special tokens) and MiniLM's
    (WordPiece with a lower-casing normalizer and a [CLS] ... [SEP] post-processor)."""
    from transformers import AutoTokenizer

    from tests.real_minilm import minilm_folder
    from tests.real_smollm2 import GGUF_NAME, smollm2_gguf

    gguf = smollm2_gguf(tmp_path_factory.getbasetemp().parent / "smollm2-gguf")  # the llama.cpp tests' cache
    smollm2 = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=GGUF_NAME)
    assert _rust_tokenizer(smollm2) is not None
    same_ids(smollm2)
    minilm = AutoTokenizer.from_pretrained(minilm_folder(tmp_path_factory.mktemp("minilm")))
    # Its tokenizer.json pads and truncates to 128 tokens, which transformers' call turns off first: the long way
    # until then (same ids), the short one after.
    assert _rust_tokenizer(minilm) is None
    assert encode_ids(minilm, TEXT * 40) == list(minilm(TEXT * 40)["input_ids"])
    assert len(encode_ids(minilm, TEXT * 40)) > 128
    assert _rust_tokenizer(minilm) is not None
    same_ids(minilm)
