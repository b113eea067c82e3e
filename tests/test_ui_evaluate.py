"""The Evaluate tab's handlers on real files and the tiny real models: mapping, runs, result views, filtering,
downloads, cancel, saved runs, comparisons, clear errors; and the same numbers as `python app.py eval`.

The tab is built inside a Blocks of its own (as build_app does), and its event handlers are called the way Gradio
calls them: found by name among the Blocks' functions, given the values of their input components.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import gradio as gr
import pandas as pd
import pytest

from backend.evaluation import store
from tests.conftest import ROOT, free_port
from ui.evaluate import ALL_MODELS, EvalForm, build_evaluate_tab, format_number

SENTIMENT = [
    ("I loved this film. The acting was wonderful.", "positive"),
    ("Terrible service. The food was cold.", "negative"),
    ("This product is great, I would buy it again!", "positive"),
    ("Worst purchase ever; it broke after two days.", "negative"),
    ("The new phone has a great camera.", "positive"),
    ("The waiter was rude.", "negative"),
]
QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Say hello.", "Hello!"),
    ("Count to three.", "1 2 3"),
    ("Name an animal that barks.", "The dog."),
    ("What colour is the sky?", "The sky is blue."),
    ("Write a haiku about the sea.", "Waves fold into foam."),
]
ELEM_IDS = ["tab-evaluate", "eval-file", "eval-preview", "eval-input-col", "eval-reference-col",
            "eval-predictions-col", "eval-task", "eval-models", "eval-run", "eval-cancel", "eval-progress",
            "eval-leaderboard", "eval-chart", "eval-examples", "eval-download-csv", "eval-download-json", "eval-runs"]
REQUEST = SimpleNamespace(session_hash="test-session", username=None)


class Tab:
    """The Evaluate tab in its own Blocks; handlers by name, components by elem_id."""

    def __init__(self, registry: Any, runs_dir: Path) -> None:
        with gr.Blocks() as demo:
            with gr.Tabs():
                with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                    self.ctl = build_evaluate_tab(registry, runs_dir=runs_dir)
        self.demo = demo
        self.fns = {}
        for fn in demo.fns.values():
            self.fns.setdefault(fn.name, fn)
        self.by_id = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}

    def __getitem__(self, elem_id: str) -> Any:
        return self.by_id[elem_id]

    def call(self, name: str, *args: Any) -> Any:
        return self.fns[name].fn(*args)

    def value(self, updates: dict, elem_id: str) -> Any:
        """The value an update dict gives a component (an update object's .value, or the plain value)."""
        update = updates[self[elem_id]]
        return update.value if isinstance(update, gr.components.Component) else update

    def file(self, updates: dict, elem_id: str) -> Path:
        """The file a DownloadButton update offers (Gradio has copied it into its cache, keeping the name)."""
        value = self.value(updates, elem_id)
        assert Path(value["path"]).name == value["orig_name"]
        return Path(value["path"])

    def upload(self, path: Path, task: str) -> dict:
        return self.call("on_upload", str(path), task)

    def run(self, source: dict, form: dict[str, Any]) -> list[dict]:
        """Runs the Run button's handler to the end; returns every update it yielded."""
        return list(self.run_stream(source, form))

    def run_stream(self, source: dict, form: dict[str, Any]) -> Iterator[dict]:
        fn = self.fns["on_run"]
        state = next(block for block in fn.inputs if isinstance(block, gr.State))
        defaults = {"eval-task": "generation", "eval-input-col": None, "eval-reference-col": None,
                    "eval-predictions-col": None, "eval-score-file": False, "eval-models": [],
                    "eval-prompt": "{input}", "eval-max-new-tokens": 8, "eval-batch-size": 4, "eval-limit": 0,
                    "eval-seed": -1, "eval-bootstrap": 100, "eval-rouge-stemmer": False,
                    "eval-passage-col": None, "eval-source-lang": None, "eval-target-lang": None,
                    "eval-conversation-col": None, "eval-judge": None, "eval-judge-rubric": None,
                    "eval-with-base": False}
        values = {**defaults, **form}
        data = {state: source, **{self[elem_id]: value for elem_id, value in values.items()}}
        yield from fn.fn(data, REQUEST)


@pytest.fixture
def tab(shared_registry, tmp_path: Path) -> Tab:
    return Tab(shared_registry, tmp_path / "runs")


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    frame = pd.DataFrame({"text": [t for t, _ in SENTIMENT] * 2, "label": [label for _, label in SENTIMENT] * 2,
                          "pred": ["positive"] * 12})
    return write_csv(tmp_path / "reviews.csv", frame)


@pytest.fixture
def qa_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "qa.csv", pd.DataFrame({"question": [q for q, _ in QA], "answer": [a for _, a in QA]}))


