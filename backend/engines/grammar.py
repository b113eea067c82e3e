"""Constrained decoding for `response_format` (JSON Schema / any JSON object) with llguidance.

Why llguidance (measured 2026-12, docs/API.md): one 3.1 MB wheel with no dependencies, a Rust matcher that
computes a row's allowed-token mask in well under a millisecond on this vocabulary; xgrammar pulls triton
(248 MB) and CUDA wheels, outlines pulls eight packages (jsonschema, pillow, ...), lm-format-enforcer is pure
Python (slower masks). It plugs into our own decode step as one more logits step: each constrained row has a
matcher that has consumed the row's tokens so far; its mask sets every token the grammar forbids to -inf before
the row's token is chosen (greedy or sampled), so the text always follows the grammar. When the grammar is
complete only EOS remains allowed, so the row ends.

The GPU step takes plain values (backend/engines/decode.py), so a row carries its grammar as text (RowPlan.grammar)
and finds the tokenizer's llguidance view by its model (`register`, done by the engine before a constrained
request is submitted). Grammars are made from JSON Schemas by backend/services/structured.py.
"""

from __future__ import annotations

from backend.core.hf_types import HFModel, HFTokenizer, vocabulary_size
import threading
from typing import TYPE_CHECKING, Optional, Sequence

import torch

if TYPE_CHECKING:
    from llguidance import LLMatcher, LLTokenizer

    from backend.engines.decode import RowPlan

_TOKENIZERS: dict[int, LLTokenizer] = {}  # id(model) -> the tokenizer's llguidance view
_LOCK = threading.Lock()


def register(model: HFModel, tokenizer: HFTokenizer, eos_token_ids: Sequence[int]) -> None:
    """Makes `tokenizer`'s llguidance view available to decode steps of `model` (once per model)."""
    with _LOCK:
        if id(model) in _TOKENIZERS:
            return
        import llguidance.hf

        vocabulary = vocabulary_size(model)
        _TOKENIZERS[id(model)] = llguidance.hf.from_tokenizer(tokenizer,  # type: ignore[arg-type]  # any fast HF tokenizer works
                                                              n_vocab=vocabulary,
                                                              eos_token=list(eos_token_ids)[0])


def forget(model: HFModel) -> None:
    with _LOCK:
        _TOKENIZERS.pop(id(model), None)


class GrammarMask:
    """The allowed-token masks of a batch's constrained rows, one step at a time."""

    def __init__(self, rows: Sequence[RowPlan], model: HFModel, eos_token_ids: Sequence[int]) -> None:
        import llguidance

        self.eos_token_ids = list(eos_token_ids)
        tokenizer = _TOKENIZERS.get(id(model))
        if tokenizer is None:
            raise RuntimeError("constrained decoding: the model's tokenizer was not registered")
        self.matchers: list[Optional[LLMatcher]] = []
        for row in rows:
            if row.grammar is None:
                self.matchers.append(None)
                continue
            matcher = llguidance.LLMatcher(tokenizer, row.grammar)
            if row.draw_offset:  # a resumed row: its generated tokens are at the end of its prompt
                matcher.consume_tokens(list(row.prompt_ids[-row.draw_offset:]))
            self.matchers.append(matcher)
        self.vocabulary = tokenizer.vocab_size
        self.step = 0

    @classmethod
    def of(cls, rows: Sequence[RowPlan], model: HFModel, eos_token_ids: Sequence[int]) -> Optional["GrammarMask"]:
        return cls(rows, model, eos_token_ids) if any(row.grammar is not None for row in rows) else None

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask

        last = input_ids[:, -1].tolist() if self.step else None
        self.step += 1
        bitmask = allocate_token_bitmask(len(self.matchers), self.vocabulary)
        finished = []
        for row, matcher in enumerate(self.matchers):
            if matcher is None:
                continue
            if last is not None and not matcher.is_stopped() and not matcher.is_error():
                matcher.consume_token(int(last[row]))
            if matcher.is_stopped() or matcher.is_error():
                finished.append(row)  # the grammar is complete: only EOS, so the row ends here
                continue
            fill_next_token_bitmask(matcher, bitmask, row)
        bits = (bitmask.to(logits.device).unsqueeze(2) >> torch.arange(32, device=logits.device,
                                                                       dtype=torch.int32)) & 1
        allowed = bits.reshape(len(self.matchers), -1)[:, :logits.shape[1]].bool()
        if allowed.shape[1] < logits.shape[1]:  # logits wider than the tokenizer: padding ids never allowed
            allowed = torch.nn.functional.pad(allowed, (0, logits.shape[1] - allowed.shape[1]), value=False)
            for row, matcher in enumerate(self.matchers):
                if matcher is None:
                    allowed[row] = True
        for row in finished:
            allowed[row] = False
            allowed[row, self.eos_token_ids] = True
        return logits.masked_fill(~allowed, float("-inf"))
