"""The Compare arena in a real browser on the shared app: two blind rounds between tiny-chat and a twin entry over
the same weights (added to the runs' overlay for this test and taken out afterwards), votes, the reveal, the
leaderboard and its CSV; then a preference dataset built from those votes in the Data tab, which the DPO recipe
reads. The handlers' logic is tested in tests/test_compare_arena.py; this checks what only the page shows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml
from playwright.sync_api import expect

from backend.data import votes
from backend.data.store import dataset_path
from backend.training import overlay
from tests.browser.helpers import (
    TIMEOUT_MS,
    expect_choice,
    open_app,
    open_params,
    open_tab,
    screenshot,
    select_option,
    set_checkbox,
    set_number,
    textbox,
)
from tests.test_model_ownership import entry_over_tiny_chat

TWIN = "arena-twin"


def one_round(page, message: str, vote: str) -> None:
    """Sends a message (a new blind round: letters only), waits for both replies, votes."""
    textbox(page, "compare-input").fill(message)
    page.locator("#compare-send").click()
    expect(page.locator("#compare-title-a")).to_have_text("A")  # blind until the vote
    expect(page.locator("#compare-title-b")).to_have_text("B")
    expect(page.locator(f"#compare-vote-{vote}")).to_be_visible(timeout=TIMEOUT_MS * 4)  # both replies finished
    for side in ("a", "b"):
        expect(page.locator(f"#compare-stats-{side}")).to_contain_text("finish:")
    page.locator(f"#compare-vote-{vote}").click()
    expect(page.locator("#compare-reveal")).to_contain_text(TWIN)
    expect(page.locator("#compare-vote")).to_be_hidden()


def test_blind_rounds_votes_leaderboard_and_a_preference_dataset(page, app_url, app_runs: Path,
                                                                  browser_models_yaml: Path) -> None:
    overlay.add_entry(entry_over_tiny_chat(browser_models_yaml, TWIN), app_runs)
    try:
        open_app(page, app_url)
        open_tab(page, "Compare")
        expect_choice(page, "compare-model-b", TWIN)  # the app follows the overlay
        select_option(page, "compare-model-a", "Tiny chat")
        select_option(page, "compare-model-b", TWIN)
        set_checkbox(page, "compare-blind", True)
        open_params(page, "compare")
        set_number(page, "compare-max-new-tokens", 4)
        one_round(page, "Hello", "a")
        titles = page.locator("#compare-title-a").inner_text() + page.locator("#compare-title-b").inner_text()
        assert TWIN in titles and "Tiny chat" in titles  # named after the vote
        one_round(page, "Tell me a story", "b")
        expect(page.locator("#compare-leaderboard-summary")).to_contain_text("2 vote(s), 2 model(s)")
        board = page.locator("#compare-leaderboard-table")
        expect(board).to_contain_text(TWIN)
        expect(board).to_contain_text("tiny-chat")
        with page.expect_download() as download:
            page.locator("#compare-leaderboard-csv").click()
        lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("rank,model,rating,ci_low,ci_high,votes") and len(lines) == 3
        screenshot(page, "compare-arena")

        stored = votes.load_votes(None, root=app_runs)
        assert [vote.outcome for vote in stored] == ["A", "B"] and all(vote.blind for vote in stored)
        open_tab(page, "Data")
        page.locator("#data-feedback-kind").get_by_label("Preference (chosen / rejected) from arena votes").check()
        name = f"arena-{uuid.uuid4().hex[:8]}"
        page.locator("#data-feedback-name textarea, #data-feedback-name input").first.fill(name)
        page.locator("#data-feedback-build").click()
        expect(page.locator("#data-feedback-status")).to_contain_text(f"Saved '{name}' (preference: train 2)")
        rows = [json.loads(line) for line in
                dataset_path(None, name, "train", root=app_runs).read_text(encoding="utf-8").splitlines()]
        assert [row["chosen_model"] for row in rows] == [vote.models[vote.winner] for vote in stored]
        assert [row["prompt"][-1]["content"] for row in rows] == ["Hello", "Tell me a story"]
    finally:
        entries = [entry for entry in overlay.read_entries(app_runs) if entry.get("id") != TWIN]
        overlay.overlay_path(app_runs).write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
