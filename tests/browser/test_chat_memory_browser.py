"""Chat's memory in a real browser (issue 20): conversations survive a reload and can be switched, renamed and
deleted; an edited message keeps the old branch to flip back to; a reasoning model's <think> block shows in a
collapsible panel and stays out of exports; a NUL character the model once wrote never blocks the chat.

This module runs its own app: the browser tests' models plus tests/tiny_reasoner.py, a model whose weights are
set so that it really writes "<think>Plan: greet back.</think>Hello there!".
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect

from tests.browser.conftest import running_app
from tests.browser.helpers import (
    TIMEOUT_MS,
    bubbles,
    open_app,
    open_params,
    select_option,
    send_chat,
    set_number,
    textbox,
    upload_input,
    wait_finished,
)
from tests.tiny_models import CHAT_ID
from tests.tiny_reasoner import ANSWER, REASONER_NAME, THOUGHT, build_reasoner, reasoner_entry

CHAT_NAME = "Tiny chat"


@pytest.fixture(scope="module")
def memory_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """The app over the browser tests' models plus the reasoner (WORKBENCH_MEMORY_URL: one you started)."""
    if os.environ.get("WORKBENCH_MEMORY_URL"):
        yield os.environ["WORKBENCH_MEMORY_URL"]
        return
    browser_models_yaml = request.getfixturevalue("browser_models_yaml")
    folder = tmp_path_factory.mktemp("reasoner")
    config = yaml.safe_load(browser_models_yaml.read_text(encoding="utf-8"))
    config["models"].append(reasoner_entry(build_reasoner(folder / "model")))
    models = folder / "models.yaml"
    models.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    with running_app("--models", str(models)) as url:
        yield url


def short_replies(page: Page, tokens: int = 6) -> None:
    select_option(page, "chat-model", CHAT_NAME)
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", tokens)
    set_number(page, "chat-temperature", 0)


def ask(page: Page, message: str, users: int) -> None:
    """Sends, waits for the reply, then until the conversation is saved (the list shows it as the current one)."""
    send_chat(page, message)
    expect(bubbles(page, "user")).to_have_count(users)
    wait_finished(page, "chat-stats")
    if users == 1:  # a new conversation is listed under its first message
        open_conversations(page)
        expect(page.locator("#chat-saved input[role=combobox]")).to_have_value(message)


def open_conversations(page: Page) -> None:
    saved = page.locator("#chat-saved input[role=combobox]")
    if not saved.is_visible():
        page.locator("#chat-conversations > button").click()
    expect(saved).to_be_visible()


def saved_titles(page: Page) -> list[str]:
    """The titles the saved-conversations list offers (it is opened, read, and closed again)."""
    box = page.locator("#chat-saved input[role=combobox]")
    box.click()
    options = page.locator("#chat-saved [role=option]")
    expect(options.first).to_be_visible()
    titles = [option.get_attribute("aria-label") or "" for option in options.all()]
    page.keyboard.press("Escape")
    box.evaluate("element => element.blur()")
    return titles


def assert_titles(page: Page, expected: list[str], timeout_s: float = 10.0) -> None:
    """Waits until the list offers exactly `expected` (newest first): it is saved after the reply ends."""
    deadline = time.monotonic() + timeout_s
    while (titles := saved_titles(page)) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    assert titles == expected


