"""Evaluation runs on the tiny real models: batching, perplexity, classification, cancel, progress, saved runs."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from backend.services import generation as service
from backend.evaluation import store
from backend.evaluation.data import ColumnMapping, DataSource
from backend.evaluation.runner import EvaluationJob, run_evaluation
from backend.evaluation.types import EvalConfig, Progress
from backend.core.types import GenerationParams, InvalidInputError, ModelNotFoundError

# Different lengths on purpose: batches of 4 need real left padding.
PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Write a haiku about the sea: waves fold into foam, salt wind hums a quiet song.",
    "Numbers: 0 1 2 3",
    "The quick brown fox jumps over the lazy dog, and the cat sat on the mat by the warm fire.",
    "Café?",
    "Once upon a time, in a village by the river, there lived an old clockmaker who",
    "def add(a: int, b: int) -> int:",
]
SENTIMENT = [
    ("I loved this film. The acting was wonderful.", "positive"),
    ("Terrible service. The food was cold.", "negative"),
    ("This product is great, I would buy it again!", "positive"),
    ("Worst purchase ever; it broke after two days.", "negative"),
    ("The new phone has a great camera.", "positive"),
    ("The waiter was rude.", "negative"),
]


def csv_file(tmp_path: Path, rows: list[dict], name: str = "data.csv") -> str:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def generation_config(path: str, **overrides) -> EvalConfig:
    base = EvalConfig(task="generation", data=DataSource(path=path),
                      columns=ColumnMapping(input="prompt", reference="reference"), models=("tiny-chat",),
                      max_new_tokens=10, bootstrap=0)
    return base.with_overrides(**overrides)


@pytest.fixture
def prompts_csv(tmp_path: Path) -> str:
    return csv_file(tmp_path, [{"prompt": p, "reference": "the capital of France is Paris"} for p in PROMPTS])


@pytest.mark.parametrize("chat_template", [True, False])
def test_batched_generation_equals_one_at_a_time(shared_registry, prompts_csv: str, chat_template: bool) -> None:
    batched = run_evaluation(generation_config(prompts_csv, batch_size=4, chat_template=chat_template),
                             shared_registry, runs_dir=None)
    single = run_evaluation(generation_config(prompts_csv, batch_size=1, chat_template=chat_template),
                            shared_registry, runs_dir=None)
    predictions = batched.models["tiny-chat"].predictions
    assert predictions == single.models["tiny-chat"].predictions
    assert all(predictions) and len(set(predictions)) > len(PROMPTS) // 2  # real, varied outputs
    assert batched.models["tiny-chat"].metrics == single.models["tiny-chat"].metrics


def test_evaluation_output_is_what_the_engine_streams_greedily(shared_registry, prompts_csv: str) -> None:
    run = run_evaluation(generation_config(prompts_csv, batch_size=4, chat_template=False, limit=3),
                         shared_registry, runs_dir=None)
    params = GenerationParams(max_new_tokens=10, temperature=0.0)
    for prompt, prediction in zip(PROMPTS, run.models["tiny-chat"].predictions):
        final = list(service.stream_generate(shared_registry, "tiny-chat", prompt, params))[-1]
        assert prediction == final.text


def test_perplexity_is_batched_and_masks_padding(shared_registry, tmp_path: Path) -> None:
    import torch

    path = csv_file(tmp_path, [{"text": p} for p in PROMPTS])
    config = EvalConfig(task="perplexity", data=DataSource(path=path), columns=ColumnMapping(input="text"),
                        models=("tiny-chat",), batch_size=4, bootstrap=0)
    batched = run_evaluation(config, shared_registry, runs_dir=None).models["tiny-chat"]
    single = run_evaluation(config.with_overrides(batch_size=1), shared_registry, runs_dir=None).models["tiny-chat"]
    assert batched.metrics["perplexity"] == pytest.approx(single.metrics["perplexity"], rel=1e-5)
    assert batched.example_scores["perplexity"] == pytest.approx(single.example_scores["perplexity"], rel=1e-5)
    # Per text it is transformers' own causal-LM loss (mean NLL over BOS + text), exponentiated.
    with shared_registry.lease("tiny-chat") as engine:
        ids = [engine.tokenizer.bos_token_id] + engine.tokenizer(PROMPTS[2], add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            loss = engine.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert batched.example_scores["perplexity"][2] == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert batched.example_scores["tokens"][2] == len(ids) - 1


def test_classification_leaderboard_over_three_kinds_of_model(shared_registry, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [{"text": t, "label": label} for t, label in SENTIMENT])
    config = EvalConfig(task="classification", data=DataSource(path=path),
                        columns=ColumnMapping(input="text", reference="label"),
                        models=("tiny-classifier", "tiny-nli", "tiny-chat"), bootstrap=100)
    run = run_evaluation(config, shared_registry, runs_dir=None)
    board = run.leaderboard()
    assert sorted(board["model"]) == ["tiny-chat", "tiny-classifier", "tiny-nli"]
    assert list(board["accuracy"]) == sorted(board["accuracy"], reverse=True)
    references = [label for _, label in SENTIMENT]
    for result in run.models.values():
        assert result.status == "complete" and set(result.predictions) <= {"negative", "positive"}
        assert result.metrics["accuracy"] == accuracy_score(references, result.predictions)
        assert result.metrics["f1_macro"] == f1_score(references, result.predictions, average="macro", zero_division=0)
        low, high = result.intervals["accuracy"]
        assert low <= result.metrics["accuracy"] <= high
    matrix = run.models["tiny-classifier"].details["confusion_matrix"]
    assert matrix["labels"] == ["negative", "positive"] and sum(map(sum, matrix["matrix"])) == len(SENTIMENT)
    table = run.example_table("tiny-classifier")
    assert list(table.columns[:5]) == ["model", "row", "input", "reference", "prediction"]
    assert set(table["correct"]) <= {0.0, 1.0} and table["confidence"].between(0.5, 1).all()


def test_class_ids_in_the_file_map_to_the_models_labels(shared_registry, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [{"text": t, "label": int(label == "positive")} for t, label in SENTIMENT])
    config = EvalConfig(task="classification", data=DataSource(path=path),
                        columns=ColumnMapping(input="text", reference="label"), models=("tiny-classifier",),
                        bootstrap=0)
    run = run_evaluation(config, shared_registry, runs_dir=None)
    assert run.models["tiny-classifier"].status == "complete"
    assert set(run.models["tiny-classifier"].details["confusion_matrix"]["labels"]) == {"negative", "positive"}


def test_labels_the_model_does_not_know_are_named_before_loading(registry, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [{"text": "fine", "label": "neutral"}, {"text": "bad", "label": "negative"},
                               {"text": "meh", "label": "mixed"}])
    config = EvalConfig(task="classification", data=DataSource(path=path),
                        columns=ColumnMapping(input="text", reference="label"), models=("tiny-classifier",))
    with pytest.raises(InvalidInputError) as error:
        run_evaluation(config, registry, runs_dir=None)
    message = str(error.value)
    assert "'mixed', 'neutral'" in message and "'negative', 'positive'" in message and "tiny-classifier" in message
    assert registry.status_of("tiny-classifier").state == "unloaded"


def test_unknown_model_id_names_the_models_there_are(registry, prompts_csv: str) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'tiny-gpt'.*tiny-chat"):
        run_evaluation(generation_config(prompts_csv, models=("tiny-gpt",)), registry, runs_dir=None)


def test_cancel_keeps_finished_batches_and_saves_the_run(shared_registry, prompts_csv: str, tmp_path: Path) -> None:
    cancel = threading.Event()
    updates: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        updates.append(progress)
        if progress.model_done >= 2:  # after the first batch of two
            cancel.set()

    run = run_evaluation(generation_config(prompts_csv, batch_size=2), shared_registry, progress=on_progress,
                         cancel=cancel, runs_dir=tmp_path / "runs")
    chat = run.models["tiny-chat"]
    assert run.cancelled and chat.status == "cancelled" and chat.completed == 2
    assert sum(prediction is not None for prediction in chat.predictions) == 2
    assert set(chat.metrics) >= {"bleu", "chrf", "rougeL", "exact_match"}  # scored on what was done
    assert updates[-1].done == 2 and updates[-1].total == len(PROMPTS)
    assert [update.done for update in updates] == [0, 2] and updates[-1].eta_s is not None
    reopened = store.open_run(run.run_id, runs_dir=tmp_path / "runs")
    assert reopened.cancelled and reopened.models["tiny-chat"].metrics == chat.metrics
    assert reopened.models["tiny-chat"].predictions == chat.predictions


def test_models_after_a_cancel_are_skipped(shared_registry, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [{"text": t, "label": label} for t, label in SENTIMENT])
    cancel = threading.Event()
    config = EvalConfig(task="classification", data=DataSource(path=path), batch_size=2, bootstrap=0,
                        columns=ColumnMapping(input="text", reference="label"), models=("tiny-classifier", "tiny-nli"))
    run = run_evaluation(config, shared_registry, runs_dir=None, cancel=cancel,
                         progress=lambda progress: cancel.set() if progress.done >= 2 else None)
    assert run.models["tiny-classifier"].status == "cancelled" and run.models["tiny-classifier"].completed == 2
    assert run.models["tiny-nli"].status == "skipped"
    assert list(run.leaderboard()["model"]) == ["tiny-classifier", "tiny-nli"]


def test_runs_are_saved_listed_and_reopened(tmp_path: Path) -> None:
    rows = [{"label": label, "guess": guess} for label, guess in
            [("a", "a"), ("b", "a"), ("b", "b"), ("c", "c"), ("a", "a")]]
    path = csv_file(tmp_path, rows)
    config = EvalConfig(task="classification", data=DataSource(path=path),
                        columns=ColumnMapping(reference="label", predictions="guess"), bootstrap=50)
    runs = tmp_path / "runs"
    first = run_evaluation(config, None, runs_dir=runs)
    second = run_evaluation(config.with_overrides(bootstrap=0), None, runs_dir=runs)
    assert first.models["predictions"].metrics["accuracy"] == pytest.approx(0.8)
    listed = store.list_runs(runs)
    assert [summary.run_id for summary in listed] == sorted([first.run_id, second.run_id], reverse=True)
    assert listed[0].metrics["predictions"]["accuracy"] == pytest.approx(0.8)
    reopened = store.open_run(first.path)
    assert reopened.config == first.config
    assert reopened.models["predictions"].intervals == first.models["predictions"].intervals
    assert reopened.leaderboard().equals(first.leaderboard())
    csv = pd.read_csv(first.path / store.PREDICTIONS_FILE)
    assert list(csv["prediction"]) == [row["guess"] for row in rows] and list(csv["correct"]) == [1, 0, 1, 1, 1]
    (runs / "junk").mkdir()
    (runs / "junk" / store.RESULTS_FILE).write_text("{not json")
    assert len(store.list_runs(runs)) == 2  # a damaged folder does not hide the others


def test_background_job_reports_progress_and_result(shared_registry, prompts_csv: str) -> None:
    job = EvaluationJob(generation_config(prompts_csv, batch_size=4, limit=4), shared_registry, runs_dir=None)
    run = job.result(timeout=120)
    assert job.done and job.progress is not None and job.progress.fraction == 1.0
    assert run.models["tiny-chat"].completed == 4
