"""The Chat tab's handlers over the real tiny-chat: NUL in replies, empty actions, stop/supersede, stale stats,
reasoning kept out of the history, user text shown as text, errors in plain words."""

from __future__ import annotations

from typing import Any, Iterator

import gradio as gr
import pytest

from backend.core.types import Delta, Final, GenerationStats
from ui.chat.tab import ChatTab
from ui.chat.view import assistant_messages, plain_history, show_as_text, typed_text, user_message
from ui.common.components import Accumulator, STOPPED
from ui.i18n.error_words import worded
from ui.common.waiting import Tick, ticking

CHAT = "tiny-chat"


class Session:
    """Stands in for gr.Request where a handler only reads the session hash."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


@pytest.fixture(scope="module")
def tab(tiny_config) -> Iterator[ChatTab]:
    from backend.core.registry import Registry
    from backend.engines import create_engine

    registry = Registry(tiny_config, create_engine)
    with gr.Blocks():
        chat = ChatTab.build(registry)
    yield chat
    registry.close()


def data(tab: ChatTab, message: str, history: Any = (), max_new_tokens: int = 6, **params: Any) -> dict:
    panel = tab.params
    values = {"temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0, "seed": -1, "stop": "",
              **params}
    return {tab.model: CHAT, tab.system: "", tab.history: list(history), tab.input: message, tab.forks: {},
            tab.selected: None,
            panel.max_new_tokens: max_new_tokens, panel.temperature: values["temperature"],
            panel.top_p: values["top_p"], panel.top_k: values["top_k"],
            panel.repetition_penalty: values["repetition_penalty"], panel.seed: values["seed"],
            panel.stop: values["stop"]}


def visible(update: Any) -> Any:
    """True, False, or None when the update leaves visibility alone; "hidden" (in the page, not shown) is False."""
    value = update.get("visible") if isinstance(update, dict) else getattr(update, "visible", None)
    return False if value == "hidden" else value


def test_a_nul_the_model_produced_never_blocks_the_chat(tab: ChatTab) -> None:
    accumulator = Accumulator()
    accumulator.add(Delta("a\x00b"))
    assert accumulator.state().text == "ab"
    # A history from before the fix, holding the model's NUL, is accepted (and the NUL dropped).
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x\x00y"}]
    updates = list(tab.send(data(tab, "and now?", history)))
    final_history = updates[-2][1]
    assert final_history[1]["content"] == "xy"
    assert final_history[-1]["role"] == "assistant" and final_history[-1]["content"]


def nul_token(registry: Any) -> int:
    """tiny-chat's token for the byte 0 (byte-level BPE writes it as "Ā"), which decodes to a NUL."""
    from backend.services import tokens

    (token,) = tokens.tokenize(registry, CHAT, "\x00", add_special_tokens=False)
    assert tokens.detokenize(registry, CHAT, [token]) == "\x00"
    return token


def test_the_app_never_emits_a_nul_and_takes_its_text_back(tab: ChatTab) -> None:
    """A model pushed to write NULs (logit_bias on the byte-0 token): no delta, no final text carries one, on the
    stream every tab and the API read; the reply, sent back as history, is answered; /detokenize's faithful NUL is
    tokenized back."""
    from backend.core.types import GenerationParams
    from backend.services import generation as service
    from backend.services import tokens

    registry = tab.registry
    token = nul_token(registry)
    params = GenerationParams(max_new_tokens=4, temperature=0.0, logit_bias=((token, 100.0),))
    events = list(service.stream_chat(registry, CHAT, "hi", (), params))
    final = events[-1]
    assert isinstance(final, Final) and final.stats.generated_tokens == 4
    assert all("\x00" not in event.text for event in events)
    prompt = list(service.stream_generate(registry, CHAT, "hi", params))
    assert all("\x00" not in event.text for event in prompt)
    # What it gave is accepted back: as a reply in the history, as the next prompt.
    again = list(service.stream_chat(registry, CHAT, "and now?", [{"role": "user", "content": "hi"},
                                                                  {"role": "assistant", "content": final.text}]))
    assert isinstance(again[-1], Final)
    list(service.stream_generate(registry, CHAT, "hi" + prompt[-1].text, GenerationParams(max_new_tokens=2)))
    assert tokens.tokenize(registry, CHAT, "a\x00b", add_special_tokens=False)


