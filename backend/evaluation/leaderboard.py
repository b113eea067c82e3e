"""The arena's leaderboard: Bradley-Terry strengths fitted to pairwise votes, with bootstrap confidence intervals,
vote counts and a CSV.

The model: model i beats model j with probability sigma(theta_i - theta_j) (sigma the logistic function, theta the
log-strength). The fit maximises

    sum over pairs (i, j) of  w_ij * log sigma(theta_i - theta_j)   -   PRIOR_PRECISION / 2 * sum_i theta_i^2

by Newton's method (the objective is strictly concave, so it converges in a handful of steps to the one maximum).

- Ties count as half a win for each side (w_ij gets 0.5 for a tie between i and j), as Chatbot Arena counts them;
  "both bad" / "all bad" is a tie too. Davidson's model would add a tie parameter; with the few votes one user
  casts it is poorly determined, and half wins keep the fit the plain Bradley-Terry one.
- The weak Gaussian prior on the log-strengths (precision PRIOR_PRECISION, i.e. a standard deviation of about
  3.2 on theta, ~550 rating points) keeps every strength finite when a model never won (or never lost), or when
  some models never met: the plain maximum likelihood does not exist then. It also fixes the scale's origin
  (the strengths' logs sum to zero at the maximum), so no normalisation step is needed.
- Ratings are shown on the familiar Elo-like scale: 1000 + 400 * theta / ln 10 (a 400-point gap = 10:1 odds).
- Confidence intervals: the votes are resampled with replacement BOOTSTRAP_ROUNDS times (a vote with several
  sides stays whole) and refitted; the interval is the 2.5th to 97.5th percentile of each model's rating.

Plain data in, plain data out: backend/data/votes.py turns stored votes into battles; the UI shows the rows.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

PRIOR_PRECISION = 0.1
BOOTSTRAP_ROUNDS = 200
BASE_RATING = 1000.0
SCALE = 400.0 / math.log(10.0)  # rating points per unit of log-strength
MAX_STEPS = 100


@dataclass(frozen=True)
class Pair:
    """One pairwise result inside a vote: `score` is 1 when `first` won, 0 when `second` won, 0.5 for a tie."""

    first: str
    second: str
    score: float


Battle = Sequence[Pair]  # the pairs of one vote (one pair for two sides; up to six for four)


@dataclass(frozen=True)
class Standing:
    """One row of the leaderboard."""

    rank: int
    model: str
    rating: float
    ci_low: float
    ci_high: float
    votes: int  # votes the model took part in
    wins: float  # pairwise wins inside those votes
    ties: float
    losses: float


def _tables(pairs: Sequence[Pair], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(w, n): w[i, j] = i's score against j (wins + half ties), n[i, j] = games between i and j."""
    size = len(index)
    won = np.zeros((size, size))
    for pair in pairs:
        i, j = index[pair.first], index[pair.second]
        if i == j:
            continue  # a model against itself tells nothing about its strength
        won[i, j] += pair.score
        won[j, i] += 1.0 - pair.score
    return won, won + won.T


def log_likelihood(theta: np.ndarray, won: np.ndarray, prior: float = PRIOR_PRECISION) -> float:
    """The objective the fit maximises (see the module docstring)."""
    diff = theta[:, None] - theta[None, :]
    log_sigma = -np.logaddexp(0.0, -diff)
    return float((won * log_sigma).sum() - prior / 2.0 * (theta ** 2).sum())


def fit_log_strengths(pairs: Sequence[Pair], models: Sequence[str],
                      prior: float = PRIOR_PRECISION) -> dict[str, float]:
    """theta per model (log-strengths, summing to zero at the maximum) by Newton's method."""
    if prior <= 0:
        raise ValueError("prior: must be > 0 (without it the maximum may not exist)")
    index = {model: position for position, model in enumerate(models)}
    won, games = _tables(pairs, index)
    theta = np.zeros(len(models))
    wins = won.sum(axis=1)
    for _ in range(MAX_STEPS):
        sigma = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        gradient = wins - (games * sigma).sum(axis=1) - prior * theta
        weight = games * sigma * (1.0 - sigma)
        hessian = weight - np.diag(weight.sum(axis=1) + prior)  # negative definite: prior > 0
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if np.abs(step).max() < 1e-10:
            break
    return {model: float(theta[index[model]]) for model in models}


def rating(theta: float) -> float:
    return BASE_RATING + SCALE * theta


def models_of(battles: Sequence[Battle]) -> list[str]:
    """Every model in the battles, sorted by name."""
    return sorted({model for battle in battles for pair in battle for model in (pair.first, pair.second)})


def standings(battles: Sequence[Battle], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0,
              prior: float = PRIOR_PRECISION) -> list[Standing]:
    """The leaderboard, best first: ratings from all votes, intervals from `rounds` bootstrap resamples."""
    models = models_of(battles)
    if not models:
        return []
    every_pair = [pair for battle in battles for pair in battle]
    theta = fit_log_strengths(every_pair, models, prior)
    samples = np.empty((rounds, len(models)))
    generator = np.random.default_rng(seed)
    for row in range(rounds):
        chosen = generator.integers(0, len(battles), size=len(battles))
        resampled = [pair for position in chosen for pair in battles[position]]
        fitted = fit_log_strengths(resampled, models, prior)
        samples[row] = [rating(fitted[model]) for model in models]
    low, high = (np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)) if rounds else \
        (np.full(len(models), np.nan), np.full(len(models), np.nan))
    counts = _counts(battles)
    order = sorted(range(len(models)), key=lambda k: (-theta[models[k]], models[k]))
    return [Standing(rank + 1, models[k], rating(theta[models[k]]), float(low[k]), float(high[k]),
                     *counts.get(models[k], (0, 0.0, 0.0, 0.0)))
            for rank, k in enumerate(order)]


def _counts(battles: Sequence[Battle]) -> dict[str, tuple[int, float, float, float]]:
    """(votes, wins, ties, losses) per model; ties counted once per tied pair."""
    found: dict[str, list[float]] = {}
    for battle in battles:
        seen: set[str] = set()
        for pair in battle:
            if pair.first == pair.second:
                continue
            for model, score in ((pair.first, pair.score), (pair.second, 1.0 - pair.score)):
                counts = found.setdefault(model, [0, 0.0, 0.0, 0.0])
                if model not in seen:
                    counts[0] += 1
                    seen.add(model)
                slot = 1 if score == 1.0 else 3 if score == 0.0 else 2
                counts[slot] += 1
    return {model: (int(c[0]), c[1], c[2], c[3]) for model, c in found.items()}


CSV_COLUMNS = ("rank", "model", "rating", "ci_low", "ci_high", "votes", "wins", "ties", "losses")


def as_rows(table: Sequence[Standing], digits: int = 1) -> list[dict[str, object]]:
    """The standings as plain rows (ratings rounded), in CSV_COLUMNS order."""
    return [{"rank": s.rank, "model": s.model, "rating": round(s.rating, digits),
             "ci_low": _rounded(s.ci_low, digits), "ci_high": _rounded(s.ci_high, digits), "votes": s.votes,
             "wins": _whole(s.wins), "ties": _whole(s.ties), "losses": _whole(s.losses)} for s in table]


def to_csv(table: Sequence[Standing]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(as_rows(table, digits=3))
    return out.getvalue()


def _rounded(value: float, digits: int) -> Optional[float]:
    return None if math.isnan(value) else round(value, digits)


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