def final(updates: list[dict]) -> dict:
    return updates[-1]


# ------------------------------------------------------------------------------------------ data and mapping


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_upload_previews_and_maps_columns(tab: Tab, tmp_path: Path, kind: str) -> None:
    frame = pd.DataFrame({"id": range(12), "text": [t for t, _ in SENTIMENT] * 2,
                          "label": [label for _, label in SENTIMENT] * 2, "prediction": ["positive"] * 12})
    path = tmp_path / f"reviews.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    updates = tab.upload(path, "classification")
    assert tab.value(updates, "eval-data-info").startswith(f"reviews.{kind}: 12 rows")
    preview = tab.value(updates, "eval-preview")
    assert list(preview.columns) == ["id", "text", "label", "prediction"] and len(preview) == 8
    assert tab.value(updates, "eval-input-col") == "text"
    assert tab.value(updates, "eval-reference-col") == "label"
    assert tab.value(updates, "eval-predictions-col") == "prediction"
    choices = [value for _, value in updates[tab["eval-reference-col"]].choices]
    assert choices == ["", "id", "text", "label", "prediction"]  # "" = (none)
    assert next(value for value in updates.values() if isinstance(value, dict))["path"] == str(path)


def test_task_picks_models_widgets_and_the_likely_reference(tab: Tab, qa_csv: Path) -> None:
    source = {"path": str(qa_csv)}
    generation = tab.call("on_task", "generation", False, [], "", source)
    assert [value for _, value in generation[tab["eval-models"]].choices] == ["tiny-chat"]
    assert generation[tab["eval-models"]].value == ["tiny-chat"]
    assert tab.value(generation, "eval-prompt") == "{input}" and generation[tab["eval-max-new-tokens"]].visible
    assert tab.value(generation, "eval-reference-col") == "answer"
    classification = tab.call("on_task", "classification", False, ["tiny-chat"], "{input}", source)
    assert [value for _, value in classification[tab["eval-models"]].choices] == ["tiny-chat", "tiny-classifier",
                                                                                    "tiny-nli"]
    # Issue 20: a chat model picked for generation is not carried over to classification (where it would score
    # labels); the classifier is chosen instead. Toggling "score the file" keeps a deliberate choice.
    assert classification[tab["eval-models"]].value == ["tiny-classifier"]
    deliberate = tab.call("on_score_file", "classification", False, ["tiny-chat"], "", source)
    assert deliberate[tab["eval-models"]].value == ["tiny-chat"]
    assert tab.value(classification, "eval-prompt") == ""  # blank: the label scorer's own default
    perplexity = tab.call("on_task", "perplexity", True, [], "", None)
    assert not perplexity[tab["eval-reference-col"]].visible and not perplexity[tab["eval-score-file"]].visible
    scoring = tab.call("on_task", "classification", True, [], "", None)
    assert not scoring[tab["eval-models"]].visible and scoring[tab["eval-predictions-col"]].visible


# ------------------------------------------------------------------------------------------------- errors


