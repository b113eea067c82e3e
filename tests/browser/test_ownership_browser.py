"""With logins on, the pickers are per user: Alice's fine-tuned model is in her Chat picker and not in Bob's; a
shared one is in both; a model Bob gets while his page is open appears in his picker without a reload."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import running_app
from tests.browser.helpers import VIEWPORT, expect_choice
from tests.test_model_ownership import ALICE, BOB, entry_over_tiny_chat
from backend.training import overlay


@pytest.fixture(scope="module")
def logins_app(browser_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    runs = tmp_path_factory.mktemp("owned-runs")
    overlay.add_entry(entry_over_tiny_chat(browser_models_yaml, "alice-chat", owner="alice"), runs)
    overlay.add_entry(entry_over_tiny_chat(browser_models_yaml, "bob-shared", owner="bob", shared=True), runs)
    env = {"WORKBENCH_AUTH": ",".join(f"{user}:{password}" for user, password in (ALICE, BOB)),
           "WORKBENCH_RUNS_DIR": str(runs)}
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # read by running_app's environment
    try:
        with running_app("--models", str(browser_models_yaml)) as url:
            yield url, runs
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def logged_in(browser: Browser, url: str, login: tuple[str, str]) -> Page:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url)
    page.get_by_label("username").fill(login[0])
    page.get_by_label("password").fill(login[1])
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#chat-input textarea")).to_be_editable(timeout=60_000)
    return page


def test_each_user_picks_from_their_own_and_the_shared_models(browser: Browser, logins_app: tuple[str, Path],
                                                              browser_models_yaml: Path) -> None:
    url, runs = logins_app
    alice, bob = logged_in(browser, url, ALICE), logged_in(browser, url, BOB)
    expect_choice(alice, "chat-model", "alice-chat")
    expect_choice(alice, "chat-model", "bob-shared")
    expect_choice(bob, "chat-model", "bob-shared")
    expect_choice(bob, "chat-model", "alice-chat", present=False, timeout_s=0)
    overlay.add_entry(entry_over_tiny_chat(browser_models_yaml, "bob-later", owner="bob"), runs)
    expect_choice(bob, "chat-model", "bob-later")
    alice.wait_for_timeout(3_000)  # a tick or more of her page after the change
    expect_choice(alice, "chat-model", "bob-later", present=False, timeout_s=0)
    for page in (alice, bob):
        page.context.close()