def test_conversations_survive_a_reload_and_switch_rename_delete(page: Page, memory_url: str) -> None:
    open_app(page, memory_url)
    short_replies(page)
    ask(page, "Tell me about apples", 1)
    first_reply = bubbles(page, "bot").last.inner_text()
    page.reload()
    open_app(page, memory_url)
    expect(bubbles(page, "user")).to_have_text(["Tell me about apples"])
    expect(bubbles(page, "bot")).to_have_count(1)
    assert bubbles(page, "bot").last.inner_text() == first_reply

    open_conversations(page)
    page.locator("#chat-new").click()
    expect(bubbles(page, "user")).to_have_count(0)
    short_replies(page)
    ask(page, "Tell me about pears", 1)
    assert_titles(page, ["Tell me about pears", "Tell me about apples"])

    select_option(page, "chat-saved", "Tell me about apples")  # switch
    expect(bubbles(page, "user")).to_have_text(["Tell me about apples"])
    title = textbox(page, "chat-title")
    title.fill("Fruit notes")
    title.press("Enter")  # rename
    expect(page.locator("#chat-saved input[role=combobox]")).to_have_value("Fruit notes")
    page.reload()
    open_app(page, memory_url)
    open_conversations(page)
    expect(bubbles(page, "user")).to_have_text(["Tell me about apples"])  # the last one opened comes back
    assert_titles(page, ["Tell me about pears", "Fruit notes"])

    page.locator("#chat-delete").click()  # delete: the next conversation opens
    expect(bubbles(page, "user")).to_have_text(["Tell me about pears"])
    assert_titles(page, ["Tell me about pears"])
    # ... with an Undo beside the note, which brings it back (and opens it); then delete it for good.
    expect(page.locator("#chat-deleted")).to_have_text("Deleted 'Fruit notes'.")
    page.locator("#chat-undo-delete").click()
    expect(bubbles(page, "user")).to_have_text(["Tell me about apples"])
    assert_titles(page, ["Tell me about pears", "Fruit notes"])
    expect(page.locator("#chat-undo-delete")).to_be_hidden()
    expect(page.locator("#chat-deleted")).to_have_text("")
    page.locator("#chat-delete").click()
    expect(bubbles(page, "user")).to_have_text(["Tell me about pears"])
    assert_titles(page, ["Tell me about pears"])
    page.reload()
    open_app(page, memory_url)
    open_conversations(page)
    expect(bubbles(page, "user")).to_have_text(["Tell me about pears"])
    assert_titles(page, ["Tell me about pears"])


def test_editing_an_earlier_message_keeps_the_old_branch_to_flip_back_to(page: Page, memory_url: str) -> None:
    open_app(page, memory_url)
    short_replies(page)
    ask(page, "Alpha question", 1)
    ask(page, "Beta question", 2)
    old_replies = bubbles(page, "bot").all_inner_texts()

    bubbles(page, "user").first.hover()
    page.locator('#chat-history button[aria-label="Edit"]').first.click()
    editor = page.locator("#chat-history textarea.edit-textarea")
    editor.fill("Gamma question")
    page.locator('#chat-history button[aria-label="Submit"]').click()
    expect(bubbles(page, "user")).to_have_text(["Gamma question"])
    wait_finished(page, "chat-stats")
    versions = page.locator("#chat-versions")
    expect(versions).to_have_text("Message 1: version 2 of 2")
    previous, following = page.locator("#chat-version-prev"), page.locator("#chat-version-next")
    expect(following).to_be_disabled()

    previous.click()
    expect(bubbles(page, "user")).to_have_text(["Alpha question", "Beta question"])
    expect(bubbles(page, "bot")).to_have_count(2)
    assert bubbles(page, "bot").all_inner_texts() == old_replies
    expect(versions).to_have_text("Message 1: version 1 of 2")
    expect(previous).to_be_disabled()
    following.click()
    expect(bubbles(page, "user")).to_have_text(["Gamma question"])
    expect(versions).to_have_text("Message 1: version 2 of 2")
    # The branch survives a reload with the conversation.
    page.reload()
    open_app(page, memory_url)
    expect(versions).to_have_text("Message 1: version 2 of 2")
    page.locator("#chat-version-prev").click()
    expect(bubbles(page, "user")).to_have_text(["Alpha question", "Beta question"])


