"""Token-to-text streaming: incremental decoding and stop sequences, on the tiny model's real tokenizer."""

from __future__ import annotations

import random

import pytest

from backend.engines.text_stream import IncrementalDecoder, StopMatcher


@pytest.fixture(scope="module")
def tokenizer(tiny_config):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_config.spec("tiny-chat").local_path())


class CountingTokenizer:
    """The real tokenizer, counting how many tokens each decode call is given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.decoded_tokens: list[int] = []

    def decode(self, tokens, **kwargs):
        self.decoded_tokens.append(len(tokens))
        return self.inner.decode(tokens, **kwargs)


def stream(tokenizer, token_ids: list[int]) -> list[str]:
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token_id) for token_id in token_ids]
    return pieces + [decoder.flush()]


@pytest.mark.parametrize("text", ["plain ascii words, with punctuation!", "héllo wörld ünïcödé",
                                  "emoji 🙂🚀 and 中文字符",
                                  "שלום עולם right to left", "code: def f(x):\n    return x * 2\n"])
def test_pieces_join_to_the_full_decode(tokenizer, text: str) -> None:
    token_ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = stream(tokenizer, token_ids)
    assert "".join(pieces) == tokenizer.decode(token_ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in piece for piece in pieces)  # a split character is held back, never shown broken


def test_random_token_sequences_join_to_the_full_decode(tokenizer) -> None:
    rng = random.Random(7)
    for _ in range(20):
        token_ids = [rng.randrange(len(tokenizer)) for _ in range(rng.randrange(1, 80))]
        assert "".join(stream(tokenizer, token_ids)) == tokenizer.decode(token_ids, skip_special_tokens=True)


def test_each_token_decodes_a_small_window_not_the_whole_text(tokenizer) -> None:
    counting = CountingTokenizer(tokenizer)
    token_ids = tokenizer.encode("a long reply " * 200, add_special_tokens=False)
    stream(counting, token_ids)
    assert len(token_ids) > 500
    assert max(counting.decoded_tokens) <= 8  # re-decoding the whole text would grow with the reply


def test_stop_sequence_split_across_pieces_is_cut_and_never_shown() -> None:
    matcher = StopMatcher(["STOP"])
    shown = [matcher.feed(piece) for piece in ["Hello wor", "ld ST", "O", "P and more", " text"]]
    assert "".join(shown) == "Hello world "
    assert matcher.stopped and matcher.text == "Hello world "
    assert shown[1] == "ld "  # "ST" is held back: it could be the start of the stop sequence


def test_held_back_prefix_is_released_when_it_turns_out_not_to_stop() -> None:
    matcher = StopMatcher(["</end>"])
    assert matcher.feed("value </e") == "value "
    assert matcher.feed("xtra") == "</extra"
    assert matcher.feed(" </e") == " "
    assert matcher.flush() == "</e"  # the end of generation releases whatever was held
    assert not matcher.stopped


def test_earliest_of_several_stop_sequences_wins() -> None:
    matcher = StopMatcher(["\n\n", "User:"])
    assert matcher.feed("answer User: more\n\nend") == "answer "
