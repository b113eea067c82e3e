"""Choosing a row's next token from llama.cpp's logits, in numpy: the same parameters as the transformers engine.

Sampling happens here rather than in llama.cpp's sampler chain so that every feature the app offers means the same on
both runtimes and each row owns its random stream: greedy is the arg-max; otherwise repetition penalty (over the
prompt and the reply, as transformers), OpenAI's presence / frequency penalties (over the reply, as vLLM) and
logit_bias, the grammar's allowed tokens (llguidance, `response_format`), then temperature, top-k and top-p, and a draw
from the row's own seeded generator (same seed, same text, whatever else runs). The probabilities reported for the
teaching view and the API's `logprobs` are the model's own distribution (softmax of the raw logits), as the
transformers engine reports them. A vocabulary of 49k costs well under a millisecond per token.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from backend.core.types import GenerationParams

if TYPE_CHECKING:
    from llguidance import LLMatcher


@dataclass(frozen=True)
class Pick:
    """A chosen token, its probability under the model, and the most likely tokens (id, probability)."""

    token_id: int
    probability: float
    alternatives: tuple[tuple[int, float], ...]


class RowSampler:
    """One row's token choices, step after step (it remembers the reply's tokens for the penalties)."""

    def __init__(self, params: GenerationParams, seed: int, prompt_ids: Sequence[int],
                 matcher: Optional[LLMatcher] = None, eog_ids: Sequence[int] = ()) -> None:
        self.params = params
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.penalised = np.unique(np.asarray(prompt_ids, dtype=np.int64)) \
            if params.repetition_penalty != 1.0 else np.zeros(0, dtype=np.int64)
        self.counts: Counter[int] = Counter()
        self.matcher = matcher  # an llguidance.LLMatcher for a constrained row
        self.eog_ids = list(eog_ids)
        self.bias = [(token, float(value)) for token, value in params.logit_bias]

    def choose(self, logits: np.ndarray) -> Pick:
        """The next token from this step's logits (a float32 view of the vocabulary; not modified)."""
        params = self.params
        scores = np.array(logits, dtype=np.float32)  # a copy: the logits buffer belongs to llama.cpp
        if params.repetition_penalty != 1.0 and self.penalised.size:
            chosen = scores[self.penalised]
            scores[self.penalised] = np.where(chosen > 0, chosen / params.repetition_penalty,
                                              chosen * params.repetition_penalty)
        if self.counts and (params.presence_penalty or params.frequency_penalty):
            ids = np.fromiter(self.counts.keys(), dtype=np.int64)
            seen = np.fromiter(self.counts.values(), dtype=np.float32)
            scores[ids] -= params.frequency_penalty * seen + params.presence_penalty
        for token, value in self.bias:
            if token < scores.size:
                scores[token] += value
        if self.matcher is not None:
            scores = self._constrained(scores)
        if params.greedy:
            token = int(np.argmax(scores))
        else:
            token = self._draw(scores)
        return self._pick(logits, token)

    def accept(self, token: int) -> None:
        """Records the chosen token (penalties, grammar state)."""
        self.counts[token] += 1
        if params_penalise_repeats(self.params):
            self.penalised = np.union1d(self.penalised, np.asarray([token], dtype=np.int64))
        if self.matcher is not None and not self.matcher.is_stopped() and not self.matcher.is_error():
            self.matcher.consume_token(token)

    # ------------------------------------------------------------------------------------------ internals

    def _constrained(self, scores: np.ndarray) -> np.ndarray:
        """Every token the grammar forbids at -inf; once the grammar is complete, only end-of-generation."""
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

        matcher = self.matcher
        assert matcher is not None  # only called when the row has a grammar
        allowed = np.zeros(scores.size, dtype=bool)
        if matcher.is_stopped() or matcher.is_error():
            allowed[self.eog_ids] = True
        else:
            bitmask = allocate_token_bitmask(1, scores.size)
            fill_next_token_bitmask(matcher, bitmask, 0)
            bits = np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: scores.size]
            allowed = bits.astype(bool)
        return np.where(allowed, scores, -np.inf).astype(np.float32)

    def _draw(self, scores: np.ndarray) -> int:
        params = self.params
        scores = scores.astype(np.float64) / params.temperature
        if 0 < params.top_k < scores.size:
            kth = np.partition(scores, -params.top_k)[-params.top_k]
            scores[scores < kth] = -np.inf
        probabilities = _softmax(scores)
        if params.top_p < 1.0:
            order = np.argsort(-probabilities, kind="stable")
            cumulative = np.cumsum(probabilities[order])
            # Keep the smallest set whose mass reaches top_p (the token that crosses it included).
            keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]
            kept = np.zeros_like(probabilities)
            kept[keep] = probabilities[keep]
            probabilities = kept / kept.sum()
        return int(self.rng.choice(probabilities.size, p=probabilities))

    def _pick(self, logits: np.ndarray, token: int) -> Pick:
        alternatives = self.params.top_alternatives
        if not alternatives:
            return Pick(token, 0.0, ())
        probabilities = _softmax(np.asarray(logits, dtype=np.float64))
        top = np.argpartition(-probabilities, alternatives)[:alternatives]
        top = top[np.argsort(-probabilities[top], kind="stable")]
        return Pick(token, float(probabilities[token]),
                    tuple((int(index), float(probabilities[index])) for index in top))


def params_penalise_repeats(params: GenerationParams) -> bool:
    return params.repetition_penalty != 1.0


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - np.max(scores))
    return shifted / shifted.sum()
