"""Chat and Compare tabs in a real browser against the real app serving tiny-chat.

tiny-chat has random weights: its text is gibberish, deterministic at temperature 0, and it never emits EOS, so
every reply runs to max_new_tokens unless stopped.
"""

from __future__ import annotations

import json
import re

import time
import uuid


from playwright.sync_api import expect

from tests.browser.helpers import (
    FINISHED,
    TIMEOUT_MS,
    VIEWPORT,
    bubbles,
    model_status,
    open_app,
    open_params,
    open_tab,
    record_texts,
    recorded_texts,
    screenshot,
    select_option,
    send_chat,
    set_number,
    textbox,
    upload_input,
    wait_finished,
    wait_until_still,
)
from tests.tiny_models import CHAT_ID

CHAT_NAME = "Tiny chat"  # the dropdowns show models' display names


def configure_chat(page, max_new_tokens: int, temperature: float) -> None:
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", max_new_tokens)
    set_number(page, "chat-temperature", temperature)


def test_reply_streams_and_shows_stats(page, app_url):
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    # Long enough (a few seconds) that streaming is observable even on a busy machine.
    configure_chat(page, max_new_tokens=1000, temperature=0)
    record_texts(page, '#chat-history [data-testid="bot"]')

    send_chat(page, "Hello! Who are you?")

    # 1000 tokens plus the first load: allow for a busy 2-core machine.
    stats = wait_finished(page, "chat-stats", timeout=120_000)
    seen = recorded_texts(page)
    final = bubbles(page, "bot").last.inner_text().strip()
    assert final, "the assistant bubble is empty after the reply finished"
    # Streaming: the bubble showed at least two different partial texts before the whole reply.
    partial = [text for text in seen if text != final]
    assert len(set(partial)) >= 2, f"no streaming observed; texts seen: {[t[:40] for t in seen]}"
    assert seen[-1] == final, "the last text rendered is not the finished reply"
    assert "tokens/s" in stats
    assert "finish: length" in stats  # tiny-chat never emits EOS: it runs to max_new_tokens
    assert "1000 generated tokens" in stats
    expect(bubbles(page, "user")).to_have_count(1)
    expect(bubbles(page, "user").first).to_have_text("Hello! Who are you?")
    screenshot(page, "chat")


def test_stop_ends_stream_and_server_generation(page, app_url, api):
    asked = 3000
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    configure_chat(page, max_new_tokens=asked, temperature=0)
    # The counter is the engine's running total (0 while unloaded): measure from where it stands now.
    before = model_status(api, CHAT_ID)["generated_tokens_total"]

    send_chat(page, "Write a haiku about the sea.")
    bot = bubbles(page, "bot").last
    expect(bot).not_to_have_text("", timeout=TIMEOUT_MS)  # the bubble shows the wait, then the text
    # Stop once the model has really started (the bubble's wait text comes before the first token).
    for _ in range(600):
        if model_status(api, CHAT_ID)["generated_tokens_total"] > before:
            break
        time.sleep(0.1)
    page.locator("#chat-stop-btn").click()

    shown = wait_until_still(bot)  # the bubble stopped changing
    first = model_status(api, CHAT_ID)["generated_tokens_total"] - before
    time.sleep(1.5)  # measuring "stopped growing" needs a wait by nature
    second = model_status(api, CHAT_ID)["generated_tokens_total"] - before
    assert bot.inner_text() == shown, "the reply kept changing after Stop"
    assert first == second, f"the server kept generating after Stop: {first} -> {second} tokens"
    assert 0 < second < asked // 2, f"{second} tokens generated of {asked} asked: Stop did not stop the model"
    # The stats line says so, rather than still claiming the reply is being generated.
    stats = page.locator("#chat-stats")
    expect(stats).to_contain_text(re.compile("stopped", re.IGNORECASE), timeout=5_000)
    expect(stats).not_to_contain_text(re.compile("generating", re.IGNORECASE))
    expect(stats).not_to_contain_text(re.compile("error", re.IGNORECASE))  # a normal Stop is not an error
    expect(stats).not_to_contain_text(FINISHED)
    # The reply itself does not look finished: a mark under it says it was stopped.
    expect(page.locator("#chat-history")).to_contain_text("⏹ Stopped")


def test_a_reload_mid_reply_keeps_the_question_and_the_partial_answer_marked_stopped(page, app_url):
    """The reply is saved in the browser while it streams (sealed: the test sees only that it changes), so a
    reload mid-reply brings back the question and what was written so far, marked stopped."""
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    configure_chat(page, max_new_tokens=3000, temperature=0)
    stored = "() => window.localStorage.getItem('llm-workbench-chats')"
    send_chat(page, "Tell me a long story.")
    expect(page.locator("#chat-stats")).to_contain_text("Generating", timeout=120_000)  # text is coming
    written = page.evaluate(stored)
    page.wait_for_function(f"(before) => ({stored})() !== before", arg=written, timeout=30_000)  # saved again
    open_app(page, app_url)  # loads the page again: a reload
    expect(bubbles(page, "user")).to_have_text(["Tell me a long story."])
    history = page.locator("#chat-history")
    expect(history).to_contain_text("⏹ Stopped")
    answer = bubbles(page, "bot").first.inner_text().strip()
    assert answer and "Stopped" not in answer, answer  # the partial answer, then the mark
    expect(page.locator("#chat-stats")).not_to_contain_text("Generating")


