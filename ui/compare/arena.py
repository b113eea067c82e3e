"""A Compare round as plain data (kept in the page's gr.State, so the server holds nothing between events), and
the words shown for it: pane titles, the vote buttons, the reveal.

A round is the models by side, whether it is blind, and its vote once cast. Every turn of a round goes to the
same models on the same sides (each side keeps its own history); a vote ends the round, and the next message
starts a new one. A blind round shuffles the picked models over the sides (A, B, C, D), shows only the letters,
and names the models once the vote is in.
"""

from __future__ import annotations

import html
import random
import uuid
from typing import Any, Optional, Sequence

from backend.core.registry import Registry
from backend.data.votes import ALL_BAD, SIDES, TIE
from ui.i18n.core import say

Round = dict[str, Any]  # {"id", "models" (by side), "blind", "picked" (the pickers' order), "vote"}


def new_round(picked: Sequence[str], blind: bool, rng: Optional[random.Random] = None) -> Round:
    """A round over the picked models: in their order, or shuffled over the sides when blind."""
    models = list(picked)
    if blind:
        (rng or random.SystemRandom()).shuffle(models)
    return {"id": uuid.uuid4().hex, "models": models, "blind": bool(blind), "picked": list(picked), "vote": None}


def continues(current: Optional[Round], picked: Sequence[str], blind: bool) -> bool:
    """Whether the next message belongs to `current`: same models and mode, and no vote cast yet."""
    if not current:
        return False
    return current.get("vote") is None and current.get("picked") == list(picked) and current.get("blind") == bool(blind)


def revealed(current: Optional[Round]) -> bool:
    """Whether the round's models may be named: a round that is not blind, or one that has its vote."""
    if not current:
        return False
    return not current.get("blind") or current.get("vote") is not None


def model_name(registry: Registry, model_id: str) -> str:
    try:
        return registry.spec(model_id).name or model_id
    except Exception:  # a model removed from the registry since: its id still says which it was
        return model_id


def side_titles(registry: Registry, current: Optional[Round], sides: int) -> list[str]:
    """Each pane's title: the side's letter, and its model once it may be known."""
    titles = []
    for side in range(sides):
        letter = SIDES[side]
        if current and revealed(current) and side < len(current["models"]):
            titles.append(f"**{letter}** · {html.escape(model_name(registry, current['models'][side]))}")
        else:
            titles.append(f"**{letter}**")
    return titles


def outcome_words(outcome: str, sides: int) -> str:
    """What a vote said, in the request's language."""
    if outcome == TIE:
        return say("arena_said_tie")
    if outcome == ALL_BAD:
        return say("arena_said_bad" if sides == 2 else "arena_said_all_bad")
    return say("arena_said_best", side=outcome)


def reveal_line(registry: Registry, current: Round) -> str:
    """After a vote: what was voted, which model each side was, and what comes next."""
    names = " · ".join(f"{SIDES[side]} = {model_name(registry, model)}" for side, model in enumerate(current["models"]))
    return say("arena_revealed", vote=outcome_words(current["vote"], len(current["models"])), names=names)