def test_a_reasoning_reply_shows_its_thinking_in_a_collapsible_panel(page: Page, memory_url: str,
                                                                      tmp_path: Path) -> None:
    open_app(page, memory_url)
    select_option(page, "chat-model", REASONER_NAME)
    ask(page, "Hi", 1)
    panel = page.locator("#chat-history .thought-group")
    expect(panel).to_have_count(1)
    expect(panel.locator(".title")).to_have_text("Thinking")
    expect(page.locator("#chat-history").get_by_text(THOUGHT)).to_be_hidden()  # collapsed once finished
    panel.locator(".title").click()
    expect(page.locator("#chat-history").get_by_text(THOUGHT)).to_be_visible()
    expect(bubbles(page, "bot").last).to_have_text(ANSWER)
    assert "<think>" not in page.locator("#chat-history").inner_text()

    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.locator("#chat-export").click()
    exported = tmp_path / "chat.json"
    download.value.save_as(exported)
    messages = json.loads(exported.read_text(encoding="utf-8"))["messages"]
    assert [m["content"] for m in messages] == ["Hi", ANSWER]  # the reasoning stays out of the export


def test_a_nul_the_model_wrote_never_blocks_the_chat(page: Page, memory_url: str, tmp_path: Path) -> None:
    saved = tmp_path / "with-nul.json"
    saved.write_text(json.dumps({"model": CHAT_ID, "messages": [
        {"role": "user", "content": "Say something"},
        {"role": "assistant", "content": "odd\u0000bytes here"}]}), encoding="utf-8")
    open_app(page, memory_url)
    short_replies(page, tokens=4)
    upload_input(page, "chat-import").set_input_files(str(saved))
    expect(bubbles(page, "bot")).to_have_text(["oddbytes here"])
    ask(page, "And now?", 2)
    expect(page.locator(".toast-body")).to_have_count(0)
    expect(page.locator("#chat-stats")).to_contain_text(re.compile(r"4 generated tokens"))
    assert bubbles(page, "bot").last.inner_text().strip()


ALICE = ("alice", "alice-pass-4821")
BOB = ("bob", "bob-pass-7390")


@pytest.fixture(scope="module")
def login_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The browser tests' app with two logins (a fixed browser secret, as a deployment that keeps chats sets)."""
    from unittest import mock

    env = {"WORKBENCH_AUTH": f"{ALICE[0]}:{ALICE[1]},{BOB[0]}:{BOB[1]}",
           "WORKBENCH_BROWSER_SECRET": "a-secret-the-server-keeps",
           "WORKBENCH_PRELOAD": CHAT_ID}  # loaded before the port opens: the test is about logins, not loading
    with mock.patch.dict(os.environ, env):
        with running_app("--models", str(request.getfixturevalue("browser_models_yaml"))) as url:
            yield url


def log_in(page: Page, url: str, user: tuple[str, str]) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user[0])
    page.get_by_label("password").fill(user[1])
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#chat-input textarea")).to_be_editable(timeout=TIMEOUT_MS)


def test_a_shared_browser_never_opens_another_logins_chats(page: Page, login_url: str) -> None:
    """Alice chats and logs out; Bob logs in on the same browser (same localStorage): nothing of hers is restored
    or listed, his own chat is his; Alice logs back in and finds only hers."""
    log_in(page, login_url, ALICE)
    short_replies(page)
    ask(page, "Alice private plan", 1)
    page.goto(login_url + "logout")

    log_in(page, login_url, BOB)
    assert_nothing_saved(page)
    assert "Alice private plan" not in page.content()
    short_replies(page)
    ask(page, "Bob own question", 1)
    page.reload()
    expect(page.locator("#chat-input textarea")).to_be_editable(timeout=TIMEOUT_MS)
    expect(bubbles(page, "user")).to_have_text(["Bob own question"])
    page.goto(login_url + "logout")

    log_in(page, login_url, ALICE)  # Bob's save replaced the browser's store, sealed for him: Alice sees none of it
    assert_nothing_saved(page)
    assert "Bob own question" not in page.content()


def assert_nothing_saved(page: Page) -> None:
    """The conversation is empty and the saved-conversations list offers nothing."""
    open_conversations(page)
    expect(bubbles(page, "user")).to_have_count(0)
    saved = page.locator("#chat-saved input[role=combobox]")
    expect(saved).to_have_value("")
    saved.click()
    page.wait_for_timeout(500)  # an open list with options shows them by now
    expect(page.locator("#chat-saved [role=option]")).to_have_count(0)
    page.keyboard.press("Escape")