def test_the_wait_says_what_it_waits_for(tab: ChatTab) -> None:
    """A loaded model that does not reason waits "for the first token", never "Thinking…"; "Thinking…" is
    shown once a reasoning block has begun and has no words yet; all of it in the request's language."""
    from gradio.context import LocalContext

    from backend.services import generation as service
    from backend.core.types import GenerationParams
    from ui.chat.reply import reply_updates, waiting_title
    from ui.chat.runs import Run

    registry = tab.registry
    registry.load(CHAT)
    events = service.stream_chat(registry, CHAT, "hi", (), GenerationParams(max_new_tokens=2, temperature=0.0))
    first = next(reply_updates(registry, CHAT, events, Run()))
    assert first.messages[0]["metadata"]["title"] == "Waiting for the first token…"
    assert waiting_title(registry, CHAT, 3.2) == "Waiting for the first token… (3 s)"
    assert waiting_title(registry, CHAT, 3.2, thinking=True) == "Thinking… (3 s)"
    # The reasoning model's first token is "<think>": the pending message then says it thinks.
    opened = [update.messages for update in reply_updates(registry, CHAT, iter([Delta("<think>")]), Run())]
    assert opened[-1][0]["metadata"] == {"title": "Thinking…", "status": "pending"}
    token = LocalContext.request.set(ChineseRequest())
    try:
        assert waiting_title(registry, CHAT, 2) == "正在等待第一个 token…（2 秒）"
    finally:
        LocalContext.request.reset(token)


class ChineseRequest:
    """Stands in for gr.Request where only the Accept-Language header is read."""

    headers = {"accept-language": "zh-CN,zh;q=0.9"}


def test_a_stopped_reply_is_marked_stopped(tab: ChatTab) -> None:
    """Stop mid-reply: the reply keeps what it wrote, followed by a "⏹ Stopped" mark (never sent back to the
    model); Stop before the first token leaves the question and the mark, no "…" waiting for ever."""
    from ui.chat.runs import RUNS
    from ui.chat.view import plain_history

    session = Session("stopped-reply")
    replies = tab.send(data(tab, "hello", max_new_tokens=40), session)
    for update in replies:
        history = update[1]
        if isinstance(history, list) and history and history[-1].get("content") not in ("", "…"):
            break  # something written
    RUNS.cancel(session.session_hash, stop=True)
    last = list(replies)[-1]
    history, stats = last[1], last[2]
    assert stats == STOPPED
    assert history[-1] == {"role": "assistant", "content": "",
                           "metadata": {"title": "⏹ Stopped", "status": "done"}}
    assert history[-2]["role"] == "assistant" and history[-2]["content"]
    assert plain_history(history) == [{"role": "user", "content": "hello"},
                                      {"role": "assistant", "content": history[-2]["content"]}]
    # Stopped before its first token: the question stays, the "…" waiting message goes, the mark says why.
    from ui.chat.view import stopped_reply, user_message, waiting_message

    assert stopped_reply([user_message("again"), waiting_message("Loading the model… (3 s)")]) == [
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "", "metadata": {"title": "⏹ Stopped", "status": "done"}}]


def test_a_streaming_reply_is_saved_as_it_goes_marked_stopped(tab: ChatTab) -> None:
    """While a reply streams, the conversation is saved (sealed for the user) with the question and what was
    written so far, marked stopped: what a reload mid-reply restores. The first save comes with the first
    update, before any token."""
    from ui.chat import saved as saved_chats
    from ui.chat import seal as chat_seal

    memory = tab.memory
    assert memory is not None
    values = {**data(tab, "Tell me a story", max_new_tokens=4), memory.store: None, memory.current: None}
    updates = list(tab.send(values))
    first = updates[0]
    sealed, chat_id = first[-2], first[-1]
    store = saved_chats.valid(chat_seal.unseal(sealed, None))
    assert store["current"] == chat_id
    saved = store["chats"][chat_id]["messages"]
    assert saved == [{"role": "user", "content": "Tell me a story"},
                     {"role": "assistant", "content": "", "metadata": {"title": "⏹ Stopped", "status": "done"}}]
    assert all(update[-1] in (chat_id, gr.skip()) for update in updates)  # one conversation, never a second id


def test_busy_state_and_context_meter(tab: ChatTab) -> None:
    tab.registry.unload(CHAT)  # so that this reply loads it
    updates = list(tab.send(data(tab, "Hello")))
    first, last = updates[0], updates[-1]
    assert first[0] == ""  # the input is cleared
    assert visible(first[4]) is False and visible(first[5]) is True  # Send hidden, Stop shown
    assert visible(last[4]) is True and visible(last[5]) is False
    waiting = first[1][-1]
    assert waiting["metadata"]["status"] == "pending"
    assert waiting["metadata"]["title"].startswith(("Loading the model", "Waiting for the first token"))
    stats = [u[2] for u in updates if isinstance(u[2], str) and "finish:" in u[2]]
    assert stats and stats[-1].startswith("model loaded in ")  # this reply loaded the model
    context = [u[3] for u in updates if isinstance(u[3], str)]
    assert context and context[-1].startswith("Context: ") and " / 512 tokens" in context[-1]


