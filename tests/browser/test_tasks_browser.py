"""The Tasks tab in a real browser, one test per view, all against the one app of this browser session: NER
highlights and table, QA answer and its missing-context error, fill-mask chart, a streamed summary with stats and
a refused language pair, embeddings heat map, search and projection over an uploaded file, a whole-file run."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from playwright.sync_api import Page, expect

from tests.browser.helpers import TIMEOUT_MS, open_app, open_tab, screenshot, select_option, textbox, wait_finished

LOAD_TIMEOUT_MS = 90_000  # the first request loads the model (torch import included) in the app process


def open_view(page: Page, app_url: str, view: str) -> None:
    open_app(page, app_url)
    open_tab(page, "Tasks")
    open_tab(page, view)


def toast(page: Page):
    return page.locator(".toast-body").first


def test_ner_view_highlights_entities_and_lists_offsets(page: Page, app_url: str) -> None:
    open_view(page, app_url, "Entities")
    textbox(page, "ner-text").fill("Dr. Smith met Anna in Paris.")
    page.locator("#ner-run").click()
    table = page.locator("#ner-table")
    expect(table).to_contain_text("start", timeout=LOAD_TIMEOUT_MS)
    expect(table).to_contain_text(re.compile("PER|LOC|ORG"))
    expect(page.locator("#ner-highlighted")).to_contain_text("Paris")
    screenshot(page, "tasks-ner")
    page.locator("#ner-aggregation").get_by_role("radio", name="none").check()
    page.locator("#ner-run").click()
    expect(table).to_contain_text("I-", timeout=TIMEOUT_MS)  # token-level BIO labels without aggregation


def test_qa_view_answers_and_refuses_a_question_without_context(page: Page, app_url: str) -> None:
    open_view(page, app_url, "Question answering")
    textbox(page, "qa-context").fill("The meeting was moved to Tuesday at 10 a.m. in room B-204.")
    textbox(page, "qa-question").fill("Where is the meeting?")
    page.locator("#qa-run").click()
    expect(page.locator("#qa-answer")).to_contain_text("score", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#qa-table").get_by_role("row")).to_have_count(4)  # the header and the top 3
    screenshot(page, "tasks-qa")
    textbox(page, "qa-context").fill("")
    expect(page.locator("#qa-answer")).to_have_text("")  # a changed input clears the old answer
    page.locator("#qa-run").click()
    expect(toast(page)).to_contain_text("context: is empty", timeout=TIMEOUT_MS)


def test_fill_mask_view_charts_each_mask_and_names_the_mask_token(page: Page, app_url: str) -> None:
    open_view(page, app_url, "Fill mask")
    textbox(page, "mask-text").fill("The [MASK] sat on the [MASK].")
    page.locator("#mask-run").click()
    expect(page.locator("#mask-table")).to_contain_text("mask 2", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#mask-chart svg g.mark-rect path")).to_have_count(10)  # 2 masks × top 5
    screenshot(page, "tasks-fill-mask")
    textbox(page, "mask-text").fill("The cat sat on the mat.")
    page.locator("#mask-run").click()
    expect(toast(page)).to_contain_text("put [MASK] where a word should be predicted", timeout=TIMEOUT_MS)


def test_translate_view_streams_with_stats_and_refuses_a_missing_pair(page: Page, app_url: str) -> None:
    open_view(page, app_url, "Translate")
    textbox(page, "tr-text").fill("Good morning, how are you?")
    select_option(page, "tr-target", "fr")
    page.locator("#tr-run").click()
    stats = wait_finished(page, "tr-stats", timeout=LOAD_TIMEOUT_MS)
    assert "generated tokens" in stats
    expect(textbox(page, "tr-output")).not_to_have_value("")
    screenshot(page, "tasks-translate")
    box = page.locator("#tr-target input[role=combobox]")
    box.fill("ja")
    box.press("Enter")
    page.locator("#tr-run").click()
    expect(toast(page)).to_contain_text("does not translate en → ja", timeout=TIMEOUT_MS)


def test_summarize_view_streams(page: Page, app_url: str) -> None:
    open_view(page, app_url, "Summarize")
    textbox(page, "sum-text").fill("The quick brown fox jumps over the lazy dog. " * 5)
    page.locator("#sum-run").click()
    assert "finish" in wait_finished(page, "sum-stats", timeout=LOAD_TIMEOUT_MS)
    expect(textbox(page, "sum-output")).not_to_have_value("")


def test_embeddings_view_heat_map_search_projection_and_file_run(page: Page, app_url: str, tmp_path: Path) -> None:
    open_view(page, app_url, "Embeddings")
    page.locator("#embed-run").click()
    cells = page.locator("#embed-heatmap-table tbody td")
    expect(cells).to_have_count(9, timeout=LOAD_TIMEOUT_MS)  # the 3 example sentences
    expect(page.locator("#embed-note")).to_contain_text("32 dimensions · cls pooling, normalised")
    screenshot(page, "tasks-embeddings")

    path = tmp_path / "corpus.csv"
    pd.DataFrame({"text": ["The cat sat on the mat.", "Prices rose in March.", "The weather is sunny.",
                           "A dog slept by the fire."], "topic": ["pets", "money", "weather", "pets"]}).to_csv(
        path, index=False)
    open_tab(page, "Search and projection")
    page.locator("#embed-corpus-file input[type=file]").set_input_files(str(path))
    expect(page.locator("#embed-corpus-info")).to_contain_text("4 rows", timeout=TIMEOUT_MS)
    select_option(page, "embed-label-column", "topic")
    textbox(page, "embed-query").fill("The cat sat on the mat.")
    page.locator("#embed-search").click()
    expect(page.locator("#embed-hits")).to_contain_text("The cat sat on the mat.", timeout=TIMEOUT_MS)
    page.locator("#embed-project").click()
    # 4 points, and one legend symbol per label (pets, money, weather): coloured by the label column.
    expect(page.locator("#embed-projection svg g.mark-symbol path")).to_have_count(7, timeout=TIMEOUT_MS)
    expect(page.locator("#embed-projection")).to_contain_text("weather")

    # The whole-file run: progress, then a table with an embedding column and a download.
    page.locator("#embed-file-box > button").click()
    page.locator("#embed-file input[type=file]").set_input_files(str(path))
    expect(page.locator("#embed-file-info")).to_contain_text("4 rows", timeout=TIMEOUT_MS)
    page.locator("#embed-file-run").click()
    expect(page.locator("#embed-file-status")).to_contain_text("Done: 4 of 4 rows", timeout=TIMEOUT_MS)
    expect(page.locator("#embed-results")).to_contain_text("embedding")
    expect(page.locator("#embed-download")).to_be_visible()
