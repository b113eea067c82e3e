"""The arena's votes (Compare tab): which of 2-4 replies to the same user turns was best, stored per user like
chat ratings, and what is made of them: the leaderboard's battles and preference (chosen / rejected) datasets.

A vote is one JSON line in `user_dir("feedback", user)/votes.jsonl`: the round's id (its key: a round is voted
once; a later line for the same round replaces the earlier one), whether the round was blind, the models in side
order (A, B, C, D), each side's conversation up to and including its last reply (each side keeps its own history
of the same user turns), and the outcome: a side's letter (that side was best), "tie" or "bad" (all were bad).
Bounds as for ratings: one vote's line at most MAX_VOTE_BYTES, a user keeps at most MAX_USER_VOTES votes and a
file of at most MAX_USER_VOTES_BYTES (compacted to the last line per round before a vote is refused).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, TypedDict

from backend.core.error_codes import refuse
from backend.core.types import InvalidInputError
from backend.data.feedback import Conversation, PreferenceRow, clean_conversation, stored_conversation
from backend.data.keyed_log import LogBounds, append_line, latest_entries, log_line
from backend.data.store import DatasetInfo, now, save_dataset
from backend.evaluation.leaderboard import Battle, Pair
from backend.guard.user_space import folder_name, is_admin, user_dir, visible_dirs

VOTES_FILE = "votes.jsonl"
SIDES = "ABCD"
MIN_SIDES, MAX_SIDES = 2, 4
TIE, ALL_BAD = "tie", "bad"
MAX_VOTE_BYTES = 1024 * 1024  # up to four conversations
MAX_USER_VOTES = 2_000
MAX_USER_VOTES_BYTES = 32 * 1024 * 1024
_lock = threading.Lock()


class VoteEntry(TypedDict):
    """One line of votes.jsonl."""

    key: str  # the round's id
    time: str
    blind: bool
    models: list[str]  # by side
    outcome: str
    conversations: list[Conversation]  # by side


@dataclass(frozen=True)
class Vote:
    key: str  # the round's id
    models: list[str]  # by side: A, B, ...
    outcome: str  # "A".."D", "tie" or "bad"
    conversations: list[list[dict[str, str]]]  # by side, each ending with that side's reply
    blind: bool = True
    time: str = ""
    user: str = field(default="", compare=False)  # the folder it was read from (an admin reads everyone's)

    @property
    def winner(self) -> Optional[int]:
        """The side picked as best, or None for a tie / all bad."""
        return SIDES.index(self.outcome) if self.outcome in SIDES else None

    @property
    def replies(self) -> list[str]:
        return [conversation[-1]["content"] for conversation in self.conversations]


def outcomes(sides: int) -> tuple[str, ...]:
    """The outcomes a round of `sides` sides may have."""
    return (*SIDES[:sides], TIE, ALL_BAD)


def record_vote(username: Optional[str], round_id: str, models: Sequence[str], conversations: Sequence[object],
                outcome: str, blind: bool = True, root: Optional[Path] = None) -> Vote:
    """Stores the vote of one round (replacing an earlier vote of the same round)."""
    if not isinstance(round_id, str) or not round_id.strip() or len(round_id) > 64:
        raise InvalidInputError("round: a round id of 1 to 64 characters", field="round")
    if not isinstance(models, (list, tuple)) or not MIN_SIDES <= len(models) <= MAX_SIDES:
        raise refuse("arena_sides", "models", low=MIN_SIDES, high=MAX_SIDES)
    if not all(isinstance(model, str) and model.strip() for model in models):
        raise InvalidInputError("models: the id of each side's model", field="models")
    if not isinstance(conversations, (list, tuple)) or len(conversations) != len(models):
        raise InvalidInputError("conversations: one per side", field="conversations")
    if outcome not in outcomes(len(models)):
        raise refuse("arena_outcome", "outcome", got=outcome, allowed=", ".join(outcomes(len(models))))
    cleaned = [clean_conversation(conversation) for conversation in conversations]
    entry: VoteEntry = {"key": round_id, "time": now(), "blind": bool(blind), "models": list(models),
                        "outcome": outcome, "conversations": cleaned}
    line = log_line(entry, limit=MAX_VOTE_BYTES, code="vote_too_large", field="conversations")
    path = user_dir("feedback", username, root) / VOTES_FILE
    append_line(path, round_id, line, LogBounds("votes", MAX_USER_VOTES, "votes_count", MAX_USER_VOTES_BYTES,
                                                "votes_bytes"), _lock)
    return _vote(entry, folder_name(username))


def _vote(entry: Mapping[str, object], user: str) -> Vote:
    """A vote from its log line; KeyError or TypeError for a line of another shape."""
    models, conversations = entry["models"], entry["conversations"]
    if not isinstance(models, list) or not isinstance(conversations, list):
        raise TypeError("a vote's models and conversations are lists")
    return Vote(key=str(entry["key"]), models=[str(model) for model in models], outcome=str(entry["outcome"]),
                conversations=[stored_conversation(c) for c in conversations], blind=bool(entry.get("blind", True)),
                time=str(entry.get("time", "")), user=user)


def load_votes(username: Optional[str], everyone: bool = False, root: Optional[Path] = None,
               environ: Optional[Mapping[str, str]] = None) -> list[Vote]:
    """The user's votes (the last per round), oldest first; with `everyone`, an admin's view of every user's
    votes (anyone else still gets only their own)."""
    if everyone and is_admin(username, environ):
        folders = list(visible_dirs("feedback", username, root, environ))
    else:
        folders = [user_dir("feedback", username, root, create=False)]
    found = []
    for folder in folders:
        for entry in latest_entries(folder / VOTES_FILE).values():
            try:
                found.append(_vote(entry, folder.parent.name))
            except (KeyError, TypeError):
                continue  # a line of another shape: the others still count
    return found


def battles(votes: Sequence[Vote]) -> list[Battle]:
    """The pairwise results of each vote: the best side beat each other side; a tie or "all bad" ties every
    pair. Sides with the same model tell nothing about it and are left out (backend/evaluation/leaderboard.py)."""
    found: list[Battle] = []
    for vote in votes:
        winner = vote.winner
        pairs = []
        for i in range(len(vote.models)):
            for j in range(i + 1, len(vote.models)):
                if vote.models[i] == vote.models[j]:
                    continue
                if winner is None:
                    pairs.append(Pair(vote.models[i], vote.models[j], 0.5))
                elif winner in (i, j):
                    pairs.append(Pair(vote.models[winner], vote.models[j if winner == i else i], 1.0))
        if pairs:
            found.append(pairs)
    return found


def preference_rows(votes: Sequence[Vote]) -> list[PreferenceRow]:
    """chosen / rejected rows in the format the DPO recipe reads (backend/training/recipes/dpo.py, the same as
    the ratings' pairs): the prompt is the winning side's conversation before its reply (in a multi-turn round
    each side kept its own earlier replies; the rejected reply followed the losing side's), chosen the winner's
    reply, rejected each other side's. Ties and "all bad" give no pair; nor do identical replies."""
    rows: list[PreferenceRow] = []
    for vote in votes:
        winner = vote.winner
        if winner is None:
            continue
        chosen = vote.conversations[winner]
        for side, conversation in enumerate(vote.conversations):
            if side == winner or conversation[-1]["content"] == chosen[-1]["content"]:
                continue
            rows.append({"prompt": chosen[:-1], "chosen": [chosen[-1]], "rejected": [conversation[-1]],
                         "chosen_model": vote.models[winner], "rejected_model": vote.models[side]})
    return rows


def save_votes_dataset(username: Optional[str], name: str, root: Optional[Path] = None) -> DatasetInfo:
    """A preference dataset from the user's arena votes (see `preference_rows`), saved for Train (dpo)."""
    import pandas as pd

    votes = load_votes(username, root=root)
    rows = preference_rows(votes)
    if not rows:
        raise refuse("no_vote_pairs", "votes", votes=len(votes))
    card = {"kind": "preference", "created": now(), "columns": list(rows[0]),
            "source": {"votes": VOTES_FILE, "rounds": len(votes)},
            "steps": [{"step": "load", "detail": f"{len(votes)} arena vote(s)", "rows_after": len(votes)},
                      {"step": "build:preference", "rows_after": len(rows)}]}
    return save_dataset({"train": pd.DataFrame(rows)}, card, name, username, "jsonl", root=root)
