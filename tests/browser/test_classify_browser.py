"""Classify tab in a real browser: one text in each mode (labels + bar chart), and a whole file: a bad upload
explained inline, a progress bar, Cancel keeping the rows done, then a full run and its CSV download."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from playwright.sync_api import Page, expect

from tests.browser.helpers import TIMEOUT_MS, open_app, open_tab, screenshot, set_number, textbox

LOAD_TIMEOUT_MS = 90_000  # the first request loads the model (torch import included) in the app process


def choose_mode(page: Page, name: str) -> None:
    radio = page.locator("#classify-mode").get_by_role("radio", name=name)
    radio.check()
    expect(radio).to_be_checked()


def classify_text(page: Page, text: str) -> None:
    textbox(page, "classify-text").fill(text)
    page.locator("#classify-run").click()


def test_classify_one_text_in_each_mode(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    open_tab(page, "Classify")

    # Supervised: the model's own labels, ranked, with a bar per label.
    classify_text(page, "I loved this film. The acting was wonderful.")
    notice = page.locator("#classify-notice")
    expect(notice).to_contain_text("tiny-classifier", timeout=LOAD_TIMEOUT_MS)
    ranked = page.locator("#classify-label")
    expect(ranked).to_contain_text("positive")
    expect(ranked).to_contain_text("negative")
    expect(ranked).to_contain_text("%")
    bars = page.locator("#classify-chart svg g.mark-rect path")
    expect(bars).to_have_count(2)
    screenshot(page, "classify")

    # Zero-shot: exactly the labels typed, scored by the NLI model.
    choose_mode(page, "Zero-shot")
    expect(page.locator("#classify-hypothesis")).to_be_visible()
    textbox(page, "classify-labels").fill("sports, politics, science")
    page.locator("#classify-run").click()
    expect(notice).to_contain_text("tiny-nli", timeout=LOAD_TIMEOUT_MS)
    for label in ("sports", "politics", "science"):
        expect(ranked).to_contain_text(label)
    expect(ranked).not_to_contain_text("positive")
    expect(bars).to_have_count(3)

    # LLM as classifier: the chat model scores the same labels after the prompt template.
    choose_mode(page, "LLM as classifier")
    expect(page.locator("#classify-prompt-template")).to_be_visible()
    expect(page.locator("#classify-hypothesis")).to_be_hidden()
    page.locator("#classify-run").click()
    expect(notice).to_contain_text("tiny-chat", timeout=LOAD_TIMEOUT_MS)
    for label in ("sports", "politics", "science"):
        expect(ranked).to_contain_text(label)

    # A missing input is refused with the field named.
    textbox(page, "classify-labels").fill("")
    page.locator("#classify-run").click()
    expect(page.locator(".toast-body").first).to_contain_text("labels", timeout=TIMEOUT_MS)


def write_reviews(path: Path, rows: int) -> Path:
    samples = ["I loved this film.", "Terrible service, cold food.", "The phone has a great camera."]
    frame = pd.DataFrame({"id": range(rows), "review": [f"{samples[i % 3]} ({i})" for i in range(rows)]})
    frame.to_csv(path, index=False)
    return path


def upload(page: Page, path: Path) -> None:
    clear = page.locator("#classify-file button[aria-label=Clear]").first
    if clear.is_visible():
        clear.click()
    page.locator("#classify-file input[type=file]").set_input_files(str(path))


def test_classify_a_file_cancel_then_download(page: Page, app_url: str, tmp_path: Path) -> None:
    open_app(page, app_url)
    open_tab(page, "Classify")
    open_tab(page, "Whole file")
    info = page.locator("#classify-file-info")
    status = page.locator("#classify-file-status")

    # A file in the wrong encoding is explained where the user looks.
    utf16 = tmp_path / "excel.csv"
    utf16.write_bytes("review\nhello\n".encode("utf-16"))
    upload(page, utf16)
    expect(info).to_contain_text("UTF-16", timeout=TIMEOUT_MS)
    expect(info).to_contain_text("UTF-8")

    # A long run, one text per batch: the progress bar moves, Cancel keeps what was done.
    upload(page, write_reviews(tmp_path / "long.csv", 3000))
    expect(info).to_contain_text("3,000 rows", timeout=TIMEOUT_MS)
    expect(page.locator("#classify-column input[role=combobox]")).to_have_value("review")
    set_number(page, "classify-batch-size", 1)
    page.locator("#classify-file-run").click()
    progress = page.locator("#classify-file-status [role=progressbar]")
    # aria-valuetext reads "12 / 3,000 texts: 0.4%" once the first batch is in.
    expect(progress).to_have_attribute("aria-valuetext", re.compile(r"^[1-9][\d,]* / 3,000 texts"),
                                       timeout=LOAD_TIMEOUT_MS)
    page.locator("#classify-file-cancel").click()
    expect(status).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    expect(status).to_contain_text("of 3,000 texts classified")

    # A complete run of a smaller file, then its CSV.
    upload(page, write_reviews(tmp_path / "reviews.csv", 120))
    expect(info).to_contain_text("120 rows", timeout=TIMEOUT_MS)
    set_number(page, "classify-batch-size", 32)
    page.locator("#classify-file-run").click()
    expect(status).to_contain_text("Done: 120 of 120 texts classified", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#classify-results")).to_contain_text("predicted_label")
    screenshot(page, "classify-file")
    with page.expect_download() as download_info:
        page.locator("#classify-download").click()
    download = download_info.value
    assert download.suggested_filename == "reviews-classified.csv"
    saved = tmp_path / "downloaded.csv"
    download.save_as(saved)
    table = pd.read_csv(saved)
    assert len(table) == 120
    assert list(table.columns)[:4] == ["id", "review", "predicted_label", "predicted_score"]
    assert set(table["predicted_label"]) <= {"negative", "positive"}