def test_retry_replaces_reply_and_undo_removes_exchange(page, app_url):
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    # Sampling with a random seed: a retried 24-token reply differs from the first one.
    configure_chat(page, max_new_tokens=24, temperature=1)

    send_chat(page, "The quick brown fox")
    wait_finished(page, "chat-stats")
    send_chat(page, "What is the capital of France?")
    expect(bubbles(page, "user")).to_have_count(2)
    first_stats = wait_finished(page, "chat-stats")
    first_reply = bubbles(page, "bot").last.inner_text()

    page.locator("#chat-retry").click()
    page.wait_for_function(
        """([old, oldStats]) => {
            const bots = document.querySelectorAll('#chat-history [data-testid="bot"]');
            const stats = document.querySelector('#chat-stats').innerText;
            const last = bots[bots.length - 1]?.innerText ?? "";
            return stats.includes('finish:') && stats !== oldStats && last.trim() && last !== old;
        }""",
        arg=[first_reply, first_stats],
        timeout=TIMEOUT_MS,
    )
    expect(bubbles(page, "user")).to_have_count(2)
    expect(bubbles(page, "bot")).to_have_count(2)
    expect(bubbles(page, "user").last).to_have_text("What is the capital of France?")

    page.locator("#chat-undo").click()
    expect(bubbles(page, "user")).to_have_count(1)
    expect(bubbles(page, "bot")).to_have_count(1)
    expect(bubbles(page, "user").first).to_have_text("The quick brown fox")


def test_export_then_import_restores_conversation(page, app_url, tmp_path):
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    configure_chat(page, max_new_tokens=16, temperature=0)
    send_chat(page, "Thank you very much!")
    wait_finished(page, "chat-stats")
    reply = bubbles(page, "bot").last.inner_text().strip()

    with page.expect_download(timeout=TIMEOUT_MS) as download_info:
        page.locator("#chat-export").click()
    exported = tmp_path / "chat.json"
    download_info.value.save_as(exported)
    data = json.loads(exported.read_text(encoding="utf-8"))
    assert data["model"] == CHAT_ID
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][0]["content"] == "Thank you very much!"
    assert data["messages"][1]["content"].strip() == reply
    assert data["parameters"]["max_new_tokens"] == 16

    page.locator("#chat-clear").click()
    expect(bubbles(page, "user")).to_have_count(0)
    expect(bubbles(page, "bot")).to_have_count(0)

    upload_input(page, "chat-import").set_input_files(str(exported))
    expect(bubbles(page, "user")).to_have_count(1)
    expect(bubbles(page, "user").first).to_have_text("Thank you very much!")
    expect(bubbles(page, "bot").first).to_have_text(reply)


def test_two_users_never_see_each_other(browser, app_url):
    alice_ctx = browser.new_context(viewport=VIEWPORT)
    bob_ctx = browser.new_context(viewport=VIEWPORT)
    try:
        alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
        open_app(alice, app_url)
        open_app(bob, app_url)
        secret = f"secret-{uuid.uuid4().hex[:8]}"
        configure_chat(alice, max_new_tokens=8, temperature=0)
        send_chat(alice, secret)
        wait_finished(alice, "chat-stats")
        expect(bubbles(alice, "user").first).to_have_text(secret)

        expect(bubbles(bob, "user")).to_have_count(0)
        expect(bubbles(bob, "bot")).to_have_count(0)
        assert secret not in bob.content()
        bob.reload()
        expect(textbox(bob, "chat-input")).to_be_editable(timeout=TIMEOUT_MS)
        expect(bubbles(bob, "user")).to_have_count(0)
        expect(bubbles(bob, "bot")).to_have_count(0)
        assert secret not in bob.content()
    finally:
        alice_ctx.close()
        bob_ctx.close()


def test_compare_fills_both_outputs(page, app_url):
    open_app(page, app_url)
    open_tab(page, "Compare")
    select_option(page, "compare-model-a", CHAT_NAME)
    select_option(page, "compare-model-b", CHAT_NAME)
    textbox(page, "compare-input").fill("Once upon a time")
    page.locator("#compare-send").click()

    # As the chat tests allow: a cold app loads the model (and imports torch) first, slow on a busy machine.
    stats_a = wait_finished(page, "compare-stats-a", timeout=120_000)
    stats_b = wait_finished(page, "compare-stats-b")
    for stats in (stats_a, stats_b):
        assert "tokens/s" in stats
    for side in ("a", "b"):
        output = page.locator(f"#compare-output-{side}")
        assert output.inner_text().strip(), f"compare output {side} is empty"
    screenshot(page, "compare")


# ------------------------------------------------------------------------- what a newcomer hits (issue 28)


