"""Perplexity from per-text negative log-likelihoods, as a local `evaluate` module that works offline.

Inputs are what the runner measures with the model: each text's summed NLL (natural log) over its scored tokens
and how many tokens were scored. `perplexity` is corpus-level: exp(total NLL / total tokens), i.e. every token
weighs the same. `mean_perplexity` is the mean of per-text perplexities (what Hugging Face's `perplexity` metric
reports), which long texts do not dominate.

Each import on its own line: `evaluate` scans this file's imports line by line when it loads it.
"""

from __future__ import annotations

import math

import datasets
import numpy as np

from backend.evaluation import metric_base

_FEATURES = datasets.Features({"nll": datasets.Value("float64"), "tokens": datasets.Value("int64")})


class Perplexity(metric_base.DescribedMetric):
    DESCRIPTION = "Token-level perplexity exp(mean NLL) over a corpus, and the mean of per-text perplexities."
    INPUTS = "nll: summed negative log-likelihood per text (nats); tokens: tokens scored per text"
    FEATURES = _FEATURES

    def _compute(self, nll: list[float], tokens: list[int]) -> dict[str, float]:
        return self.aggregate(self.example_stats(nll, tokens))

    def example_stats(self, nll: list[float], tokens: list[int]) -> np.ndarray:
        return np.column_stack([np.asarray(nll, dtype=np.float64), np.asarray(tokens, dtype=np.float64)])

    def aggregate(self, stats: np.ndarray) -> dict[str, float]:
        scored = stats[stats[:, 1] > 0]  # a text with no token to predict has no perplexity
        if not len(scored):
            return {"perplexity": float("nan"), "mean_perplexity": float("nan"), "nll_per_token": float("nan")}
        per_token = float(scored[:, 0].sum() / scored[:, 1].sum())
        return {
            "perplexity": math.exp(per_token),
            "mean_perplexity": float(np.exp(scored[:, 0] / scored[:, 1]).mean()),
            "nll_per_token": per_token,
        }

    def example_scores(self, stats: np.ndarray) -> dict[str, list[float]]:
        return {
            "perplexity": [math.exp(nll / count) if count else float("nan") for nll, count in stats],
            "tokens": [float(count) for _, count in stats],
        }
