"""Chat's busy state and its edges in a real browser (issue 20): Send turns into Stop, the reply shows the model
loading, the trash icon and a second Enter stop the running reply, stale stats go, empty actions stay quiet,
Generate counts pasted text and clears its status after a refused prompt, Compare clears old stats lines (and keeps
its conversations).

tiny-chat never emits EOS: a reply runs to max_new_tokens unless stopped.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    bubbles,
    model_status,
    open_app,
    open_params,
    open_tab,
    record_shown,
    record_texts,
    recorded_shown,
    recorded_texts,
    select_option,
    send_chat,
    set_number,
    textbox,
    wait_finished,
    wait_until_still,
)
from tests.tiny_models import CHAT_ID

CHAT_NAME = "Tiny chat"
TOO_LONG = "a" * 100_001  # one character over service.MAX_MESSAGE_CHARS: refused before any model works


def start_long_reply(page: Page, message: str, max_new_tokens: int = 3000) -> None:
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", max_new_tokens)
    set_number(page, "chat-temperature", 0)
    send_chat(page, message)


def wait_streaming(page: Page) -> None:
    """Waits until reply text streams (the stats line says so: the wait before it says loading / thinking)."""
    expect(page.locator("#chat-stats")).to_contain_text("Generating", timeout=60_000)


def toasts(page: Page):
    return page.locator(".toast-body")


def test_send_turns_into_stop_and_the_reply_shows_the_load(page: Page, app_url: str, api) -> None:
    api.predict(model=CHAT_ID, api_name="/unload_model")  # so that this reply loads it
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    expect(page.locator("#chat-stop-btn")).to_be_hidden()  # nothing runs: no Stop to press
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", 40)
    record_texts(page, '#chat-history [data-testid="bot"]')  # the wait can be shorter than a poll
    record_shown(page, ["chat-send", "chat-stop-btn"])  # recorded per frame: a short reply can end between polls
    send_chat(page, "Hello!")
    # Before the first token, the reply's place says what is happening (not an empty pill).
    stats = wait_finished(page, "chat-stats", timeout=120_000)
    seen = recorded_texts(page)
    assert seen and re.search(r"Loading the model|Waiting for the first token", seen[0]), seen[:3]
    assert re.search(r"model loaded in \d+\.\d\d s", stats), stats
    expect(page.locator("#chat-send")).to_be_visible()
    expect(page.locator("#chat-stop-btn")).to_be_hidden()
    shown = recorded_shown(page)
    assert shown == [["chat-send"], ["chat-stop-btn"], ["chat-send"]], shown  # Send turned into Stop and back
    expect(page.locator("#chat-context")).to_contain_text(re.compile(r"Context: \d+ / 4,096 tokens"))


def test_the_trash_icon_stops_the_reply(page: Page, app_url: str, api) -> None:
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    start_long_reply(page, "Write a long story.")
    wait_streaming(page)
    page.locator('#chat-history button[aria-label="Clear"]').click()
    expect(bubbles(page, "bot")).to_have_count(0)
    time.sleep(1.0)  # "the reply does not come back" and "the model stopped" need waits by nature
    first = model_status(api, CHAT_ID)["generated_tokens_total"]
    time.sleep(1.5)
    expect(bubbles(page, "bot")).to_have_count(0)
    assert model_status(api, CHAT_ID)["generated_tokens_total"] == first, "the model kept generating"
    expect(page.locator("#chat-send")).to_be_visible()
    expect(page.locator("#chat-stats")).to_have_text("")


def test_enter_during_a_reply_replaces_it_with_the_new_one(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    start_long_reply(page, "First question")
    wait_streaming(page)
    set_number(page, "chat-max-new-tokens", 12)
    textbox(page, "chat-input").fill("Second question")
    textbox(page, "chat-input").press("Enter")
    expect(bubbles(page, "user")).to_have_count(2)
    expect(bubbles(page, "user").last).to_have_text("Second question")
    stats = wait_finished(page, "chat-stats")
    assert "12 generated tokens" in stats, stats
    first_reply = bubbles(page, "bot").first
    assert wait_until_still(first_reply) == first_reply.inner_text()  # the first reply no longer grows


def test_quiet_empty_actions_and_no_stale_stats_after_an_error(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    # Undo, Edit and Retry on an empty chat, and an empty Send: nothing happens, no error.
    for button in ("#chat-undo", "#chat-edit", "#chat-retry", "#chat-send"):
        page.locator(button).click()
    page.wait_for_timeout(1000)
    expect(toasts(page)).to_have_count(0)
    expect(bubbles(page, "user")).to_have_count(0)
    # A reply, then a refused message: the refused message's error replaces the reply's stats.
    select_option(page, "chat-model", CHAT_NAME)
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", 8)
    send_chat(page, "Hi")
    wait_finished(page, "chat-stats")
    send_chat(page, TOO_LONG)
    expect(toasts(page).first).to_contain_text("Your message is 100,001 characters")
    expect(page.locator("#chat-stats")).to_have_text("")
    # Toasts sit at the bottom of the window, away from the model picker.
    box = toasts(page).first.bounding_box()
    assert box and box["y"] > page.viewport_size["height"] / 2, box


def test_generate_counts_pasted_and_deleted_text_and_clears_a_refused_run(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    open_tab(page, "Generate")
    select_option(page, "gen-model", CHAT_NAME)
    open_params(page, "gen")
    set_number(page, "gen-max-new-tokens", 4)
    prompt = textbox(page, "gen-prompt")
    prompt.fill("Once upon a time")
    page.locator("#gen-run").click()
    wait_finished(page, "gen-stats")
    count = page.locator("#gen-token-count")
    prompt.fill("")
    expect(count).to_have_text(re.compile(r"^\s*0 / "))
    prompt.focus()
    page.keyboard.insert_text("word " * 200)  # a paste: no key events per character
    expect(count).to_have_text(re.compile(r"^\s*[1-9][\d,]* / "))
    pasted = count.inner_text()
    prompt.fill(TOO_LONG)
    page.locator("#gen-run").click()
    expect(toasts(page).first).to_contain_text("The text is 100,001 characters")
    expect(page.locator("#gen-stats")).to_have_text("")
    assert count.inner_text() != pasted


def test_compare_clears_old_stats_when_a_message_is_refused(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    open_tab(page, "Compare")
    open_params(page, "compare")
    set_number(page, "compare-max-new-tokens", 4)
    textbox(page, "compare-input").fill("Hello")
    page.locator("#compare-send").click()
    wait_finished(page, "compare-stats-a", timeout=TIMEOUT_MS * 2)
    textbox(page, "compare-input").fill(TOO_LONG)
    page.locator("#compare-send").click()
    expect(toasts(page).first).to_contain_text("100,001 characters")
    # The stats lines described the earlier turn, not this refused one; each side's conversation stays as it was.
    for pane in ("compare-stats-a", "compare-stats-b"):
        expect(page.locator(f"#{pane}")).to_have_text("")
    for pane in ("compare-output-a", "compare-output-b"):
        expect(page.locator(f'#{pane} [data-testid="user"]')).to_have_count(1)