def context_tokens(page) -> int:
    """The tokens the context meter says the conversation uses ("Context: 41 / 4,096 tokens (1%)")."""
    line = page.locator("#chat-context").inner_text()
    match = re.match(r"Context: ([\d,]+) / ", line)
    assert match, line
    return int(match.group(1).replace(",", ""))


def open_edit_box(page) -> None:
    """Opens the ✎ edit box of the first user message (the pencil shows on hover)."""
    bubbles(page, "user").first.hover()
    page.locator('#chat-history button[aria-label="Edit"]').first.click()
    expect(page.locator("#chat-history .edit-textarea")).to_have_count(1)


def test_empty_actions_say_so_and_keep_send_and_the_meter(page, app_url):
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    send, meter, stats = page.locator("#chat-send"), page.locator("#chat-context"), page.locator("#chat-stats")
    expect(meter).to_contain_text("Context: 0 /")
    empty_meter = meter.inner_text()
    # An empty stream used to blank every output: Send lost its label and the meter went, until a reload.
    for button, note in (("#chat-send", "Type a message first."),
                         ("#chat-retry", "Nothing to retry yet: send a message first."),
                         ("#chat-undo", "Nothing to undo: the conversation is empty."),
                         ("#chat-edit", "Nothing to edit yet: send a message first.")):
        page.locator(button).click()
        expect(stats).to_have_text(note)
        expect(send).to_have_text("Send")
        expect(meter).to_have_text(empty_meter)
    textbox(page, "chat-input").press("Enter")
    expect(stats).to_have_text("Type a message first.")
    expect(send).to_have_text("Send")
    expect(page.locator(".toast-body.error")).to_have_count(0)  # a note, not an error


def test_the_meter_and_the_edit_box_follow_undo_clear_and_import(page, app_url, tmp_path):
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    configure_chat(page, max_new_tokens=8, temperature=0)
    send_chat(page, "The first question")
    wait_finished(page, "chat-stats", timeout=120_000)  # may load the model, on a busy machine
    one = context_tokens(page)
    send_chat(page, "The second question")
    expect(bubbles(page, "user")).to_have_count(2)
    expect(page.locator("#chat-context")).not_to_have_text(re.compile(rf"Context: {one} / "))
    wait_finished(page, "chat-stats")
    two = context_tokens(page)
    assert two > one

    page.locator("#chat-undo").click()  # the meter counts the conversation left, not the one undone
    expect(bubbles(page, "user")).to_have_count(1)
    expect(page.locator("#chat-context")).not_to_have_text(re.compile(rf"Context: {two} / "))
    assert 0 < context_tokens(page) < two
    page.locator("#chat-edit").click()
    expect(textbox(page, "chat-input")).to_have_value("The first question")
    expect(page.locator("#chat-context")).to_contain_text("Context: 0 /")

    # An open edit box closes on Clear: the next message is a message, not a stale edit of the cleared one.
    send_chat(page, "Hello")
    wait_finished(page, "chat-stats")
    open_edit_box(page)
    page.locator("#chat-clear").click()
    expect(bubbles(page, "user")).to_have_count(0)
    send_chat(page, "A fresh start")
    expect(bubbles(page, "user")).to_have_text(["A fresh start"])
    expect(page.locator("#chat-history .edit-textarea")).to_have_count(0)
    wait_finished(page, "chat-stats")

    # ... and on Import; the meter counts the imported conversation.
    open_edit_box(page)
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Imported question"},
                                             {"role": "assistant", "content": "Imported answer"}]}),
                    encoding="utf-8")
    upload_input(page, "chat-import").set_input_files(str(chat))
    expect(page.locator("#chat-stats")).to_have_text("Imported 2 message(s).")
    expect(bubbles(page, "user")).to_have_text(["Imported question"])
    expect(page.locator("#chat-history .edit-textarea")).to_have_count(0)
    expect(page.locator("#chat-context")).not_to_contain_text("Context: 0 /")
    assert context_tokens(page) > 0

    # A failed import takes the earlier "Imported 2 message(s)." away: it says nothing about this file.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    upload_input(page, "chat-import").set_input_files(str(bad))
    expect(page.locator(".toast-body.error")).to_contain_text("bad.json")
    expect(page.locator("#chat-stats")).to_have_text("")
    expect(bubbles(page, "user")).to_have_text(["Imported question"])  # the conversation shown stays


def test_a_rating_is_confirmed_where_the_user_looks(page, app_url):
    """At 1280 x 900 the status line under the chat is below the fold: the confirmation is a toast in view."""
    assert page.viewport_size == {"width": 1280, "height": 900}
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    configure_chat(page, max_new_tokens=8, temperature=0)
    send_chat(page, "Rate this")
    wait_finished(page, "chat-stats", timeout=120_000)  # may load the model, on a busy machine
    bubbles(page, "bot").last.hover()
    page.locator('#chat-history button[aria-label="Like"]').last.click()
    toast = page.locator(".toast-body").filter(has_text="👍 saved for reply 1")
    expect(toast).to_be_visible()
    box = toast.bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1280, box