def test_empty_actions_raise_nothing(tab: ChatTab) -> None:
    """(What they say instead: tests/test_chat_notes.py.)"""
    assert len(list(tab.send(data(tab, "   ")))) == 1
    assert len(list(tab.retry(data(tab, "")))) == 1
    undone = tab.undo([], Session("empty"))
    assert visible(undone[2]) is True  # Send back
    edited = tab.edit_last([], Session("empty"))
    assert visible(edited[3]) is True
    stopped = tab.stop(Session("nothing-running"))
    assert stopped[0] != STOPPED  # Stop with nothing running says nothing


def test_a_new_send_or_stop_supersedes_the_running_reply(tab: ChatTab) -> None:
    session = Session("one-browser")
    first = tab.send(data(tab, "Hello", max_new_tokens=400), session)
    next(first)
    second = tab.send(data(tab, "Again", max_new_tokens=4), session)
    second_updates = list(second)
    assert second_updates[-2][1][-2]["content"] == "Again"
    # The superseded reply sends nothing more (its stream is closed) instead of repainting the chat.
    assert list(first) == []
    third = tab.send(data(tab, "Hello", max_new_tokens=400), session)
    next(third)
    assert tab.stop(session)[0] == STOPPED
    # A stopped reply's own stream ends with the stopped status and Send back (its last word, so no update it
    # had already sent can land after it), and nothing else: no text, no stats of its own.
    stopped = list(third)
    assert len(stopped) == 1 and stopped[0][2] == STOPPED
    assert visible(stopped[0][4]) is True and visible(stopped[0][5]) is False  # Send back, Stop hidden


def test_a_failed_send_clears_the_previous_stats_and_speaks_plainly(tab: ChatTab) -> None:
    replies = tab.send(data(tab, "Hello", temperature=-1.0))
    assert next(replies)[2] == ""
    with pytest.raises(gr.Error) as failed:
        next(replies)
    assert failed.value.message.startswith("Temperature must be in")
    from backend.services.generation import build_messages
    from backend.core.types import InvalidInputError

    with pytest.raises(InvalidInputError) as nul:
        build_messages("hi\x00")
    assert worded(nul.value) == "Your message contains a NUL character; remove it"
    with pytest.raises(InvalidInputError) as not_text:
        build_messages("hi", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                              {"role": "user", "content": 5}])
    assert str(not_text.value) == "history item 2: content must be text"
    assert worded(not_text.value) == "Message 3 of the conversation: content must be text"


def test_reasoning_is_shown_apart_and_never_sent_back() -> None:
    shown = assistant_messages("<think>step one</think>The answer is 4.")
    assert shown[0]["metadata"]["title"] == "Thinking" and shown[0]["content"] == "step one"
    assert shown[1] == {"role": "assistant", "content": "The answer is 4."}
    streaming = assistant_messages("<think>still thinking")
    assert streaming[0]["metadata"]["status"] == "pending"
    history = [user_message("2+2?"), *shown, user_message("why?"), *streaming]
    assert plain_history(history) == [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "The answer is 4."},
        {"role": "user", "content": "why?"}, {"role": "assistant", "content": ""}]


def test_user_text_is_shown_as_text() -> None:
    typed = "<b>bold?</b> & `<code>` kept"
    shown = show_as_text(typed)
    assert "<b>" not in shown and "&lt;b&gt;" in shown and "`<code>`" in shown
    assert typed_text(shown) == typed


def test_ticking_counts_while_waiting_then_passes_items() -> None:
    import time

    def slow() -> Iterator[str]:
        time.sleep(0.35)
        yield "a"
        yield "b"

    items = list(ticking(slow(), period=0.1))
    assert isinstance(items[0], Tick) and items[-2:] == ["a", "b"]


def test_export_leaves_reasoning_out(tab: ChatTab) -> None:
    import json
    from pathlib import Path

    history = [user_message("2+2?"), *assistant_messages("<think>hmm</think>4")]
    path = tab.export(data(tab, "", history))
    messages = json.loads(Path(path).read_text(encoding="utf-8"))["messages"]
    Path(path).unlink()
    assert messages == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def _stats() -> GenerationStats:
    return GenerationStats(prompt_tokens=1, generated_tokens=1, time_to_first_token_s=0.1, tokens_per_second=1.0,
                           total_s=0.1, finish_reason="stop")


def test_final_text_is_cleaned_too() -> None:
    accumulator = Accumulator()
    accumulator.add(Final("x\x00", _stats()))
    assert accumulator.state().text == "x"
