"""The arena's votes and leaderboard (backend/data/votes.py, backend/evaluation/leaderboard.py): votes stored per
user, the Bradley-Terry fit against scipy's maximisation of the same likelihood, bootstrap intervals, counts, the
CSV, an admin's view of everyone's votes, and preference rows in the format the DPO recipe reads."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from backend.core.types import InvalidInputError
from backend.data import votes
from backend.data.store import dataset_path, list_datasets
from backend.evaluation import leaderboard
from backend.evaluation.leaderboard import Pair

ADMINS = {"WORKBENCH_ADMINS": "carol"}


def chat(*turns: str) -> list[dict[str, str]]:
    """user, assistant, user, assistant, ... from the texts."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]


def cast(user: str | None, root: Path, key: str, models: list[str], outcome: str, blind: bool = True) -> votes.Vote:
    conversations = [chat("hi", f"{model} says hi") for model in models]
    return votes.record_vote(user, key, models, conversations, outcome, blind, root=root)


# ------------------------------------------------------------------------------------------------- storage


def test_a_vote_is_stored_per_user_with_its_conversations_models_and_replies(tmp_path: Path) -> None:
    conversations = [chat("hi", "hello from x", "and?", "x again"), chat("hi", "hello from y", "and?", "y again")]
    vote = votes.record_vote("alice", "round-1", ["x", "y"], conversations, "B", root=tmp_path)
    assert vote.winner == 1 and vote.replies == ["x again", "y again"]
    [stored] = votes.load_votes("alice", root=tmp_path)
    assert (stored.models, stored.outcome, stored.conversations, stored.blind) == \
        (["x", "y"], "B", conversations, True)
    line = json.loads((tmp_path / "users" / "alice" / "feedback" / votes.VOTES_FILE).read_text())
    assert line["key"] == "round-1" and line["conversations"][0][-1]["content"] == "x again"
    assert votes.load_votes("bob", root=tmp_path) == []  # another user sees none of it


def test_voting_a_round_again_replaces_its_vote(tmp_path: Path) -> None:
    cast("alice", tmp_path, "r1", ["x", "y"], "A")
    cast("alice", tmp_path, "r1", ["x", "y"], "tie")
    cast("alice", tmp_path, "r2", ["x", "y"], "B")
    assert [(v.key, v.outcome) for v in votes.load_votes("alice", root=tmp_path)] == [("r1", "tie"), ("r2", "B")]


