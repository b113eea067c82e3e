"""Evaluate tab in a real browser: upload a CSV, map its columns, run two models (a classifier and a chat model
scoring the labels), read the leaderboard, chart and confusion matrix, filter the examples and download them.

Self-contained: the tab is served in-process inside a Blocks of its own (as build_app places it), with its runs
saved to a temporary folder, so this passes whether or not the app has wired the tab in yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import TIMEOUT_MS, screenshot, select_option, set_number, textbox
from tests.conftest import free_port

RUN_TIMEOUT_MS = 120_000  # the first run loads both models (torch included) in this process
# Two thirds positive: the tiny models (random weights) lean to one label each, so their scores differ.
REVIEWS = [
    ("I loved this film. The acting was wonderful.", "positive"),
    ("Terrible service. The food was cold.", "negative"),
    ("This product is great, I would buy it again!", "positive"),
    ("Best purchase this year!", "positive"),
    ("Worst purchase ever; it broke after two days.", "negative"),
    ("The new phone has a great camera and a long battery life.", "positive"),
    ("Great food, friendly staff.", "positive"),
    ("The waiter was rude and the room was dirty.", "negative"),
    ("A wonderful, moving story.", "positive"),
    ("I would buy it again.", "positive"),
    ("Awful. Never again.", "negative"),
    ("Friendly staff and a warm welcome.", "positive"),
]


@pytest.fixture(scope="module")
def eval_url(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Evaluate tab over the tiny models, served by this process on a free port."""
    import ui
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from ui.evaluate import build_evaluate_tab

    registry = Registry(tiny_config, create_engine)
    with gr.Blocks(title="LLM Workbench") as demo:
        gr.Markdown("## LLM Workbench\nChat with, generate with and compare the models in your `models.yaml`.")
        with gr.Tabs():
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                build_evaluate_tab(registry, runs_dir=tmp_path_factory.mktemp("eval-runs"))
    port = free_port()
    ui.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        registry.close()


def choose_models(page: Page, names: list[str]) -> None:
    """Sets the models multiselect to exactly `names` (matched against the choices' visible text)."""
    clear = page.locator("#eval-models .remove-all")
    if clear.count() and clear.is_visible():
        clear.click()
    expect(page.locator("#eval-models .token")).to_have_count(0)
    box = page.locator("#eval-models input[role=combobox]")
    for name in names:
        box.click()
        page.get_by_role("option").filter(has_text=name).first.click()
    box.press("Escape")
    tokens = page.locator("#eval-models .token")
    expect(tokens).to_have_count(len(names))
    for index, name in enumerate(names):
        expect(tokens.nth(index)).to_contain_text(name)


