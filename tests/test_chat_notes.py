"""What a newcomer hits in the Chat tab (issue 28), over the real tiny-chat: an empty Send, Retry, Undo or Edit last
says so and leaves Send and the context meter alone; the meter describes the conversation shown after Undo, Edit
last and Import; a failed import takes the earlier "Imported ..." line away; a deleted conversation can be
brought back; a rating says so where the user looks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import pytest

from tests.test_chat_flow import CHAT, data
from ui.chat import saved as saved_chats
from ui.chat import seal as chat_seal
from ui.chat.memory import ChatMemory
from ui.chat.tab import ChatTab

SKIP = gr.skip()


class Browser:
    """Stands in for gr.Request where a handler reads the session hash and the Accept-Language header."""

    def __init__(self, session_hash: str, language: str = "en-US") -> None:
        self.session_hash = session_hash
        self.headers = {"accept-language": language}
        self.username = None


@pytest.fixture(scope="module")
def tab(tiny_config) -> Iterator[ChatTab]:
    from backend.core.registry import Registry
    from backend.engines import create_engine

    registry = Registry(tiny_config, create_engine)
    with gr.Blocks():
        chat = ChatTab.build(registry)
    yield chat
    registry.close()


def only_note(update: tuple[Any, ...], stats_at: int) -> str:
    """The note an update says on the stats line, checking it changes nothing else (Send's label, the meter,
    the conversation, the input all stay: each other output is a skip)."""
    assert [value for index, value in enumerate(update) if index != stats_at] == [SKIP] * (len(update) - 1), update
    return update[stats_at]


def test_an_empty_send_or_retry_says_so_and_changes_nothing_else(tab: ChatTab) -> None:
    # An empty stream made Gradio blank every output: Send lost its label and the meter went, until a reload.
    sent = list(tab.send(data(tab, "   "), Browser("empty-send")))
    assert len(sent) == 1 and only_note(sent[0], stats_at=2) == "Type a message first."
    retried = list(tab.retry(data(tab, ""), Browser("empty-retry")))
    assert len(retried) == 1 and only_note(retried[0], stats_at=2) == "Nothing to retry yet: send a message first."
    chinese = list(tab.send(data(tab, ""), Browser("empty-send-zh", "zh-CN,zh;q=0.9")))
    assert only_note(chinese[0], stats_at=2) == "请先输入消息。"


def test_undo_and_edit_last_on_an_empty_chat_say_so(tab: ChatTab) -> None:
    history, stats, *_ = tab.undo([], Browser("empty-undo"))
    assert history == SKIP and stats == "Nothing to undo: the conversation is empty."
    text, history, stats, *_ = tab.edit_last([], Browser("empty-edit", "zh-CN"))
    assert text == SKIP and history == SKIP and stats == "还没有可编辑的消息：请先发送一条消息。"


def test_presenter_mode_says_it_as_a_toast(tab: ChatTab, capsys: pytest.CaptureFixture[str]) -> None:
    """The presenter hides the stats line, so the note is a toast too (gr.Info prints it outside a page)."""
    presenter = dataclasses.replace(tab, toast_notes=True)
    sent = list(presenter.send(data(presenter, ""), Browser("presenter-empty")))
    assert only_note(sent[0], stats_at=2) == "Type a message first."
    assert "Type a message first." in capsys.readouterr().out


def test_the_meter_describes_the_conversation_shown(tab: ChatTab, tmp_path: Path) -> None:
    browser = Browser("meter")
    first = list(tab.send(data(tab, "Hello there", max_new_tokens=8), browser))
    after_one = [update[3] for update in first if isinstance(update[3], str)][-1]
    second = list(tab.send(data(tab, "And again", first[-2][1], max_new_tokens=8), browser))
    history = second[-2][1]
    after_two = [update[3] for update in second if isinstance(update[3], str)][-1]

    def used(line: str) -> int:
        assert line.startswith("Context: ") and line.split(" / ")[1].startswith("512 tokens"), line
        return int(line.removeprefix("Context: ").split(" / ")[0].replace(",", ""))

    # Counted again from the text shown (tiny-chat's random bytes re-tokenize a little differently from the
    # tokens it generated), the conversation is about what its last reply's stats said; after Undo the meter
    # no longer says the stale two-exchange figure but about what it said after the first reply.
    whole = used(tab.recount(CHAT, "", history, browser))
    assert abs(whole - used(after_two)) <= used(after_two) // 3
    undone = tab.undo(history, browser)[0]
    shorter = used(tab.recount(CHAT, "", undone, browser))
    assert 0 < shorter < whole and abs(shorter - used(after_one)) <= used(after_one) // 3
    assert used(tab.recount(CHAT, "", [], browser)) == 0
    with_system = used(tab.recount(CHAT, "You are a terse assistant.", undone, browser))
    assert with_system > used(tab.recount(CHAT, "", undone, browser))

    exported = tmp_path / "chat.json"
    exported.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": "hello"}]}), encoding="utf-8")
    imported = list(tab.import_chat(str(exported), browser))[-1][tab.history]
    assert used(tab.recount(CHAT, "", imported, browser)) > 0
    tab.registry.unload(CHAT)  # never loaded just to count: the meter says when it will be
    assert tab.recount(CHAT, "", imported, browser) == "Context: ? / 512 tokens (counted once the model is loaded)"
    assert tab.registry.status_of(CHAT).state == "unloaded"


def test_a_failed_import_takes_the_earlier_success_line_away(tab: ChatTab, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    updates = tab.import_chat(str(bad), Browser("import"))
    assert next(updates) == {tab.stats: ""}  # "Imported 2 message(s)." would stand beside the error
    with pytest.raises(gr.Error) as failed:
        next(updates)
    assert "bad.json" in failed.value.message


def test_a_deleted_conversation_comes_back_with_undo() -> None:
    store = saved_chats.save(None, "one", [{"role": "user", "content": "<b>apples</b>"}], {}, CHAT, "")
    store = saved_chats.save(store, "two", [{"role": "user", "content": "pears"}], {}, CHAT, "")
    with gr.Blocks():
        memory = ChatMemory.build_list({CHAT}).build_versions()
    browser = Browser("delete")
    removed = memory.remove(chat_seal.seal(store, None), "one", browser)
    history, _forks, current, *_rest = removed
    kept, note, undo = removed[-3:]
    assert current == "two" and history == [{"role": "user", "content": "pears"}]
    assert note == "Deleted '&lt;b&gt;apples&lt;/b&gt;'." and undo.visible is True  # the title shown as text
    sealed = removed[6]
    assert list(saved_chats.valid(chat_seal.unseal(sealed, None))["chats"]) == ["two"]

    restored = memory.restore_deleted(sealed, kept, browser)
    history, _forks, current, *_rest = restored
    assert current == "one" and history == [{"role": "user", "content": "<b>apples</b>"}]
    assert restored[-3:-1] == (None, "") and restored[-1].visible is False
    back = saved_chats.valid(chat_seal.unseal(restored[6], None))
    assert sorted(back["chats"]) == ["one", "two"] and back["current"] == "one"
    # Deleting what was never saved (a new, empty conversation) offers no undo.
    assert memory.remove(restored[6], "never-saved", browser)[-2] == ""
