"""Presenter mode in the browser: `python app.py --presenter --models <a registry with a presenter block>`.

A clean screen from the config (title, description, logo), no model picker, parameters or technical tabs, no API
link; examples send with one click, replies stream, "New conversation" clears it. Writes
docs/screenshots/presenter.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import running_app
from tests.browser.helpers import (
    TIMEOUT_MS,
    bubbles,
    record_shown,
    record_texts,
    recorded_shown,
    recorded_texts,
    screenshot,
    textbox,
    wait_finished,
)
from tests.test_presenter import DESCRIPTION, EXAMPLES, TITLE, write_presenter_yaml


@pytest.fixture(scope="module")
def presenter_url(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app, started as a presenter would start it, over the tiny models and a presenter block."""
    models = write_presenter_yaml(tiny_models_yaml, tmp_path_factory.mktemp("presenter-browser"))
    with running_app("--presenter", "--models", str(models)) as url:
        yield url


def open_presenter(page: Page, url: str) -> None:
    page.goto(url)
    expect(textbox(page, "chat-input")).to_be_editable(timeout=TIMEOUT_MS)


def test_presenter_screen_is_clean_and_shows_the_config(page: Page, presenter_url: str) -> None:
    open_presenter(page, presenter_url)
    expect(page.locator("#presenter-title")).to_have_text(TITLE)
    expect(page.locator("#presenter-description")).to_contain_text(DESCRIPTION)
    logo = page.locator("#presenter-header img.presenter-logo")
    expect(logo).to_be_visible()
    assert logo.get_attribute("src").startswith("data:image/svg+xml;base64,")
    assert logo.evaluate("img => img.naturalWidth") > 0  # the embedded image really renders
    expect(page).to_have_title(TITLE)

    # Nothing technical: no tabs, no model picker, no parameters, no stats, no API link.
    expect(page.get_by_role("tab")).to_have_count(0)
    for absent in ("#chat-model", "#chat-params", "#tab-compare", "#tab-generate", "#tab-models"):
        expect(page.locator(absent)).to_have_count(0)
    expect(page.get_by_text("Generation parameters")).to_have_count(0)
    expect(page.locator("#chat-stats")).to_be_hidden()
    footer = page.locator("footer")
    expect(footer).to_contain_text("Built with Gradio")
    expect(footer).not_to_contain_text("API")

    # Larger type than Gradio's default (about 16 px) in the conversation and the input.
    size = textbox(page, "chat-input").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 19, size


def test_example_streams_a_reply_then_reset_clears_it(page: Page, presenter_url: str) -> None:
    open_presenter(page, presenter_url)
    examples = page.locator("#presenter-examples button")
    expect(examples).to_have_count(len(EXAMPLES))

    # One click on an example asks it, and the reply streams in (several renders of the growing bubble).
    record_texts(page, '#chat-history [data-testid="bot"]')
    examples.first.click()
    expect(bubbles(page, "user")).to_have_count(1)
    expect(bubbles(page, "user").first).to_contain_text(EXAMPLES[0])
    wait_finished(page, "chat-stats")
    seen = recorded_texts(page)
    final = bubbles(page, "bot").last.inner_text().strip()
    assert final, "no reply"
    assert len(seen) >= 2 and seen[-1] == final, f"reply did not stream: {seen}"
    expect(textbox(page, "chat-input")).to_have_value("")
    page.mouse.move(0, 0)  # no hover highlight in the screenshot
    screenshot(page, "presenter")

    # A typed message goes through the same locked model and settings.
    textbox(page, "chat-input").fill("And what about returns?")
    textbox(page, "chat-input").press("Enter")
    expect(bubbles(page, "user")).to_have_count(2)
    expect(bubbles(page, "bot")).to_have_count(2)
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=TIMEOUT_MS)

    page.locator("#presenter-reset").click()
    expect(bubbles(page, "user")).to_have_count(0)
    expect(bubbles(page, "bot")).to_have_count(0)
    expect(textbox(page, "chat-input")).to_have_value("")


def test_presenter_settings_are_locked(page: Page, presenter_url: str) -> None:
    """Same prompt, same reply: temperature 0 from the config, and nothing on the page can change it."""
    open_presenter(page, presenter_url)
    replies = []
    for _ in range(2):
        page.locator("#presenter-examples button").nth(1).click()
        wait_finished(page, "chat-stats")
        replies.append(bubbles(page, "bot").last.inner_text())
        page.locator("#presenter-reset").click()
        expect(bubbles(page, "bot")).to_have_count(0)
    assert replies[0] == replies[1] and replies[0].strip()
    expect(page.locator("input[type=range], input[type=number], [role=combobox]")).to_have_count(0)


def test_phone_keeps_the_title_in_view_and_shows_the_wait(browser, presenter_url: str) -> None:
    """At 390 px the "New conversation" button sits beside the title (it overlapped it), the title stays in view
    while a reply streams (the page scrolled it away), the reply shows the wait, and Send turns into Stop."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        open_presenter(page, presenter_url)
        title, reset = page.locator("#presenter-title"), page.locator("#presenter-reset")
        a, b = title.bounding_box(), reset.bounding_box()
        overlap = not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                       or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
        assert not overlap, (a, b)
        textbox(page, "chat-input").press("Enter")  # an empty Send: a note, no red toast
        expect(page.locator(".toast-body.info")).to_contain_text("Type a message first.")
        record_shown(page, ["chat-send", "chat-stop-btn"])
        page.locator("#presenter-examples button").last.click()  # scrolls down to the examples first
        expect(bubbles(page, "bot").last).not_to_have_text("")
        box = title.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844, box  # still on screen
        wait_finished(page, "chat-stats")
        expect(page.locator(".toast-body.error")).to_have_count(0)
        assert title.bounding_box()["y"] >= 0
        expect(page.locator("#chat-send")).to_be_visible()
        # Recorded, not sampled: a 40-token reply can end between two polls of the page.
        shown = recorded_shown(page)
        assert shown == [["chat-send"], ["chat-stop-btn"], ["chat-send"]], shown
    finally:
        context.close()


def test_an_empty_send_mid_demo_says_so_and_keeps_send(page: Page, presenter_url: str) -> None:
    """The stats line is hidden here, so the note is a toast; an empty stream used to blank Send's label."""
    open_presenter(page, presenter_url)
    page.locator("#presenter-examples button").first.click()
    wait_finished(page, "chat-stats", timeout=120_000)  # may load the model, on a busy machine
    page.locator("#chat-send").click()
    note = page.locator(".toast-body.info").filter(has_text="Type a message first.")
    expect(note).to_be_visible()
    expect(page.locator("#chat-send")).to_have_text("Send")
    expect(bubbles(page, "user")).to_have_count(1)  # the demo's conversation stays as it was
    expect(page.locator(".toast-body.error")).to_have_count(0)
