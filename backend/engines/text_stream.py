"""Turning a stream of token ids into a stream of text, cheaply and safely. No torch here.

`IncrementalDecoder` decodes only a small window per token (never the whole text again, which makes long
replies quadratic), and holds back bytes that do not yet form a whole character. `StopMatcher` finds stop
sequences that may straddle token boundaries and holds back a tail that could still become one, so text
after a stop sequence never reaches the user.
"""

from __future__ import annotations

from backend.core.hf_types import HFTokenizer, decoded_text
from typing import Sequence

_INCOMPLETE = "\ufffd"  # what a tokenizer decodes a partial UTF-8 sequence to


class IncrementalDecoder:
    """Feeds token ids one at a time and returns the text each one completes."""

    def __init__(self, tokenizer: HFTokenizer, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._tokens: list[int] = []
        # Decoding starts a little before the new tokens so tokenizers that drop a leading space when
        # decoding from the middle of a word (SentencePiece) still produce the right text.
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        self._tokens.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is left at the end, even an incomplete character."""
        return self._advance(final=True)

    def _decode(self, tokens: Sequence[int]) -> str:
        return decoded_text(self._tokenizer, tokens, skip_special_tokens=self._skip_special)

    def _advance(self, final: bool) -> str:
        prefix_text = self._decode(self._tokens[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._tokens[self._prefix_offset :])
        if len(full_text) > len(prefix_text) and (final or not full_text.endswith(_INCOMPLETE)):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._tokens)
            return full_text[len(prefix_text) :]
        return ""


class StopMatcher:
    """Accumulates text, cuts it at the first stop sequence, and releases only text that is safe to show."""

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(s for s in stop if s)
        self.text = ""  # everything accepted so far, cut at the stop sequence once one is found
        self._released = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Adds generated text; returns the part that can be shown now."""
        if self.stopped or not piece:
            return ""
        search_from = max(0, len(self.text) - max((len(s) for s in self._stop), default=0))
        self.text += piece
        cut = self._first_stop(search_from)
        if cut is not None:
            self.text = self.text[:cut]
            self.stopped = True
            return self._release(len(self.text))
        return self._release(len(self.text) - self._held_back_tail())

    def flush(self) -> str:
        """At the end of generation a held-back tail is ordinary text."""
        return self._release(len(self.text))

    def _first_stop(self, search_from: int) -> int | None:
        positions = [p for p in (self.text.find(s, search_from) for s in self._stop) if p != -1]
        return min(positions) if positions else None

    def _held_back_tail(self) -> int:
        """Length of the longest end of the text that is the start of some stop sequence."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _release(self, upto: int) -> str:
        upto = max(upto, self._released)
        piece = self.text[self._released : upto]
        self._released = upto
        return piece