@pytest.mark.parametrize(("models", "outcome", "code"), [
    (["x"], "A", "arena_sides"),
    (["a", "b", "c", "d", "e"], "A", "arena_sides"),
    (["x", "y"], "C", "arena_outcome"),  # no side C in a two-sided round
    (["x", "y"], "win", "arena_outcome"),
])
def test_bad_votes_are_refused_with_a_code(tmp_path: Path, models: list[str], outcome: str, code: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        cast("alice", tmp_path, "r", models, outcome)
    assert refused.value.code == code


def test_a_user_keeps_at_most_max_votes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(votes, "MAX_USER_VOTES", 2)
    cast("alice", tmp_path, "r1", ["x", "y"], "A")
    cast("alice", tmp_path, "r2", ["x", "y"], "A")
    cast("alice", tmp_path, "r2", ["x", "y"], "B")  # re-voting a round takes no new room
    with pytest.raises(InvalidInputError) as refused:
        cast("alice", tmp_path, "r3", ["x", "y"], "A")
    assert refused.value.code == "votes_count"


def test_an_admin_sees_everyone_and_others_only_their_own(tmp_path: Path) -> None:
    cast("alice", tmp_path, "r1", ["x", "y"], "A")
    cast("bob", tmp_path, "r2", ["x", "y"], "B")
    everyone = votes.load_votes("carol", everyone=True, root=tmp_path, environ=ADMINS)
    assert sorted(v.user for v in everyone) == ["alice", "bob"]
    assert [v.user for v in votes.load_votes("alice", everyone=True, root=tmp_path, environ=ADMINS)] == ["alice"]


# ------------------------------------------------------------------------------------------------- battles


def test_battles_from_two_and_four_sided_votes() -> None:
    two = votes.Vote("r1", ["x", "y"], "B", [chat("q", "a"), chat("q", "b")])
    tie = votes.Vote("r2", ["x", "y"], "tie", [chat("q", "a"), chat("q", "b")])
    four = votes.Vote("r3", ["w", "x", "y", "x"], "C", [chat("q", s) for s in "abcd"])
    bad = votes.Vote("r4", ["w", "x", "y"], "bad", [chat("q", s) for s in "abc"])
    assert votes.battles([two, tie]) == [[Pair("y", "x", 1.0)], [Pair("x", "y", 0.5)]]
    # The best beat every other side; sides sharing a model (x twice) are still each beaten once.
    assert votes.battles([four]) == [[Pair("y", "w", 1.0), Pair("y", "x", 1.0), Pair("y", "x", 1.0)]]
    assert votes.battles([bad]) == [[Pair("w", "x", 0.5), Pair("w", "y", 0.5), Pair("x", "y", 0.5)]]
    same = votes.Vote("r5", ["x", "x"], "A", [chat("q", "a"), chat("q", "b")])
    assert votes.battles([same]) == []  # a model against itself says nothing about it


# --------------------------------------------------------------------------------------------- the fit

FIXED = ([("x", "y", 1.0)] * 7 + [("y", "x", 1.0)] * 3 + [("x", "y", 0.5)] * 2 + [("y", "z", 1.0)] * 5
         + [("z", "y", 1.0)] * 4 + [("x", "z", 1.0)] * 6 + [("z", "x", 1.0)] * 1 + [("w", "x", 1.0)] * 2
         + [("x", "w", 1.0)] * 2 + [("w", "z", 0.5)] * 3)


def scipy_fit(pairs: list[Pair], models: list[str], prior: float) -> np.ndarray:
    """The same objective, maximised by a general-purpose optimiser (BFGS from zero) written out by hand."""
    index = {m: i for i, m in enumerate(models)}

    def negative(theta: np.ndarray) -> float:
        total = 0.0
        for pair in pairs:
            diff = theta[index[pair.first]] - theta[index[pair.second]]
            total += pair.score * np.log(1 / (1 + np.exp(-diff))) + (1 - pair.score) * np.log(1 / (1 + np.exp(diff)))
        return -(total - prior / 2 * float(theta @ theta))

    # BFGS with numerical gradients may stop with "precision loss" at the optimum: its gradient is checked instead.
    found = minimize(negative, np.zeros(len(models)), method="BFGS", options={"gtol": 1e-8})
    assert np.abs(found.jac).max() < 1e-4, found
    return found.x


@pytest.mark.parametrize("prior", [leaderboard.PRIOR_PRECISION, 1.0, 1e-3])
def test_strengths_equal_scipys_maximisation_of_the_same_likelihood(prior: float) -> None:
    pairs = [Pair(*row) for row in FIXED]
    models = leaderboard.models_of([pairs])
    fitted = leaderboard.fit_log_strengths(pairs, models, prior)
    expected = scipy_fit(pairs, models, prior)
    assert np.allclose([fitted[m] for m in models], expected, atol=1e-3), (fitted, expected)
    # And it is the maximum: no nearby point does better.
    index = {m: i for i, m in enumerate(models)}
    won, _ = leaderboard._tables(pairs, index)
    best = leaderboard.log_likelihood(np.array([fitted[m] for m in models]), won, prior)
    rng = np.random.default_rng(1)
    for _ in range(20):
        nudged = np.array([fitted[m] for m in models]) + rng.normal(0, 0.01, len(models))
        assert leaderboard.log_likelihood(nudged, won, prior) < best


def test_a_model_that_never_won_gets_a_finite_low_rating_and_order_follows_the_votes() -> None:
    battles = [[Pair("strong", "weak", 1.0)] for _ in range(6)] + [[Pair("strong", "mid", 1.0)] for _ in range(3)] \
        + [[Pair("mid", "weak", 1.0)] for _ in range(3)] + [[Pair("mid", "strong", 1.0)]]
    table = leaderboard.standings(battles, rounds=50)
    assert [s.model for s in table] == ["strong", "mid", "weak"]
    assert all(np.isfinite(s.rating) and s.ci_low <= s.rating <= s.ci_high for s in table)
    strong = table[0]
    assert (strong.votes, strong.wins, strong.ties, strong.losses) == (10, 9, 0, 1)
    assert table[2].wins == 0 and table[2].rating < leaderboard.BASE_RATING
    # Strengths sum to zero in the log: the ratings centre on the base.
    assert sum(s.rating for s in table) / 3 == pytest.approx(leaderboard.BASE_RATING, abs=1e-6)


def test_intervals_narrow_with_more_votes_and_the_csv_has_every_row() -> None:
    few = [[Pair("x", "y", 1.0)], [Pair("y", "x", 1.0)], [Pair("x", "y", 1.0)]]
    width = {}
    for name, battles in (("few", few), ("many", few * 20)):
        x = next(s for s in leaderboard.standings(battles, rounds=100) if s.model == "x")
        width[name] = x.ci_high - x.ci_low
    assert width["many"] < width["few"] / 2
    table = leaderboard.standings(few, rounds=20)
    rows = list(csv.DictReader(io.StringIO(leaderboard.to_csv(table))))
    assert [row["model"] for row in rows] == ["x", "y"] and list(rows[0]) == list(leaderboard.CSV_COLUMNS)
    assert rows[0]["votes"] == "3" and rows[0]["wins"] == "2" and rows[0]["losses"] == "1"


def test_no_votes_no_standings() -> None:
    assert leaderboard.standings([]) == []


# ------------------------------------------------------------------------------------------ preference data


def test_preference_rows_from_votes_skip_ties_and_all_bad_and_train_reads_them(tmp_path: Path) -> None:
    from backend.training.config import TrainConfig
    from backend.training.recipes.dpo import pairs_from_table

    first = [chat("hi", "x: hello", "more?", "x: more"), chat("hi", "y: hello", "more?", "y: more")]
    votes.record_vote(None, "r1", ["x", "y"], [[{"role": "system", "content": "Be kind."}, *c] for c in first],
                      "B", root=tmp_path)
    cast(None, tmp_path, "r2", ["x", "y"], "tie")
    cast(None, tmp_path, "r3", ["x", "y"], "bad")
    cast(None, tmp_path, "r4", ["x", "y", "z"], "A")  # the best against each of the other two
    with pytest.raises(InvalidInputError) as refused:
        votes.save_votes_dataset(None, "nothing", root=tmp_path / "empty")
    assert refused.value.code == "no_vote_pairs"
    info = votes.save_votes_dataset(None, "arena-pairs", root=tmp_path)
    assert info.kind == "preference" and info.rows == {"train": 3}
    import pandas as pd

    table = pd.read_json(dataset_path(None, "arena-pairs", "train", root=tmp_path), lines=True, dtype=False)
    first_row = table.iloc[0]
    # The winner's side of the multi-turn conversation is the prompt; chosen / rejected the two last replies.
    assert first_row["prompt"] == [{"role": "system", "content": "Be kind."}, *first[1][:-1]]
    assert first_row["chosen"] == [{"role": "assistant", "content": "y: more"}]
    assert first_row["rejected"] == [{"role": "assistant", "content": "x: more"}]
    assert (first_row["chosen_model"], first_row["rejected_model"]) == ("y", "x")
    assert list(table["rejected_model"][1:]) == ["y", "z"]
    config = TrainConfig.model_construct(prompt_column="prompt", chosen_column="chosen", rejected_column="rejected",
                                         system_prompt="")
    pairs = pairs_from_table(table, config, "data")
    assert len(pairs) == 3 and pairs[0]["chosen"][0]["content"] == "y: more"
    assert [info.name for info in list_datasets(None, tmp_path)] == ["arena-pairs"]
