"""The Evaluate tab's pipeline tasks in a real browser (issue 30), on the session's shared app: a NER run and a
question-answering run started from the tab, whose saved figures (metrics, 95% intervals, predictions,
per-example scores), leaderboard cells and downloaded per-example table equal what `python app.py eval`'s
function (backend.evaluation.cli.main, run here in-process over the same models.yaml) gives on the same file.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd
from playwright.sync_api import Page, expect

from backend.evaluation import cli, store
from tests.browser.helpers import ROOT, TIMEOUT_MS, open_app, open_tab, screenshot
from ui.evaluate.views import format_number

RUN_TIMEOUT_MS = 120_000  # the first run loads the task model in the app process
NER_ROWS = [
    {"tokens": ["Anna", "lives", "in", "Paris", "."], "tags": ["B-PER", "O", "O", "B-LOC", "O"]},
    {"tokens": ["Dr.", "Smith", "met", "the", "team"], "tags": ["B-PER", "I-PER", "O", "O", "O"]},
    {"tokens": ["Prices", "rose", "in", "March"], "tags": ["O", "O", "O", "O"]},
    {"tokens": ["Acme", "Corp", "opened", "in", "Berlin"], "tags": ["B-ORG", "I-ORG", "O", "O", "B-LOC"]},
]
QA = pd.DataFrame({
    "question": ["Where is the meeting?", "When does it start?", "Who leads it?"],
    "context": ["The meeting is in room B-204.", "It starts at 10 a.m. on Tuesday.",
                "Maria Lopez leads the weekly meeting."],
    "answers": ['["room B-204", "B-204"]', "10 a.m.", "Maria Lopez"],
})


def command_line(models_yaml: Path, out: Path, *argv: str) -> dict:
    """`app.py eval ARGV` through the CLI's own parser and main, in this process; its results.json."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args(["--models", str(models_yaml), "--data", *argv, "--out", str(out),
                                       "--quiet"])) == 0
    return json.loads((out / store.RESULTS_FILE).read_text(encoding="utf-8"))


def run_in_tab(page: Page, app_url: str, data: Path, task: str, model: str, rows: int) -> tuple[dict, Path]:
    """Uploads `data`, picks `task` (its model is the only one offered, and chosen), runs; (results.json the app
    saved, the per-example table downloaded as CSV)."""
    open_app(page, app_url)
    open_tab(page, "Evaluate")
    page.locator("#eval-file input[type=file]").set_input_files(str(data))
    expect(page.locator("#eval-data-info")).to_contain_text(f"{data.name}: {rows} rows", timeout=TIMEOUT_MS)
    page.locator("#eval-task").get_by_role("radio", name=task).check()
    expect(page.locator("#eval-models .token")).to_have_count(1)
    expect(page.locator("#eval-models .token")).to_contain_text(model)
    page.locator("#eval-models input[role=combobox]").click()
    expect(page.get_by_role("option")).to_have_count(1)  # only the model that does the task is offered
    expect(page.get_by_role("option")).to_contain_text(model)
    page.locator("#eval-models input[role=combobox]").press("Escape")
    expect(page.locator("#eval-prompt")).to_be_hidden()
    expect(page.locator("#eval-task-hint")).to_be_visible()
    page.locator("#eval-run").click()
    progress = page.locator("#eval-progress [role=progressbar]")
    expect(progress).to_have_attribute("aria-valuetext", re.compile(rf"^Done: {rows} of {rows} examples"),
                                       timeout=RUN_TIMEOUT_MS)
    info = page.locator("#eval-run-info").inner_text()
    saved = re.search(r"Saved in (\S+)", info)
    assert saved, info
    folder = Path(saved.group(1))
    results = json.loads(((folder if folder.is_absolute() else ROOT / folder) / store.RESULTS_FILE).read_text(
        encoding="utf-8"))
    with page.expect_download() as download_info:
        page.locator("#eval-download-csv").click()
    table = data.with_name(f"{data.stem}-tab-examples.csv")
    download_info.value.save_as(table)
    return results, table


def assert_same_figures(page: Page, tab: dict, cli_run: dict, model: str, headline: str,
                        tab_table: Path, cli_folder: Path) -> None:
    ours, theirs = tab["models"][model], cli_run["models"][model]
    assert ours["status"] == theirs["status"] == "complete", ours["error"]
    for key in ("metrics", "intervals", "predictions", "example_scores"):
        assert ours[key] == theirs[key], key
    assert tab["config"] == {**cli_run["config"], "data": tab["config"]["data"]}  # the same run settings
    low, high = theirs["intervals"][headline]
    cell = f"{format_number(theirs['metrics'][headline])} [{format_number(low)}, {format_number(high)}]"
    expect(page.locator("#eval-leaderboard")).to_contain_text(cell)
    shown = pd.read_csv(tab_table)
    expected = pd.read_csv(cli_folder / store.PREDICTIONS_FILE)
    pd.testing.assert_frame_equal(shown, expected)


def test_ner_run_from_the_tab_equals_the_command_line(page: Page, app_url: str, browser_models_yaml: Path,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "ner.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in NER_ROWS), encoding="utf-8")
    tab, table = run_in_tab(page, app_url, data, "Named entities (NER)", "Tiny NER tagger", len(NER_ROWS))
    assert tab["config"]["columns"]["input"] == "tokens" and tab["config"]["columns"]["reference"] == "tags"
    out = tmp_path / "cli-ner"
    cli_run = command_line(browser_models_yaml, out, str(data), "--model", "tiny-ner", "--task", "ner",
                           "--input-column", "tokens", "--reference-column", "tags")
    assert_same_figures(page, tab, cli_run, "tiny-ner", "entity_f1", table, out)
    assert set(cli_run["models"]["tiny-ner"]["metrics"]) == {"entity_precision", "entity_recall", "entity_f1"}


def test_qa_run_from_the_tab_equals_the_command_line(page: Page, app_url: str, browser_models_yaml: Path,
                                                     tmp_path: Path) -> None:
    data = tmp_path / "qa.csv"
    QA.to_csv(data, index=False)
    tab, table = run_in_tab(page, app_url, data, "Question answering", "Tiny extractive QA", len(QA))
    # The question is the input and the passage the context, guessed from the column names.
    assert tab["config"]["columns"] == {"input": "question", "reference": "answers", "predictions": None,
                                        "context": "context", "conversation": None}
    expect(page.locator("#eval-passage-col input[role=combobox]")).to_have_value("context")
    page.locator("#eval-task").evaluate("element => element.scrollIntoView({block: 'start'})")
    screenshot(page, "evaluate-qa")
    out = tmp_path / "cli-qa"
    cli_run = command_line(browser_models_yaml, out, str(data), "--model", "tiny-qa", "--task",
                           "question_answering", "--input-column", "question", "--reference-column", "answers",
                           "--context-column", "context")
    assert_same_figures(page, tab, cli_run, "tiny-qa", "squad_f1", table, out)
    predictions = cli_run["models"]["tiny-qa"]["predictions"]
    assert all(answer in passage for answer, passage in zip(predictions, QA["context"]))
