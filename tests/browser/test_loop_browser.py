"""Close the loop in a real browser: a two-turn chat saved as a test case runs in Evaluate with its history.

On the session's shared app. Chat answers greedily (temperature 0, 8 new tokens) and the expected answer is
left blank, so the saved reference is Chat's own second reply; Evaluate, also greedy with 8 new tokens, gives the
same reply only when it asks the model with turn 1 in front of turn 2 (the suite's `context` column, picked by
itself as the conversation column). The downloaded examples show it.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pandas as pd
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    TIMEOUT_MS,
    bubbles,
    fill_text,
    open_app,
    open_params,
    open_tab,
    select_option,
    send_chat,
    set_number,
    wait_finished,
)

TURNS = ("My cat is called Tom.", "What is my cat called?")


def test_a_two_turn_chat_saved_as_a_case_runs_in_evaluate_in_context(page: Page, app_url: str,
                                                                      tmp_path: Path) -> None:
    suite = f"loop-{uuid.uuid4().hex[:8]}"
    open_app(page, app_url)
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", 8)
    set_number(page, "chat-temperature", 0)
    for count, message in enumerate(TURNS, start=1):
        send_chat(page, message)
        expect(bubbles(page, "user")).to_have_count(count)
        wait_finished(page, "chat-stats", timeout=120_000)
        expect(page.locator("#chat-history")).not_to_contain_text("Thinking…", timeout=120_000)
    page.locator("#chat-test-case > button").click()
    fill_text(page, "chat-suite", suite)
    page.locator("#chat-save-case").click()
    expect(page.locator("#chat-feedback-status")).to_contain_text(f"Test case saved to '{suite}' (1 case(s))")

    page.reload()  # a fresh page lists the new suite among the saved datasets
    open_app(page, app_url)
    open_tab(page, "Evaluate")
    page.get_by_role("tab", name="Saved dataset", exact=True).click()
    select_option(page, "eval-saved", suite)
    expect(page.locator("#eval-data-info")).to_contain_text("1 rows")
    expect(page.locator("#eval-conversation-col input[role=combobox]")).to_have_value("context")
    expect(page.locator("#eval-input-col input[role=combobox]")).to_have_value("input")
    expect(page.locator("#eval-models .token")).to_have_count(1)  # generation's default: the chat model
    expect(page.locator("#eval-models .token")).to_contain_text("Tiny chat")
    set_number(page, "eval-max-new-tokens", 8)
    set_number(page, "eval-bootstrap", 0)
    page.locator("#eval-run").click()
    expect(page.locator("#eval-progress [role=progressbar]")).to_have_attribute(
        "aria-valuetext", re.compile(r"^Done: 1 of 1 example"), timeout=120_000)
    expect(page.locator("#eval-leaderboard")).to_contain_text("contains", timeout=TIMEOUT_MS)

    with page.expect_download() as download_info:
        page.locator("#eval-download-csv").click()
    saved = tmp_path / "examples.csv"
    download_info.value.save_as(saved)
    row = pd.read_csv(saved, keep_default_na=False).iloc[0]
    assert row["input"] == TURNS[1]
    # The reference is Chat's reply to turn 2 with turn 1 before it: the same reply means the same history.
    assert str(row["prediction"]).strip() == str(row["reference"]).strip() != ""
    assert row["exact_match"] == 1.0 and row["normalized_exact_match"] == 1.0
