"""The Evaluate tab's pipeline tasks (issue 30): NER, question answering, summarization and translation.

The form's values become exactly the `EvalConfig` that `python app.py eval` builds from the same choices (the
command line's own parser and `build_config`), the model picker lists only models that do the task, each task
maps its own columns, and a NER and a QA run through the tab's Run handler give the command line's figures,
intervals and predictions on the same file (both go through backend.evaluation.runner.run_evaluation).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from backend.evaluation import cli, store
from backend.evaluation.data import DataSource
from tests.test_ui_evaluate import REQUEST, Tab, final
from ui.evaluate import EvalForm
from ui.evaluate.task_forms import PIPELINE_TASKS, TaskMapping
from ui.i18n.core import text

NER_ROWS = [
    {"tokens": ["Anna", "lives", "in", "Paris", "."], "tags": ["B-PER", "O", "O", "B-LOC", "O"]},
    {"tokens": ["Dr.", "Smith", "met", "the", "team"], "tags": ["B-PER", "I-PER", "O", "O", "O"]},
    {"tokens": ["Prices", "rose", "in", "March"], "tags": ["O", "O", "O", "O"]},
    {"tokens": ["Acme", "Corp", "opened", "in", "Berlin"], "tags": ["B-ORG", "I-ORG", "O", "O", "B-LOC"]},
]
QA_ROWS = {
    "id": [1, 2, 3, 4],
    "question": ["Where is the meeting?", "When does it start?", "Who leads it?", "What is on the agenda?"],
    "context": ["The meeting is in room B-204.", "It starts at 10 a.m. on Tuesday.",
                "Maria Lopez leads the weekly meeting.", "The agenda covers the budget and hiring."],
    "answers": ['["room B-204", "B-204"]', "10 a.m.", "Maria Lopez", '{"text": ["the budget and hiring"]}'],
}


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser


def cli_config(*argv: str):
    return cli.build_config(cli_parser().parse_args(list(argv)))


@pytest.fixture
def tab(shared_registry, tmp_path: Path) -> Tab:
    return Tab(shared_registry, tmp_path / "runs")


@pytest.fixture
def ner_file(tmp_path: Path) -> Path:
    path = tmp_path / "ner.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in NER_ROWS), encoding="utf-8")
    return path


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "qa.csv"
    pd.DataFrame(QA_ROWS).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------- form → backend, no model


def test_each_pipeline_form_builds_the_config_the_command_line_builds() -> None:
    source = DataSource(path="data.csv")
    common = ("--data", "data.csv", "--model", "m", "--batch-size", "4", "--limit", "3", "--seed", "7",
              "--bootstrap", "200")
    shared = dict(models=("m",), batch_size=4, limit=3, seed=7, bootstrap=200, prompt_template="{input}")
    cases = [
        (EvalForm(task="ner", input_column="tokens", reference_column="tags", **shared), TaskMapping(),
         ("--task", "ner", "--input-column", "tokens", "--reference-column", "tags")),
        (EvalForm(task="question_answering", input_column="question", reference_column="answers", **shared),
         TaskMapping(context_column="context", source_language="en"),  # a language means nothing to QA
         ("--task", "question_answering", "--input-column", "question", "--reference-column", "answers",
          "--context-column", "context")),
        (EvalForm(task="summarization", input_column="document", reference_column="summary", max_new_tokens=12,
                  rouge_stemmer=True, **shared), TaskMapping(context_column="ignored"),
         ("--task", "summarize", "--input-column", "document", "--reference-column", "summary",
          "--max-new-tokens", "12", "--rouge-stemmer")),
        (EvalForm(task="translation", input_column="en", reference_column="de", max_new_tokens=9,
                  rouge_stemmer=True, **shared), TaskMapping(source_language=" en ", target_language="de"),
         ("--task", "translation", "--input-column", "en", "--reference-column", "de", "--max-new-tokens", "9",
          "--source-language", "en", "--target-language", "de")),
    ]
    for form, mapping, argv in cases:
        assert mapping.apply(form.config(source)) == cli_config(*common, *argv), form.task
    # Scoring a file's predictions: no model, no input needed, as with --predictions-column.
    scoring = EvalForm(task="ner", reference_column="tags", predictions_column="pred", score_file=True)
    assert TaskMapping().apply(scoring.config(source)) == cli_config(
        "--data", "data.csv", "--task", "ner", "--reference-column", "tags", "--predictions-column", "pred")


def test_the_tab_offers_every_task_the_command_line_evaluates() -> None:
    from backend.evaluation.task_inference import PIPELINE_EVAL_TASKS
    from ui.evaluate.forms import TASK_CHOICES

    assert PIPELINE_TASKS == dict(PIPELINE_EVAL_TASKS)  # evaluation task -> the registry task, as the runner asks
    assert [value for _, value in TASK_CHOICES] == list(cli.TASK_CHOICES)


def test_the_picker_lists_only_models_that_do_the_task(tab: Tab) -> None:
    expected = {"ner": ["tiny-ner"], "question_answering": ["tiny-qa"], "summarization": ["tiny-seq2seq"],
                "translation": ["tiny-seq2seq"]}
    for task, models in expected.items():
        updates = tab.call("on_task", task, False, ["tiny-chat"], "{input}", None)
        picker = updates[tab["eval-models"]]
        assert [value for _, value in picker.choices] == models, task
        assert picker.value == models  # the chat model picked for generation does not stay
        assert not updates[tab["eval-prompt"]].visible  # the pipeline tasks take no prompt
        assert updates[tab["eval-task-hint"]].visible
    generation = tab.call("on_task", "generation", False, ["tiny-ner"], "{input}", None)
    assert generation[tab["eval-models"]].value == ["tiny-chat"]
    assert not generation[tab["eval-task-hint"]].visible and not generation[tab["eval-passage-col"]].visible


def test_each_task_maps_its_own_columns(tab: Tab, ner_file: Path, qa_file: Path, tmp_path: Path) -> None:
    updates = tab.upload(ner_file, "ner")
    assert tab.value(updates, "eval-input-col") == "tokens" and tab.value(updates, "eval-reference-col") == "tags"
    labels = tab.call("on_task", "ner", False, [], "", {"path": str(ner_file)})
    assert labels[tab["eval-input-col"]].label == text("eval_tokens_column")
    assert labels[tab["eval-reference-col"]].label == text("eval_tags_column")

    # QA: the question is the input even though the passage is longer; the passage goes to the context column.
    updates = tab.upload(qa_file, "question_answering")
    assert tab.value(updates, "eval-input-col") == "question"
    assert tab.value(updates, "eval-reference-col") == "answers"
    assert tab.value(updates, "eval-passage-col") == "context"
    switched = tab.call("on_task", "question_answering", False, [], "", {"path": str(qa_file)})
    assert switched[tab["eval-passage-col"]].visible and switched[tab["eval-passage-col"]].value == "context"
    assert switched[tab["eval-input-col"]].value == "question"
    assert switched[tab["eval-reference-col"]].label == text("eval_answers_column")
    assert not switched[tab["eval-source-lang"]].visible

    # Summarization and translation: source and target columns; translation asks for the model's languages.
    pairs = tmp_path / "mt.csv"
    pd.DataFrame({"source": ["Good morning."], "target": ["Guten Morgen."]}).to_csv(pairs, index=False)
    for task in ("summarization", "translation"):
        switched = tab.call("on_task", task, False, [], "", {"path": str(pairs)})
        assert switched[tab["eval-input-col"]].value == "source" and switched[tab["eval-input-col"]].label == text(
            "eval_source_column")
        assert switched[tab["eval-reference-col"]].value == "target"
        assert switched[tab["eval-max-new-tokens"]].visible
    source, target = switched[tab["eval-source-lang"]], switched[tab["eval-target-lang"]]
    assert source.visible and (source.value, target.value) == ("en", "de")  # tiny-seq2seq's first declared pair
    assert source.choices == [("en", "en")] and [value for _, value in target.choices] == ["de", "fr"]
    kept = tab.call("on_models", "translation", ["tiny-seq2seq"], "en", "fr")
    assert (kept[tab["eval-source-lang"]].value, kept[tab["eval-target-lang"]].value) == ("en", "fr")


def test_a_qa_run_without_a_context_column_names_the_field(tab: Tab, qa_file: Path) -> None:
    with pytest.raises(gr.Error, match="context column: question_answering needs one"):
        tab.run({"path": str(qa_file)}, {"eval-task": "question_answering", "eval-input-col": "question",
                                          "eval-reference-col": "answers", "eval-models": ["tiny-qa"]})


# ------------------------------------------------------------------ the tab's figures are the command line's


def run_both(tab: Tab, tiny_models_yaml: Path, tmp_path: Path, path: Path, form: dict, argv: list[str],
             model: str) -> tuple[dict, dict, dict]:
    """(the tab's saved model result, the CLI's, the tab's last update) for the same file and choices."""
    out = tmp_path / f"cli-{model}"
    assert cli.main(cli_parser().parse_args(
        ["--models", str(tiny_models_yaml), "--model", model, "--data", str(path), "--out", str(out), "--quiet",
         "--batch-size", "2", "--bootstrap", "300", *argv])) == 0
    cli_result = json.loads((out / store.RESULTS_FILE).read_text(encoding="utf-8"))["models"][model]
    last = final(tab.run({"path": str(path)}, {"eval-models": [model], "eval-batch-size": 2, "eval-bootstrap": 300,
                                               **form}))
    saved = json.loads((tab.ctl.past_runs()[0].path / store.RESULTS_FILE).read_text(encoding="utf-8"))
    return saved["models"][model], cli_result, last


def assert_same(tab_result: dict, cli_result: dict) -> None:
    assert tab_result["status"] == cli_result["status"] == "complete", tab_result["error"]
    for key in ("metrics", "intervals", "predictions", "example_scores"):
        assert tab_result[key] == cli_result[key], key


def test_ner_and_qa_runs_from_the_tab_equal_the_command_lines(tab: Tab, tiny_models_yaml: Path, tmp_path: Path,
                                                               ner_file: Path, qa_file: Path) -> None:
    tab_ner, cli_ner, last = run_both(
        tab, tiny_models_yaml, tmp_path, ner_file,
        {"eval-task": "ner", "eval-input-col": "tokens", "eval-reference-col": "tags"},
        ["--task", "ner", "--input-column", "tokens", "--reference-column", "tags"], "tiny-ner")
    assert_same(tab_ner, cli_ner)
    assert set(cli_ner["metrics"]) == {"entity_precision", "entity_recall", "entity_f1"}
    board = tab.value(last, "eval-leaderboard")
    assert "entity_f1" in board.columns and board["model"][0] == "tiny-ner"
    shown = tab.value(last, "eval-examples")
    assert list(shown["prediction"]) == cli_ner["predictions"] and len(shown) == len(NER_ROWS)

    tab_qa, cli_qa, last = run_both(
        tab, tiny_models_yaml, tmp_path, qa_file,
        {"eval-task": "question_answering", "eval-input-col": "question", "eval-reference-col": "answers",
         "eval-passage-col": "context"},
        ["--task", "question_answering", "--input-column", "question", "--reference-column", "answers",
         "--context-column", "context"], "tiny-qa")
    assert_same(tab_qa, cli_qa)
    assert set(cli_qa["metrics"]) == {"squad_exact_match", "squad_f1"}
    assert all(answer in passage for answer, passage in zip(cli_qa["predictions"], QA_ROWS["context"]))
    assert list(tab.value(last, "eval-examples")["input"]) == QA_ROWS["question"]

    # Reopening the saved run puts the task and its own fields back into the form.
    reopened = tab.call("on_open", tab.ctl.past_runs()[0].run_id, REQUEST)
    assert tab.value(reopened, "eval-task") == "question_answering"
    assert reopened[tab["eval-passage-col"]].value == "context" and reopened[tab["eval-passage-col"]].visible
    assert tab.value(reopened, "eval-input-col") == "question"
    assert not reopened[tab["eval-prompt"]].visible


def test_summarization_and_translation_runs_from_the_tab_equal_the_command_lines(
        tab: Tab, tiny_models_yaml: Path, tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    pd.DataFrame({"source": ["Good morning, how are you?", "The cat sat on the mat.", "Thank you very much."],
                  "target": ["Guten Morgen, wie geht es?", "Die Katze sass auf der Matte.", "Vielen Dank."]}).to_csv(
        path, index=False)
    columns = {"eval-input-col": "source", "eval-reference-col": "target", "eval-max-new-tokens": 4}
    tab_sum, cli_sum, _ = run_both(
        tab, tiny_models_yaml, tmp_path, path, {"eval-task": "summarization", "eval-rouge-stemmer": True, **columns},
        ["--task", "summarization", "--input-column", "source", "--reference-column", "target", "--max-new-tokens",
         "4", "--rouge-stemmer"], "tiny-seq2seq")
    assert_same(tab_sum, cli_sum)
    assert "rougeL" in cli_sum["metrics"]
    tab_mt, cli_mt, _ = run_both(
        tab, tiny_models_yaml, tmp_path, path, {"eval-task": "translation", "eval-source-lang": "en",
                                                "eval-target-lang": "fr", **columns},
        ["--task", "translation", "--input-column", "source", "--reference-column", "target", "--max-new-tokens",
         "4", "--source-language", "en", "--target-language", "fr"], "tiny-seq2seq")
    assert_same(tab_mt, cli_mt)
    assert {"bleu", "chrf"} <= set(cli_mt["metrics"])
    # The pair reaches the model: German and French prefixes give other outputs from the same random T5.
    german = final(tab.run({"path": str(path)}, {"eval-task": "translation", "eval-models": ["tiny-seq2seq"],
                                                 "eval-source-lang": "en", "eval-target-lang": "de", **columns}))
    assert list(tab.value(german, "eval-examples")["prediction"]) != tab_mt["predictions"]
    runs = tab.ctl.past_runs()
    reopened = tab.call("on_open", runs[1].run_id, REQUEST)  # the en → fr run (the newest is en → de)
    assert (reopened[tab["eval-source-lang"]].value, reopened[tab["eval-target-lang"]].value) == ("en", "fr")
    assert reopened[tab["eval-target-lang"]].visible and reopened[tab["eval-max-new-tokens"]].visible
