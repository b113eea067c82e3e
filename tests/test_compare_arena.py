"""The Compare tab's arena, driven through its handlers over the tiny chat model (and a twin entry over the same
weights): multi-turn rounds where each side keeps its own history, blind rounds named after the vote, votes stored
per user and shown on the leaderboard, per-side Stop, and Stop never overwriting a finished side's statistics."""

from __future__ import annotations

import random
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import pytest

from backend.core.config import ModelSpec
from backend.core.types import Delta, Event, Final, GenerationStats
from backend.data import votes
from ui.common.components import STOPPED, follow_registry, format_stats
from ui.compare.arena import continues, new_round
from ui.compare.streams import SideRun, interleave
from ui.compare.tab import CompareTab, side_line

TWIN = "tiny-twin"
SESSION = "arena-session"


def finished_stats() -> GenerationStats:
    return GenerationStats(prompt_tokens=3, generated_tokens=2, time_to_first_token_s=0.1, tokens_per_second=20.0,
                           total_s=0.2, finish_reason="length")


def short() -> Iterator[Event]:
    yield Delta("a")
    yield Final("a", finished_stats())


def endless(closed: threading.Event) -> Iterator[Event]:
    try:
        while True:
            yield Delta("x")
    finally:
        closed.set()


# ---------------------------------------------------------------------------------------------- stopping


def test_stop_all_keeps_the_statistics_of_a_side_that_had_finished() -> None:
    closed = threading.Event()
    run = SideRun(2)
    last: tuple = ()
    for last in interleave([short(), endless(closed)], interval=0.0, stops=run.side_stops):
        if last[0].done:
            run.stop_all()  # the user presses Stop after side A finished
    assert closed.wait(5), "the stopped side's stream was not closed"
    assert side_line(last[0], stopped=True) == format_stats(finished_stats())
    assert side_line(last[1], stopped=True) == STOPPED


def test_one_sides_stop_ends_that_side_alone() -> None:
    closed = threading.Event()
    run = SideRun(2)
    long = [Delta("y")] * 600 + [Final("y" * 600, finished_stats())]
    stopped = False
    last: tuple = ()
    for last in interleave([iter(long), endless(closed)], interval=0.0, stops=run.side_stops):
        if not stopped and last[1].text:
            run.stop_side(1)
            stopped = True
    assert closed.wait(5)
    assert last[0].done and last[0].text == "y" * 600  # side A ran to its end
    assert not last[1].done and side_line(last[1], stopped=True) == STOPPED


def test_blind_rounds_shuffle_the_sides_and_a_vote_ends_the_round() -> None:
    orders = {tuple(new_round(["x", "y"], blind=True, rng=random.Random(seed))["models"]) for seed in range(30)}
    assert orders == {("x", "y"), ("y", "x")}
    assert new_round(["x", "y"], blind=False)["models"] == ["x", "y"]
    current = new_round(["x", "y"], blind=True)
    assert continues(current, ["x", "y"], True)
    assert not continues(current, ["x", "z"], True) and not continues(current, ["x", "y"], False)
    assert not continues({**current, "vote": "A"}, ["x", "y"], True)


# ------------------------------------------------------------------------------------------- the handlers


@pytest.fixture
def arena(registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CompareTab:
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path))
    chat = registry.spec("tiny-chat")
    registry.add(ModelSpec(**{**chat.model_dump(exclude={"base_dir"}), "id": TWIN, "name": "Twin",
                              "source": str(chat.local_path())}))
    # Loaded one after the other: two models loading at once in one process (Compare's two pumps) leave
    # transformers so that a later load of another tiny model (tiny-mlm, in a later test) gets meta tensors; a
    # backend bug reproduced without the UI, reported, not this tab's to fix.
    for model in ("tiny-chat", TWIN):
        with registry.lease(model, "chat"):
            pass
    with gr.Blocks(), follow_registry(registry):
        return CompareTab.build(registry)


def form(tab: CompareTab, message: str, current: Any, chats: list[Any], max_new_tokens: int = 6,
         blind: bool = True) -> dict[Any, Any]:
    shown = tab.layout
    data: dict[Any, Any] = {shown.sides: 2, shown.blind: blind, shown.input: message, tab.round: current,
                            tab.system: ""}
    data.update(zip(shown.pickers, ["tiny-chat", TWIN, None, None]))
    data.update(zip(shown.chats, [*chats, [], []][:4]))
    params = tab.params
    data.update({params.max_new_tokens: max_new_tokens, params.temperature: 0.0, params.top_p: 1.0, params.top_k: 0,
                 params.repetition_penalty: 1.0, params.seed: 0, params.stop: ""})
    return data


def final(tab: CompareTab, updates: list[tuple[Any, ...]]) -> dict[Any, Any]:
    """The outputs' values after every update (gr.skip() leaves a value as it was)."""
    values: dict[Any, Any] = {}
    for update in updates:
        for component, value in zip(tab.reply_outputs, update):
            if value != gr.skip():
                values[component] = value
    return values


def prompt_tokens(line: str) -> int:
    return int(re.search(r"(\d+) prompt", line).group(1))


