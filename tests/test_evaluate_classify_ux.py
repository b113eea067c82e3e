"""Issue 20's Evaluate / Classify defects: each test fails on the code before the fix."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from backend.evaluation import store
from tests.test_ui_evaluate import REQUEST, SENTIMENT, Tab, final
from ui.i18n.error_words import worded


@pytest.fixture
def tab(shared_registry, tmp_path: Path) -> Tab:
    return Tab(shared_registry, tmp_path / "runs")


@pytest.fixture
def sentiment_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tweets.csv"
    pd.DataFrame({"id": [str(i) for i in range(12)], "tweet": [t for t, _ in SENTIMENT] * 2,
                  "sentiment": [label for _, label in SENTIMENT] * 2}).to_csv(path, index=False)
    return path


def test_a_sentiment_column_is_guessed_as_the_label(tab: Tab, sentiment_csv: Path) -> None:
    updates = tab.upload(sentiment_csv, "classification")
    assert tab.value(updates, "eval-reference-col") == "sentiment"
    assert tab.value(updates, "eval-input-col") == "tweet"


def test_input_and_label_may_not_be_the_same_column(tab: Tab, sentiment_csv: Path) -> None:
    with pytest.raises(gr.Error, match="The input column and the reference column are both 'tweet'; pick a "
                                       "different column for each"):
        tab.run({"path": str(sentiment_csv)}, {"eval-task": "classification", "eval-input-col": "tweet",
                                               "eval-reference-col": "tweet", "eval-models": ["tiny-classifier"]})


def test_opening_a_saved_run_puts_its_data_and_settings_in_the_form(tab: Tab, sentiment_csv: Path) -> None:
    final(tab.run({"path": str(sentiment_csv)}, {
        "eval-task": "classification", "eval-input-col": "tweet", "eval-reference-col": "sentiment",
        "eval-models": ["tiny-classifier"], "eval-limit": 4, "eval-seed": 1, "eval-bootstrap": 50,
        "eval-batch-size": 3}))
    [run_id] = [summary.run_id for summary in tab.ctl.past_runs()]
    opened = tab.call("on_open", run_id, REQUEST)
    assert tab.value(opened, "eval-task") == "classification"
    assert tab.value(opened, "eval-input-col") == "tweet" and tab.value(opened, "eval-reference-col") == "sentiment"
    assert tab.value(opened, "eval-models") == ["tiny-classifier"]
    assert (tab.value(opened, "eval-limit"), tab.value(opened, "eval-seed"), tab.value(opened, "eval-bootstrap"),
            tab.value(opened, "eval-batch-size")) == (4, 1, 50, 3)
    assert not opened[tab["eval-max-new-tokens"]].visible and not opened[tab["eval-rouge-stemmer"]].visible
    state = next(value for value in opened.values() if isinstance(value, dict) and "path" in value)
    assert state["path"] == str(sentiment_csv)  # Run repeats the run on its own data
    assert tab.value(opened, "eval-data-info").startswith("tweets.csv: 12 rows")
    sentiment_csv.unlink()  # a run whose upload is gone: the form says so instead of keeping other data
    again = tab.call("on_open", run_id, REQUEST)
    assert "no longer on the server" in tab.value(again, "eval-data-info")
    assert tab.value(again, "eval-input-col") == "tweet"


def test_errors_are_plain_words_in_the_ui_and_field_names_in_the_cli() -> None:
    from backend.evaluation.data import ColumnMapping, DataSource, select_examples
    from backend.evaluation.types import EvalConfig
    from backend.core.types import InvalidInputError

    with pytest.raises(InvalidInputError) as missing:
        select_examples(pd.DataFrame({"a": ["x"]}), "classification", ColumnMapping(input="a"))
    assert str(missing.value) == "reference column: classification needs one (--reference-column); the columns are 'a'"
    assert worded(missing.value) == "Pick the label column: classification needs one. The columns are 'a'."
    with pytest.raises(InvalidInputError) as no_models:
        EvalConfig(task="classification", data=DataSource(path="x.csv"), columns=ColumnMapping(input="a")).validated()
    assert str(no_models.value) == ("models: pick at least one model (--model ID), or give the column that already "
                                    "holds predictions (--predictions-column)")
    assert worded(no_models.value) == "Pick at least one model, or give the column that already holds predictions."


def test_the_tab_says_which_column_is_missing_in_plain_words(tab: Tab, sentiment_csv: Path) -> None:
    with pytest.raises(gr.Error) as error:
        tab.run({"path": str(sentiment_csv)}, {"eval-task": "classification", "eval-input-col": "tweet",
                                               "eval-models": ["tiny-classifier"]})
    assert error.value.message.startswith("Pick the label column: classification needs one.")
    assert "--" not in error.value.message


def test_rouge_stemming_is_a_visible_option_recorded_with_the_run(tab: Tab, tmp_path: Path) -> None:
    path = tmp_path / "summaries.csv"
    pd.DataFrame({"source": ["a", "b"], "reference": ["the runner runs", "cats sleep"],
                  "prediction": ["running runners", "the cat sleeps"]}).to_csv(path, index=False)
    form = {"eval-task": "generation", "eval-input-col": "source", "eval-reference-col": "reference",
            "eval-score-file": True, "eval-predictions-col": "prediction", "eval-bootstrap": 0}
    plain = final(tab.run({"path": str(path)}, form))
    stemmed = final(tab.run({"path": str(path)}, {**form, "eval-rouge-stemmer": True}))
    assert "ROUGE without stemming" in tab.value(plain, "eval-run-info")
    assert "ROUGE with Porter stemming" in tab.value(stemmed, "eval-run-info")
    saved = {summary.run_id: json.loads((summary.path / store.RESULTS_FILE).read_text())
             for summary in tab.ctl.past_runs()}
    assert sorted(data["config"]["rouge_stemmer"] for data in saved.values()) == [False, True]
    scores = sorted(data["models"]["predictions"]["metrics"]["rouge1"] for data in saved.values())
    assert scores[0] < scores[1]  # stemming matches "runners" / "runs"


# ---------------------------------------------------------------------------------------------- Classify


class ClassifyTab:
    def __init__(self, registry: Any) -> None:
        from ui.classify.tab import build_classify_tab

        with gr.Blocks() as demo:
            with gr.Tabs():
                build_classify_tab(registry)
        self.fns = {fn.name: fn for fn in demo.fns.values()}
        self.by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}

    def inspect(self, path: Path) -> tuple:
        return self.fns["inspect_file"].fn(str(path))

    def classify_file(self, path: Path, column: str) -> Any:
        fn = self.fns["classify_file"]
        values = {"classify-mode": "supervised", "classify-model": "tiny-classifier", "classify-labels": "",
                  "classify-multi-label": False, "classify-hypothesis": "This is {}.",
                  "classify-prompt-template": "{text}", "classify-batch-size": 4, "classify-file": str(path),
                  "classify-column": column}
        data = {self.by_id[key]: value for key, value in values.items()}
        return fn.fn(data, SimpleNamespace(session_hash="s", username=None), progress=lambda *a, **k: None)


def test_classify_file_is_disabled_after_an_invalid_upload_and_refuses_numbers(shared_registry,
                                                                              tmp_path: Path) -> None:
    tab = ClassifyTab(shared_registry)
    binary = tmp_path / "sheet.csv"
    binary.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    info, _, button = tab.inspect(binary)
    assert "is named .csv but is a ZIP archive" in info and button.interactive is False
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("id,score\n1,0.5\n2,0.25\n")
    info, column, button = tab.inspect(numbers)
    assert "has no text column" in info and button.interactive is False and column.value is None
    good = tmp_path / "good.csv"
    good.write_text("id,review\n1,great film\n2,awful food\n")
    info, column, button = tab.inspect(good)
    assert info.startswith("good.csv: 2 rows") and column.value == "review" and button.interactive is True
    with pytest.raises(gr.Error, match="'id' holds numbers, not text; pick the column with the text"):
        tab.classify_file(good, "id")