def test_upload_map_run_two_models_and_download(page: Page, eval_url: str, tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(len(REVIEWS)), "review": [text for text, _ in REVIEWS],
                  "sentiment": [label for _, label in REVIEWS]}).to_csv(data, index=False)
    great = sum("great" in text.lower() for text, _ in REVIEWS)
    page.goto(eval_url)
    expect(page.locator("#tab-evaluate")).to_be_visible(timeout=TIMEOUT_MS)

    # Upload: a preview of the first rows, and the columns offered for mapping.
    page.locator("#eval-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#eval-data-info")).to_contain_text("reviews.csv: 12 rows · columns: id, review, sentiment")
    expect(page.locator("#eval-preview")).to_contain_text("I loved this film.")
    page.locator("#eval-task").get_by_role("radio", name="Classification").check()
    expect(page.locator("#eval-reference-col")).to_contain_text("Label column")
    select_option(page, "eval-input-col", "review")
    select_option(page, "eval-reference-col", "sentiment")
    expect(page.locator("#eval-input-col input[role=combobox]")).to_have_value("review")

    # Two models: a supervised classifier and a chat model scoring the labels.
    choose_models(page, ["Tiny sentiment classifier", "Tiny chat"])
    page.locator("#eval-run").click()
    progress = page.locator("#eval-progress [role=progressbar]")
    expect(progress).to_have_attribute("aria-valuetext", re.compile(r"^Done: 24 of 24 examples"),
                                       timeout=RUN_TIMEOUT_MS)
    board = page.locator("#eval-leaderboard")
    for model in ("tiny-classifier", "tiny-chat"):
        expect(board).to_contain_text(model)
    expect(board).to_contain_text("accuracy")
    expect(board).to_contain_text(re.compile(r"\d \[\d"))  # value [low, high]
    expect(page.locator("#eval-chart svg g.mark-rect path")).to_have_count(2)
    expect(page.locator("#eval-confusion")).to_contain_text("Confusion matrix of")
    expect(page.locator("#eval-per-class")).to_contain_text("negative")
    expect(page.locator("#eval-runs")).to_contain_text("tiny-classifier, tiny-chat")
    page.locator("#eval-run").evaluate("element => element.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    page.wait_for_timeout(500)  # the chart's entry transition
    screenshot(page, "evaluate")

    # Filter the examples, then download what is shown (both formats).
    textbox(page, "eval-filter").fill("GREAT")
    textbox(page, "eval-filter").press("Enter")
    expect(page.locator("#eval-examples-info")).to_have_text(f"{2 * great} of 24 rows match")
    with page.expect_download() as download_info:
        page.locator("#eval-download-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv") and "filter" in download.suggested_filename
    saved = tmp_path / "filtered.csv"
    download.save_as(saved)
    table = pd.read_csv(saved)
    assert len(table) == 2 * great and set(table["model"]) == {"tiny-classifier", "tiny-chat"}
    assert table["input"].str.lower().str.contains("great").all()
    assert list(table.columns[:5]) == ["model", "row", "input", "reference", "prediction"]
    assert set(table["prediction"]) <= {"negative", "positive"} and set(table["reference"]) == {"positive"}

    select_option(page, "eval-examples-model", "tiny-chat")
    expect(page.locator("#eval-examples-info")).to_have_text(f"{great} of 12 rows match")
    textbox(page, "eval-filter").fill("")
    textbox(page, "eval-filter").press("Enter")
    expect(page.locator("#eval-examples-info")).to_have_text("12 rows")
    with page.expect_download() as download_info:
        page.locator("#eval-download-json").click()
    saved = tmp_path / "chat.json"
    download_info.value.save_as(saved)
    records = json.loads(saved.read_text(encoding="utf-8"))
    assert len(records) == 12 and {record["model"] for record in records} == {"tiny-chat"}
    assert [record["input"] for record in records] == [text for text, _ in REVIEWS]
    assert [record["reference"] for record in records] == [label for _, label in REVIEWS]


def test_a_missing_column_is_a_clear_error(page: Page, eval_url: str, tmp_path: Path) -> None:
    data = tmp_path / "qa.csv"
    pd.DataFrame({"question": ["Say hello.", "Count to three."], "answer": ["Hello!", "1 2 3"]}).to_csv(data,
                                                                                                      index=False)
    page.goto(eval_url)
    page.locator("#eval-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#eval-data-info")).to_contain_text("2 rows", timeout=TIMEOUT_MS)
    select_option(page, "eval-reference-col", "(none)")
    page.locator("#eval-run").click()
    toast = page.locator(".toast-body").first
    expect(toast).to_contain_text("reference column: generation needs one", timeout=TIMEOUT_MS)
    expect(toast).to_contain_text("'question', 'answer'")


def test_cancel_keeps_the_examples_done(page: Page, eval_url: str, tmp_path: Path) -> None:
    data = tmp_path / "prompts.csv"
    pd.DataFrame({"prompt": [f"Count to {i}:" for i in range(300)], "reference": ["1 2 3"] * 300}).to_csv(
        data, index=False)
    page.goto(eval_url)
    page.locator("#eval-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#eval-data-info")).to_contain_text("300 rows", timeout=TIMEOUT_MS)
    expect(page.locator("#eval-task").get_by_role("radio", name="Generation")).to_be_checked()
    choose_models(page, ["Tiny chat"])
    set_number(page, "eval-batch-size", 1)
    set_number(page, "eval-max-new-tokens", 64)
    page.locator("#eval-run").click()
    progress = page.locator("#eval-progress [role=progressbar]")
    # "12 / 300 examples · tiny-chat: 12 / 300 examples · 3 s elapsed · about 70 s left"
    expect(progress).to_have_attribute("aria-valuetext", re.compile(r"^[1-9]\d* / 300 examples .* left$"),
                                       timeout=RUN_TIMEOUT_MS)
    page.locator("#eval-cancel").click()
    expect(progress).to_have_attribute("aria-valuetext", re.compile(r"^Cancelled: [1-9]\d* of 300 examples"))
    expect(page.locator("#eval-leaderboard")).to_contain_text("cancelled")
    expect(page.locator("#eval-runs")).to_contain_text("cancelled")