def test_errors_are_clear_and_escaped(tab: Tab, tmp_path: Path, reviews: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(gr.Error, match="'empty.csv' is empty"):
        tab.upload(empty, "classification")
    with pytest.raises(gr.Error, match="There is no column 'review'; the columns are 'text', 'label', 'pred'"):
        tab.run({"path": str(reviews)}, {"eval-task": "classification", "eval-input-col": "review",
                                         "eval-reference-col": "label", "eval-models": ["tiny-classifier"]})
    with pytest.raises(gr.Error, match="Upload a CSV, JSONL or Parquet file"):
        tab.run({}, {"eval-models": ["tiny-chat"]})
    odd = write_csv(tmp_path / "odd.csv", pd.DataFrame({"text": ["fine", "bad", "meh"],
                                                        "label": ["<b>neutral</b>", "negative", "positive"]}))
    with pytest.raises(gr.Error) as error:
        tab.run({"path": str(odd)}, {"eval-task": "classification", "eval-input-col": "text",
                                     "eval-reference-col": "label", "eval-models": ["tiny-classifier"]})
    message = error.value.message
    assert "does not know" in message and "&lt;b&gt;neutral&lt;/b&gt;" in message and "<b>" not in message


def test_hub_dataset_offline_fails_fast_with_the_backends_message(tab: Tab, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(gr.Error, match="The Hub dataset 'someone/reviews' cannot be reached offline"):
        tab.call("on_hub", "someone/reviews", "", "validation", "classification")
    assert time.monotonic() - started < 30
    with pytest.raises(gr.Error, match="Type a Hub dataset id"):
        tab.call("on_hub", "  ", "", "test", "classification")


# ----------------------------------------------------------------------------------------------- running


def test_two_models_fill_every_result_view(tab: Tab, reviews: Path) -> None:
    updates = tab.run({"path": str(reviews)}, {"eval-task": "classification", "eval-input-col": "text",
                                                "eval-reference-col": "label",
                                                "eval-models": ["tiny-classifier", "tiny-chat"]})
    assert "Starting" in tab.value(updates[0], "eval-progress") and not updates[0][tab["eval-results"]].visible
    assert any("examples ·" in tab.value(u, "eval-progress") for u in updates[1:-1])  # counts and time while running
    last = final(updates)
    assert 'aria-valuetext="Done: 24 of 24 examples' in tab.value(last, "eval-progress")
    assert last[tab["eval-results"]].visible
    run = store.open_run(tab.ctl.past_runs()[0].path)
    assert f"Saved in {run.path}" in tab.value(last, "eval-run-info")
    board = tab.value(last, "eval-leaderboard")
    assert sorted(board["model"]) == ["tiny-chat", "tiny-classifier"]
    for row in board.to_dict("records"):
        result = run.models[row["model"]]
        low, high = result.intervals["accuracy"]
        assert row["accuracy"] == f"{format_number(result.metrics['accuracy'])} [{format_number(low)}, " \
                                  f"{format_number(high)}]"
        assert row["status"] == "complete" and row["n"] == 12
    assert {"f1_macro", "precision_macro"} <= set(board.columns) and "precision_micro" not in board.columns
    every = tab.call("on_all_metrics", str(run.path), True)
    assert "precision_micro" in every.columns
    chart = last[tab["eval-chart"]]
    assert sorted(chart.value["data"] and [row[0] for row in chart.value["data"]]) == ["tiny-chat", "tiny-classifier"]
    assert last[tab["eval-report"]].visible
    per_class = tab.value(last, "eval-per-class")
    assert list(per_class["label"]) == ["negative", "positive"] and per_class["support"].sum() == 12
    assert "Confusion matrix of <b>tiny-" in tab.value(last, "eval-confusion")
    other = [model for model in run.models if model != tab.value(last, "eval-report-model")][0]
    table, heat = tab.call("on_report_model", str(run.path), other)
    assert table["support"].sum() == 12 and f"<b>{other}</b>" in heat
    examples = tab.value(last, "eval-examples")
    assert len(examples) == 24 and list(examples.columns[:5]) == ["model", "row", "input", "reference", "prediction"]
    assert {"correct", "confidence"} <= set(examples.columns)
    assert list(tab.value(last, "eval-runs")["run"]) == [run.run_id]
    assert [value for _, value in last[tab["eval-open-run"]].choices] == [run.run_id]


def test_filter_and_downloads(tab: Tab, reviews: Path) -> None:
    last = final(tab.run({"path": str(reviews)}, {"eval-task": "classification", "eval-input-col": "text",
                                                   "eval-reference-col": "label",
                                                   "eval-models": ["tiny-classifier", "tiny-chat"]}))
    folder = tab.ctl.past_runs()[0].path
    everything = pd.read_csv(tab.file(last, "eval-download-csv"))
    assert len(everything) == 24 and set(everything["model"]) == {"tiny-classifier", "tiny-chat"}
    filtered = tab.call("on_filter", str(folder), "LOVED", "tiny-chat")
    shown = tab.value(filtered, "eval-examples")
    assert list(shown["input"]) == [SENTIMENT[0][0]] * 2 and set(shown["model"]) == {"tiny-chat"}
    assert tab.value(filtered, "eval-examples-info") == "2 of 12 rows match"
    csv_path = tab.file(filtered, "eval-download-csv")
    json_path = tab.file(filtered, "eval-download-json")
    assert csv_path.name.endswith(".csv") and "tiny-chat" in csv_path.name
    downloaded = pd.read_csv(csv_path)
    assert list(downloaded["input"]) == list(shown["input"]) and list(downloaded["row"]) == [0, 6]
    records = json.loads(json_path.read_text(encoding="utf-8"))
    assert [record["prediction"] for record in records] == list(shown["prediction"])
    assert set(records[0]) >= {"model", "row", "input", "reference", "prediction", "correct", "confidence"}
    none = tab.call("on_filter", str(folder), "no such text", ALL_MODELS)
    assert len(tab.value(none, "eval-examples")) == 0 and tab.value(none, "eval-examples-info") == "0 of 24 rows match"


def test_scoring_the_files_own_predictions_needs_no_model(tab: Tab, reviews: Path) -> None:
    last = final(tab.run({"path": str(reviews)}, {"eval-task": "classification", "eval-input-col": "text",
                                                   "eval-reference-col": "label", "eval-score-file": True,
                                                   "eval-predictions-col": "pred", "eval-models": ["tiny-chat"]}))
    board = tab.value(last, "eval-leaderboard")
    assert list(board["model"]) == ["predictions"] and board["accuracy"][0].startswith("0.5 [")
    with pytest.raises(gr.Error, match="Pick the column that holds the predictions"):
        tab.run({"path": str(reviews)}, {"eval-task": "classification", "eval-score-file": True,
                                         "eval-reference-col": "label"})


def test_cancel_keeps_what_was_done(tab: Tab, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "long.csv", pd.DataFrame({"prompt": [f"Count to {i}:" for i in range(60)],
                                                          "reference": ["1 2 3"] * 60}))
    stream = tab.run_stream({"path": str(path)}, {"eval-task": "generation", "eval-input-col": "prompt",
                                                  "eval-reference-col": "reference", "eval-models": ["tiny-chat"],
                                                  "eval-batch-size": 1, "eval-max-new-tokens": 32})
    updates, cancelled = [], False
    for update in stream:
        updates.append(update)
        bar = str(update.get(tab["eval-progress"], ""))
        if not cancelled and re.search(r'aria-valuetext="[1-9]\d* / 60 examples', bar):
            tab.call("on_cancel", REQUEST)  # once some examples are done
            cancelled = True
    last = final(updates)
    assert "Cancelled:" in tab.value(last, "eval-progress")
    board = tab.value(last, "eval-leaderboard")
    assert board["status"][0] == "cancelled" and 1 <= board["n"][0] < 60
    examples = tab.value(last, "eval-examples")
    assert examples["prediction"].notna().sum() == board["n"][0]
    assert tab.ctl.past_runs()[0].cancelled
    assert tab.call("on_cancel", REQUEST) is None and not tab.ctl.cancel(REQUEST.session_hash)  # nothing running


def test_reopen_and_compare_saved_runs(tab: Tab, reviews: Path) -> None:
    form = {"eval-task": "classification", "eval-input-col": "text", "eval-reference-col": "label",
            "eval-models": ["tiny-classifier"]}
    first = final(tab.run({"path": str(reviews)}, form))
    [oldest] = [summary.run_id for summary in tab.ctl.past_runs()]
    second = final(tab.run({"path": str(reviews)}, {**form, "eval-models": ["tiny-classifier", "tiny-chat"],
                                                     "eval-limit": 4, "eval-seed": 1}))
    [newest] = [summary.run_id for summary in tab.ctl.past_runs() if summary.run_id != oldest]
    reopened = tab.call("on_open", oldest, REQUEST)
    assert tab.value(reopened, "eval-leaderboard").equals(tab.value(first, "eval-leaderboard"))
    assert tab.value(reopened, "eval-examples").equals(tab.value(first, "eval-examples"))
    assert tab.value(reopened, "eval-progress") == "" and reopened[tab["eval-results"]].visible
    summary, row, left, right = tab.call("on_compare", oldest, newest, REQUEST)
    assert row.visible and list(left.value["headers"])[:3] == ["model", "status", "n"]
    assert [r[0] for r in left.value["data"]] == ["tiny-classifier"] and len(right.value["data"]) == 2
    assert summary.startswith("tiny-classifier: accuracy ") and "→" in summary
    assert len(tab.value(second, "eval-examples")) == 8  # the sample of 4, for two models
    with pytest.raises(gr.Error, match="no saved run '../etc'"):
        tab.call("on_open", "../etc", REQUEST)
    with pytest.raises(gr.Error, match="Pick two saved runs"):
        tab.call("on_compare", oldest, None, REQUEST)


# ---------------------------------------------------------------------------------- same numbers as the CLI


@pytest.mark.full
def test_the_tab_and_the_command_line_give_the_same_numbers(tab: Tab, tiny_models_yaml: Path, qa_csv: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "cli-out"
    command = [sys.executable, "app.py", "eval", "--models", str(tiny_models_yaml), "--model", "tiny-chat",
               "--data", str(qa_csv), "--task", "generation", "--input-column", "question", "--reference-column",
               "answer", "--prompt-template", "Q: {input} A:", "--max-new-tokens", "8", "--batch-size", "2",
               "--limit", "5", "--seed", "3", "--bootstrap", "200", "--out", str(out), "--quiet"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    cli = json.loads((out / store.RESULTS_FILE).read_text(encoding="utf-8"))["models"]["tiny-chat"]

    updates = tab.upload(qa_csv, "generation")
    assert tab.value(updates, "eval-input-col") == "question" and tab.value(updates, "eval-reference-col") == "answer"
    last = final(tab.run({"path": str(qa_csv)}, {
        "eval-task": "generation", "eval-input-col": "question", "eval-reference-col": "answer",
        "eval-models": ["tiny-chat"], "eval-prompt": "Q: {input} A:", "eval-max-new-tokens": 8,
        "eval-batch-size": 2, "eval-limit": 5, "eval-seed": 3, "eval-bootstrap": 200}))
    saved = json.loads((tab.ctl.past_runs()[0].path / store.RESULTS_FILE).read_text(encoding="utf-8"))
    tab_model = saved["models"]["tiny-chat"]
    assert tab_model["metrics"] == cli["metrics"] and tab_model["intervals"] == cli["intervals"]
    assert tab_model["predictions"] == cli["predictions"]
    row = tab.value(last, "eval-leaderboard").iloc[0]
    for name in ("bleu", "chrf", "rouge1", "rougeL", "exact_match"):
        low, high = cli["intervals"][name]
        assert row[name] == f"{format_number(cli['metrics'][name])} [{format_number(low)}, {format_number(high)}]"
    shown = tab.value(last, "eval-examples")
    assert list(shown["prediction"]) == cli["predictions"]
    chart = last[tab["eval-chart"]].value["data"]
    assert chart == [["tiny-chat", cli["metrics"]["bleu"]]]


def test_perplexity_run(tab: Tab, qa_csv: Path) -> None:
    last = final(tab.run({"path": str(qa_csv)}, {"eval-task": "perplexity", "eval-input-col": "answer",
                                                  "eval-reference-col": "question", "eval-models": ["tiny-chat"]}))
    board = tab.value(last, "eval-leaderboard")
    assert list(board.columns[3:6]) == ["perplexity", "mean_perplexity", "nll_per_token"]
    assert float(board["perplexity"][0].split()[0]) > 1
    assert not last[tab["eval-report"]].visible


def test_form_values_become_the_config_the_command_line_would_build() -> None:
    from backend.evaluation.data import DataSource

    config = EvalForm(task="generation", input_column="q", reference_column="a", models=("m",),
                      prompt_template="Q: {input}", limit=5, seed=3, bootstrap=0).config(DataSource(path="x.csv"))
    assert config.prompt_template == "Q: {input}" and config.limit == 5 and config.seed == 3
    scoring = EvalForm(task="classification", reference_column="a", predictions_column="p", score_file=True,
                       models=("ignored",)).config(DataSource(path="x.csv"))
    assert scoring.models == () and scoring.columns.predictions == "p" and scoring.prompt_template is None
    plain = EvalForm(task="classification", input_column="t", reference_column="a", predictions_column="p",
                     models=("m",), prompt_template="").config(DataSource(path="x.csv"))
    assert plain.columns.predictions is None and plain.prompt_template is None


# ------------------------------------------------------------------------------------------- served app


@pytest.mark.full
def test_the_tab_serves_with_its_elem_ids_and_keeps_torch_out(shared_registry, tmp_path: Path) -> None:
    tab = Tab(shared_registry, tmp_path / "runs")
    port = free_port()
    tab.demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as response:
            config = json.loads(response.read())
    finally:
        tab.demo.close()
    served = {component.get("props", {}).get("elem_id") for component in config["components"]}
    assert set(ELEM_IDS) <= served
    # Every event of the tab stays off the public API.
    assert all(dependency.get("api_visibility", "private") != "public" for dependency in config["dependencies"])
    check = subprocess.run([sys.executable, "-c", "import sys, ui.evaluate; print(sorted(m for m in "
                            "('torch', 'transformers', 'evaluate', 'datasets') if m in sys.modules))"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[]"