def test_a_blind_multi_turn_round_a_vote_the_reveal_and_the_leaderboard(arena: CompareTab) -> None:
    request = gr.Request(session_hash=SESSION)
    shown = arena.layout
    first = final(arena, list(arena.run(form(arena, "hello", None, [[], []]), request)))
    current = first[arena.round]
    assert sorted(current["models"]) == ["tiny-chat", TWIN] and current["blind"]
    assert [first[title] for title in shown.titles[:2]] == ["**A**", "**B**"]  # blind: letters only
    chats = [first[chat] for chat in shown.chats[:2]]
    assert all([m["role"] for m in chat] == ["user", "assistant"] for chat in chats)
    assert all("finish: length" in first[line] for line in shown.stats[:2])
    assert first[shown.vote_row].visible
    # Side B's first reply, as if it had answered at length: the next turn sends each side its own history.
    chats[1][1] = {"role": "assistant", "content": "a much longer answer than the other side gave " * 3}
    second = final(arena, list(arena.run(form(arena, "and then?", current, chats), request)))
    assert second[arena.round]["id"] == current["id"]  # the same round goes on
    turns = [second[chat] for chat in shown.chats[:2]]
    assert [m["role"] for m in turns[0]] == ["user", "assistant", "user", "assistant"]
    assert turns[1][1]["content"].startswith("a much longer answer")
    line_a, line_b = (second[line] for line in shown.stats[:2])
    assert prompt_tokens(line_b) > prompt_tokens(line_a) + 10

    said = arena.vote("B", current, "", *turns, [], [], "mine", request)
    voted, title_a, title_b = said[0], said[1], said[2]
    assert voted["vote"] == "B"
    names = {"tiny-chat": "Tiny chat", TWIN: "Twin"}
    assert names[current["models"][0]] in title_a and names[current["models"][1]] in title_b  # revealed
    reveal, table = said[6], said[7]
    assert "B" in reveal and "Twin" in reveal
    assert sorted(table.iloc[:, 1]) == ["tiny-chat", TWIN] and list(table.iloc[:, 5]) == [1, 1]
    [stored] = votes.load_votes(None)
    assert stored.models == current["models"] and stored.outcome == "B" and len(stored.conversations[0]) == 4
    with pytest.raises(gr.Error):
        arena.vote("A", voted, "", *turns, [], [], "mine", request)  # a round is voted once
    # The next message starts a new round with fresh histories.
    third = final(arena, list(arena.run(form(arena, "new topic", voted, turns), request)))
    assert third[arena.round]["id"] != current["id"] and len(third[shown.chats[0]]) == 2


def test_a_refused_message_keeps_the_round_and_clears_the_stats(arena: CompareTab) -> None:
    request = gr.Request(session_hash=SESSION)
    first = final(arena, list(arena.run(form(arena, "hello", None, [[], []]), request)))
    chats = [first[chat] for chat in arena.layout.chats[:2]]
    updates = []
    with pytest.raises(gr.Error):
        for update in arena.run(form(arena, "x" * 100_001, first[arena.round], chats), request):
            updates.append(update)
    after = final(arena, updates)
    assert all(after[line] == "" for line in arena.layout.stats[:2])
    assert not any(chat in after for chat in arena.layout.chats)  # the conversations stay as they were


def test_a_sides_stop_ends_it_while_the_other_side_finishes(arena: CompareTab) -> None:
    request = gr.Request(session_hash=SESSION)
    updates = []
    stopped = False
    for update in arena.run(form(arena, "hello", None, [[], []], max_new_tokens=120, blind=False), request):
        updates.append(update)
        chat_b = update[3]
        if not stopped and isinstance(chat_b, list) and chat_b[-1].get("content") not in ("…", ""):
            arena.stop_side(1, request)
            stopped = True
    after = final(arena, updates)
    line_a, line_b = (after[line] for line in arena.layout.stats[:2])
    assert stopped and "120 generated tokens" in line_a and line_b == STOPPED


def test_the_leaderboard_shows_an_admin_everyones_votes_and_others_their_own(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.compare.leaderboard import EVERYONE, LeaderboardView

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_ADMINS", "carol")
    for user, outcome in (("alice", "A"), ("bob", "B")):
        votes.record_vote(user, f"round-{user}", ["x", "y"], [[{"role": "user", "content": "q"},
                                                               {"role": "assistant", "content": side}]
                                                              for side in "ab"], outcome)
    with gr.Blocks():
        view = LeaderboardView.build()
    carol, alice = gr.Request(username="carol"), gr.Request(username="alice")
    scope, _, mine, _ = view.on_load(carol)
    assert scope.visible and mine == "No votes yet: vote on a round above."  # carol voted nothing herself
    table, summary, download = view.show(EVERYONE, carol)
    assert summary == "2 vote(s), 2 model(s), 2 user(s)." and list(table.iloc[:, 5]) == [2, 2]
    assert Path(download.value["path"]).read_text(encoding="utf-8").startswith("rank,model,rating")
    assert not view.on_load(alice)[0].visible
    _, summary, _ = view.show(EVERYONE, alice)  # not an admin: her own votes only
    assert summary == "1 vote(s), 2 model(s), 1 user(s)."
