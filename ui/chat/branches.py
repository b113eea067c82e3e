"""Branching conversations: editing an earlier user message or regenerating a reply keeps the replaced part as
a version to flip back to.

A conversation is its shown messages plus `forks`: for a message index where the conversation was rewritten,
the other versions of everything from that index on. Plain JSON (dicts, lists, strings), so it is stored in the
browser with the conversation (ui/chat/saved.py) and never on the server.

    forks = {"4": {"versions": [tail, None, tail], "active": 1}}

`versions[active]` is None: the active version is the conversation's own messages from index 4 on. A tail is
{"messages": [...], "forks": {...}}: the forks further down belong to the tail they were made in.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from ui.i18n.core import say

Messages = list[dict[str, Any]]
Forks = dict[str, dict[str, Any]]


def _tail(messages: Messages, forks: Forks, index: int) -> dict[str, Any]:
    return {"messages": copy.deepcopy(messages[index:]),
            "forks": {key: value for key, value in forks.items() if int(key) > index}}


def _without_later(forks: Forks, index: int) -> Forks:
    return {key: value for key, value in forks.items() if int(key) <= index}


def fork(messages: Messages, forks: Optional[Forks], index: int) -> Forks:
    """Forks to use once everything from `index` on is replaced: the current tail becomes a version, and the
    new (empty) active version is added last."""
    forks = copy.deepcopy(forks or {})
    key = str(index)
    point = forks.get(key) or {"versions": [None], "active": 0}
    point["versions"][point["active"]] = _tail(messages, forks, index)
    point["versions"].append(None)
    point["active"] = len(point["versions"]) - 1
    forks = _without_later(forks, index)
    forks[key] = point
    return forks


def flip(messages: Messages, forks: Forks, index: int, step: int) -> tuple[Messages, Forks]:
    """Shows the version `step` away (-1 previous, +1 next) at fork `index`; unchanged at either end."""
    key = str(index)
    point = copy.deepcopy(forks[key])
    target = point["active"] + step
    if not 0 <= target < len(point["versions"]):
        return messages, forks
    point["versions"][point["active"]] = _tail(messages, forks, index)
    chosen = point["versions"][target]
    point["versions"][target] = None
    point["active"] = target
    new_forks = _without_later(copy.deepcopy(forks), index)
    new_forks[key] = point
    new_forks.update(copy.deepcopy(chosen["forks"]))
    return copy.deepcopy(messages[:index]) + copy.deepcopy(chosen["messages"]), new_forks


def fork_point(forks: Optional[Forks], selected: Optional[int]) -> Optional[int]:
    """The fork the version buttons act on: the last one at or before the selected message (any, when none is
    selected or none is before it: the last one)."""
    points = sorted(int(key) for key in (forks or {}))
    if not points:
        return None
    if selected is not None:
        before = [point for point in points if point <= selected]
        if before:
            return before[-1]
    return points[-1]


def version_label(forks: Optional[Forks], point: Optional[int], messages: Messages) -> str:
    """"Reply 2: version 2 of 3" (or "Message 2: ..." for an edited message), or "" without forks."""
    if point is None or not forks or str(point) not in forks:
        return ""
    info = forks[str(point)]
    number = sum(1 for message in messages[:point + 1] if message.get("role") == "user")
    edited = point < len(messages) and messages[point].get("role") == "user"
    return say("version_of_message" if edited else "version_of_reply", number=max(number, 1),
               version=info["active"] + 1, versions=len(info["versions"]))  # in the request's language


def reply_start(messages: Messages, index: int) -> Optional[int]:
    """Where the reply containing message `index` starts (after its user message); None for a user message."""
    if not 0 <= index < len(messages) or messages[index].get("role") == "user":
        return None
    while index > 0 and messages[index - 1].get("role") != "user":
        index -= 1
    return index
