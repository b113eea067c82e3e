"""The Data tab and chat feedback in a real browser against the real app (its own runs folder).

Rate replies in Chat (👍 / 👎) and save a turn as a test case, build an SFT dataset from them on the Data tab, find it
listed where Train and Evaluate look (backend.data.store.list_datasets / dataset_path) and pick it on the Train tab;
then upload a CSV, see its statistics, clean + split it in the job process and get its card's counts and a download.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import running_app
from tests.browser.helpers import (
    bubbles,
    open_app,
    open_params,
    open_tab,
    screenshot,
    select_option,
    send_chat,
    set_number,
    wait_finished,
)


def words(text: str) -> str:
    """The letters and digits of a text, without the punctuation and spaces Markdown rendering changes."""
    return re.sub(r"[\W_]+", "", text)


@pytest.fixture(scope="module")
def data_app(browser_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory):
    runs = tmp_path_factory.mktemp("data-runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKBENCH_RUNS_DIR", str(runs))
        with running_app("--models", str(browser_models_yaml)) as url:
            yield url, runs


def test_rate_replies_then_build_an_sft_dataset_listed_for_training(page, data_app) -> None:
    from backend.data.store import dataset_path, list_datasets

    url, runs = data_app
    open_app(page, url)
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", 8)
    rated: list[str] = []
    for message, thumb in (("hello there", "Like"), ("tell me more", "Dislike"), ("and then?", "Like")):
        send_chat(page, message)
        expect(bubbles(page, "user")).to_have_count(len(rated) + 1)
        # Finished, and the pending "Waiting for the first token…" message has been replaced by the reply itself.
        wait_finished(page, "chat-stats", timeout=120_000)
        expect(page.locator("#chat-history")).not_to_contain_text("Waiting for the first token…", timeout=120_000)
        rated.append(thumb)
        bubbles(page, "bot").last.hover()
        page.locator(f'#chat-history button[aria-label="{thumb}"]').last.click()
        expect(page.locator("#chat-feedback-status")).to_contain_text("👍 saved" if thumb == "Like" else "👎 saved")
    replies = [bubble.inner_text().strip() for bubble in bubbles(page, "bot").all()]
    # The last turn as a regression test case, with its expected answer.
    page.locator("#chat-test-case > button").click()
    page.locator("#chat-expected textarea").fill("a better answer")
    page.locator("#chat-save-case").click()
    expect(page.locator("#chat-feedback-status")).to_contain_text("Test case saved to 'chat-regression' (1 case(s))")
    # The same ratings through the app's HTTP API (/v1/feedback, next to the OpenAI routes).
    import httpx

    listed = httpx.get(f"{url}v1/feedback", timeout=30).json()["ratings"]
    assert [(entry["rating"], entry["model"]) for entry in listed] == [("up", "tiny-chat"), ("down", "tiny-chat"),
                                                                        ("up", "tiny-chat")]

    open_tab(page, "Data")
    page.locator("#data-feedback-name textarea, #data-feedback-name input").first.fill("chat-sft")
    page.locator("#data-feedback-build").click()
    expect(page.locator("#data-feedback-status")).to_contain_text("Saved 'chat-sft' (sft: train 2)")
    expect(page.locator("#data-saved")).to_contain_text("chat-sft")
    screenshot(page, "data-feedback")
    page.reload()  # a fresh page lists what is saved, without a click on Refresh
    open_tab(page, "Data")
    expect(page.locator("#data-saved")).to_contain_text("chat-regression")
    expect(page.locator("#data-saved")).to_contain_text("chat-sft")

    assert sorted((info.name, info.kind) for info in list_datasets(None, root=runs)) == [
        ("chat-regression", "test-cases"), ("chat-sft", "sft")]
    case = json.loads(dataset_path(None, "chat-regression", root=runs).read_text())
    assert (case["input"], case["reference"]) == ("and then?", "a better answer")
    path = dataset_path(None, "chat-sft", root=runs)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # The bubbles show the replies rendered as Markdown (a reply starting "> " is a quote there): compare words.
    assert [words(row["messages"][-1]["content"]) for row in rows] == [words(replies[0]), words(replies[2])]
    assert [row["messages"][-2]["content"] for row in rows] == ["hello there", "and then?"]
    assert len(rows[1]["messages"]) == 6  # the whole conversation up to the rated reply
    # Training reads it as it is: the fine-tuning data loader takes the `messages` column.
    from backend.training.config import TrainConfig
    from backend.training.recipes.sft import prepare_sft

    sft = prepare_sft(TrainConfig(task="sft", base="tiny-chat", data=str(path), messages_column="messages"))
    assert len(sft.train) + len(sft.val) == 2
    # ... and the Train tab offers it: picked there, its conversations are what the check reads.
    open_tab(page, "Train")
    page.locator("#train-task").get_by_label("Chat (SFT)").check()
    select_option(page, "train-saved", "chat-sft")
    expect(page.locator("#train-messages-column input")).to_have_value("messages")
    page.locator("#train-check").click()
    expect(page.locator("#train-plan")).to_contain_text(f"{len(sft.train)} training and {len(sft.val)} validation "
                                                        "examples", timeout=120_000)


def test_upload_inspect_clean_split_and_save(page, data_app, tmp_path: Path) -> None:
    from backend.data.store import list_datasets

    url, runs = data_app
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(40):
            writer.writerow([f"  review {i % 30}   is <b>fine</b> ", "pos" if i % 4 else "neg"])
    open_app(page, url)
    open_tab(page, "Data")
    page.locator("#data-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#data-status")).to_contain_text("Loaded reviews.csv: 40 rows, 2 columns")
    page.get_by_role("tab", name="Statistics").click()
    expect(page.locator("#data-summary")).to_contain_text("40 rows")
    expect(page.locator("#data-labels-plot")).to_be_visible()
    for step in ("Strip HTML", "Drop exact duplicates"):
        page.locator("#data-clean").get_by_label(step).check()
    result = page.locator("#data-result")
    page.locator("#data-count").click()
    expect(result).to_contain_text("Dry run, nothing saved", timeout=120_000)
    expect(result).to_contain_text("dedupe: 0 row(s) changed, 10 dropped")
    page.locator("#data-clean").get_by_label("Drop exact duplicates").uncheck()
    expect(result).to_have_text("")  # the counts were for other settings
    page.locator("#data-clean").get_by_label("Drop exact duplicates").check()
    page.locator("#data-name textarea, #data-name input").first.fill("reviews-clean")
    page.locator("#data-run").click()
    expect(result).to_contain_text("Saved 'reviews-clean'", timeout=120_000)
    expect(result).to_contain_text("normalize: 40 row(s) changed, 0 dropped")
    expect(result).to_contain_text("html: 40 row(s) changed, 0 dropped")
    expect(result).to_contain_text("dedupe: 0 row(s) changed, 10 dropped")
    expect(page.locator("#data-download")).to_be_visible()
    screenshot(page, "data")
    info = next(info for info in list_datasets(None, root=runs) if info.name == "reviews-clean")
    assert sum(info.rows.values()) == 30 and set(info.files) == {"train", "validation", "test"}
