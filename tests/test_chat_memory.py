"""Branching (ui/chat/branches.py) and the saved conversations (ui/chat/saved.py): pure functions over JSON."""

from __future__ import annotations

import json

from ui.chat import branches
from ui.chat import saved as saved_chats


def msg(role: str, text: str) -> dict:
    return {"role": role, "content": text}


CHAT = [msg("user", "u1"), msg("assistant", "a1"), msg("user", "u2"), msg("assistant", "a2")]


def test_regenerating_keeps_the_old_reply_as_a_version_and_flips_back() -> None:
    forks = branches.fork(CHAT, {}, 1)  # regenerate reply 1: everything from index 1 is replaced
    regenerated = CHAT[:1] + [msg("assistant", "a1'")]
    assert branches.version_label(forks, 1, regenerated) == "Reply 1: version 2 of 2"
    back, forks_back = branches.flip(regenerated, forks, 1, -1)
    assert back == CHAT  # the old reply and the exchange after it are back
    assert branches.version_label(forks_back, 1, back) == "Reply 1: version 1 of 2"
    again, _ = branches.flip(back, forks_back, 1, +1)
    assert again == regenerated
    assert branches.flip(back, forks_back, 1, -1) == (back, forks_back)  # already the first
    json.dumps(forks_back)  # stored in the browser: plain JSON


def test_nested_forks_travel_with_their_branch() -> None:
    edited = CHAT[:2] + [msg("user", "u2 edited"), msg("assistant", "b2")]
    forks = branches.fork(CHAT, {}, 2)  # edit message 2
    regenerated = CHAT[:1] + [msg("assistant", "a1'")]
    forks = branches.fork(edited, forks, 1)  # then regenerate reply 1: the edit's fork goes with the old tail
    assert set(forks) == {"1"}
    back, forks_back = branches.flip(regenerated, forks, 1, -1)
    assert back == edited and set(forks_back) == {"1", "2"}
    assert branches.version_label(forks_back, 2, back) == "Message 2: version 2 of 2"
    older, _ = branches.flip(back, forks_back, 2, -1)
    assert older == CHAT


def test_fork_point_and_reply_start() -> None:
    forks = {"1": {}, "3": {}}
    assert branches.fork_point(forks, None) == 3
    assert branches.fork_point(forks, 2) == 1
    assert branches.fork_point({}, 2) is None
    thinking = [msg("user", "q"), {"role": "assistant", "content": "t", "metadata": {"title": "Thinking"}},
                msg("assistant", "a")]
    assert branches.reply_start(thinking, 2) == 1 and branches.reply_start(thinking, 0) is None


def test_saved_conversations_switch_rename_delete_and_stay_bounded(monkeypatch) -> None:
    store = saved_chats.save(None, "one", CHAT, {}, "tiny-chat", "Be brief.")
    store = saved_chats.save(store, "two", [msg("user", "<b>hi</b> " + "x" * 80)], {}, "tiny-chat", "")
    assert store["current"] == "two"
    titles = dict((key, title) for title, key in saved_chats.choices(store))
    assert titles["one"] == "u1" and titles["two"].startswith("<b>hi</b> x") and titles["two"].endswith("…")
    store = saved_chats.rename(store, "one", "  My   first  ")
    assert dict((k, t) for t, k in saved_chats.choices(store))["one"] == "My first"
    store = saved_chats.delete(store, "two")
    assert store["current"] == "one" and list(store["chats"]) == ["one"]
    assert saved_chats.save(store, "one", [], {}, None, None)["chats"] == {}  # an emptied chat is not kept
    assert saved_chats.valid("garbage") == saved_chats.empty_store()
    monkeypatch.setattr(saved_chats, "MAX_CHATS", 2)
    for index in range(4):
        store = saved_chats.save(store, f"c{index}", CHAT, {}, None, None)
    assert len(store["chats"]) == 2 and store["current"] == "c3"
