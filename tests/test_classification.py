"""Classification on real tiny models: supervised, zero-shot NLI, LLM label scoring, whole files, and /classify."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from backend.services import classification as clf
from backend.data import files as datafiles
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.types import InvalidInputError, UnsupportedTaskError
from tests.conftest import free_port
from tests.tiers import full_tier

TEXTS = [
    "I loved this film. The acting was wonderful and the story was moving.",
    "Terrible service.",
    "The weather today is sunny with a light breeze, around 21 degrees.",
    "ok",
    "Worst purchase ever; it broke after two days. " * 5,
    "Café, naïve, résumé 🙂",
    "Prices rose 3.5% in March; analysts expect $1,200 by Q4 (maybe).",
]
TOPICS = ["sports", "politics", "science fiction"]


def labels_of(ranked) -> list[str]:
    return [item.label for item in ranked]


def assert_ranked_probabilities(ranked, expected_labels, sums_to_one: bool = True) -> None:
    assert sorted(labels_of(ranked)) == sorted(expected_labels)
    scores = [item.score for item in ranked]
    assert scores == sorted(scores, reverse=True), "scores must come best first"
    assert all(0.0 <= score <= 1.0 for score in scores)
    if sums_to_one:
        assert math.isclose(sum(scores), 1.0, abs_tol=1e-5)


def assert_same_scores(first, second, tolerance: float = 1e-5) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        scores_a = {item.label: item.score for item in a}
        scores_b = {item.label: item.score for item in b}
        assert scores_a.keys() == scores_b.keys()
        for label in scores_a:
            assert abs(scores_a[label] - scores_b[label]) <= tolerance, (label, scores_a[label], scores_b[label])


# ------------------------------------------------------------------------------------------- the modes


def test_supervised_gives_probabilities_over_the_models_labels(shared_registry: Registry) -> None:
    result = clf.classify_texts(shared_registry, "tiny-classifier", TEXTS)
    assert result.mode == "supervised" and result.completed == len(TEXTS) and not result.cancelled
    assert result.labels == ("negative", "positive")
    for ranked in result.scores:
        assert_ranked_probabilities(ranked, ["negative", "positive"])
    assert len({round(ranked[0].score, 6) for ranked in result.scores}) > 1, "scores must depend on the text"


def test_zero_shot_scores_exactly_the_candidate_labels(shared_registry: Registry) -> None:
    result = clf.classify_texts(shared_registry, "tiny-nli", TEXTS, "sports, politics , science fiction,")
    assert result.mode == "zero_shot" and result.labels == tuple(TOPICS)
    for ranked in result.scores:
        assert_ranked_probabilities(ranked, TOPICS)


def test_zero_shot_multi_label_scores_each_label_on_its_own(shared_registry: Registry) -> None:
    single = clf.classify_texts(shared_registry, "tiny-nli", TEXTS[:3], TOPICS, multi_label=True)
    for ranked in single.scores:
        assert_ranked_probabilities(ranked, TOPICS, sums_to_one=False)
    # Independent scores: a label's score does not change when other labels are added.
    alone = clf.classify_texts(shared_registry, "tiny-nli", TEXTS[:3], ["sports"], multi_label=True)
    for ranked_all, ranked_one in zip(single.scores, alone.scores):
        together = {item.label: item.score for item in ranked_all}["sports"]
        assert abs(together - ranked_one[0].score) < 1e-5


def test_zero_shot_hypothesis_template_matters(shared_registry: Registry) -> None:
    default = clf.classify_texts(shared_registry, "tiny-nli", TEXTS[:1], TOPICS)
    custom = clf.classify_texts(shared_registry, "tiny-nli", TEXTS[:1], TOPICS,
                                hypothesis_template="The topic of this text is {}.")
    assert default.scores[0] != custom.scores[0]


def test_llm_scoring_gives_probabilities_over_exactly_the_labels(shared_registry: Registry) -> None:
    labels = ["positive", "negative", "not sure at all"]
    result = clf.classify_texts(shared_registry, "tiny-chat", TEXTS, labels)
    assert result.mode == "llm" and result.labels == tuple(labels)
    for ranked in result.scores:
        assert_ranked_probabilities(ranked, labels)


def test_llm_scores_are_the_softmax_of_label_log_likelihoods(shared_registry: Registry) -> None:
    """Reference computation: each label scored alone, without padding, straight from the model's logits."""
    import torch

    labels = ["positive", "negative", "a very long label indeed"]
    text = TEXTS[0]
    result = clf.classify_texts(shared_registry, "tiny-chat", [text], labels,
                                prompt_template="Review: {text}\nSentiment:")
    with shared_registry.lease("tiny-chat") as engine:
        tokenizer, model = engine.tokenizer, engine.model
        prompt = f"Review: {text}\nSentiment:"
        context = tokenizer(prompt)["input_ids"]
        totals = []
        for label in labels:
            label_ids = tokenizer(prompt + " " + label)["input_ids"][len(context):]
            ids = torch.tensor([context + label_ids])
            with torch.no_grad():
                log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            totals.append(sum(log_probs[len(context) - 1 + i, token].item() for i, token in enumerate(label_ids)))
    expected = torch.softmax(torch.tensor(totals, dtype=torch.float64), dim=0).tolist()
    got = {item.label: item.score for item in result.scores[0]}
    for label, probability in zip(labels, expected):
        assert abs(got[label] - probability) < 1e-5


def test_the_default_llm_prompt_lists_the_labels() -> None:
    """Issue 28: without its choices in the prompt, SmolLM2-135M-Instruct rated "I loved this film" 60% negative
    (91% positive with them). The service's default is the engine's, and the rendered prompt names every label."""
    from backend.engines.label_scoring import DEFAULT_PROMPT_TEMPLATE, LABELS_SLOT, TEXT_SLOT, render_prompt

    assert clf.DEFAULT_PROMPT_TEMPLATE == DEFAULT_PROMPT_TEMPLATE
    assert LABELS_SLOT in DEFAULT_PROMPT_TEMPLATE and TEXT_SLOT in DEFAULT_PROMPT_TEMPLATE
    prompt = render_prompt(DEFAULT_PROMPT_TEMPLATE, "I loved this film", ["positive", "negative"])
    assert "positive, negative" in prompt and "I loved this film" in prompt and prompt.endswith("Label:")


@pytest.mark.parametrize("model_id, labels, options", [
    ("tiny-classifier", None, {}),
    ("tiny-nli", TOPICS, {}),
    ("tiny-nli", TOPICS, {"multi_label": True}),
    ("tiny-chat", ["positive", "negative", "neutral"], {}),
])
def test_batched_results_equal_one_by_one(shared_registry: Registry, model_id, labels, options) -> None:
    batched = clf.classify_texts(shared_registry, model_id, TEXTS, labels, batch_size=4, **options)
    one_by_one = clf.classify_texts(shared_registry, model_id, TEXTS, labels, batch_size=1, **options)
    assert_same_scores(batched.scores, one_by_one.scores)


def test_long_texts_are_truncated_and_counted(shared_registry: Registry) -> None:
    long_text = "the cat sat on the mat and " * 400  # far beyond the tiny models' 512 tokens
    for model_id, labels in (("tiny-classifier", None), ("tiny-nli", TOPICS), ("tiny-chat", ["yes", "no"])):
        result = clf.classify_texts(shared_registry, model_id, [long_text, "short", long_text], labels)
        assert result.completed == 3 and result.truncated == 2, model_id
        assert result.max_context == 512
        assert any("2 of 3 text(s) were longer than the model's 512-token limit" in note for note in result.notices())


def test_llm_scoring_waits_for_the_generate_lock(shared_registry: Registry) -> None:
    with shared_registry.lease("tiny-chat") as engine:
        finished = threading.Event()

        def score() -> None:
            clf.classify_texts(shared_registry, "tiny-chat", ["hello"], ["a", "b"])
            finished.set()

        lock = getattr(engine, "generate_lock", None) or engine._generate_lock
        with lock:
            worker = threading.Thread(target=score)
            worker.start()
            assert not finished.wait(0.5), "scoring ran while a generation held the model"
        assert finished.wait(30)
        worker.join()


def test_mode_follows_the_model_and_labels(shared_registry: Registry) -> None:
    assert clf.mode_for(shared_registry, "tiny-classifier") == "supervised"
    assert clf.mode_for(shared_registry, "tiny-nli") == "zero_shot"
    assert clf.mode_for(shared_registry, "tiny-chat", has_labels=True) == "llm"
    with pytest.raises(UnsupportedTaskError, match="cannot do zero-shot classification.*tiny-nli"):
        clf.mode_for(shared_registry, "tiny-classifier", "zero_shot")
    assert [spec.id for spec in clf.models_for(shared_registry, "llm")] == ["tiny-chat"]


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("model_id, texts, labels, options, message", [
    ("tiny-classifier", ["  "], None, {}, "text: is empty"),
    ("tiny-classifier", ["fine", ""], None, {}, r"texts\[1\]: is empty"),
    ("tiny-classifier", [], None, {}, "texts: nothing to classify"),
    ("tiny-classifier", "not a list", None, {}, "texts: give a list"),
    ("tiny-nli", ["x"], None, {}, "labels: zero-shot classification needs candidate labels"),
    ("tiny-nli", ["x"], " , ", {}, "labels: zero-shot classification needs candidate labels"),
    ("tiny-chat", ["x"], "", {}, "labels: LLM as classifier classification needs candidate labels"),
    ("tiny-nli", ["x"], "sports, Sports", {}, "labels: 'Sports' is given twice"),
    ("tiny-nli", ["x"], [f"label {i}" for i in range(51)], {}, "labels: at most 50 labels, got 51"),
    ("tiny-nli", ["x"], "only one", {}, "labels: give at least two labels"),
    ("tiny-nli", ["x"], ["x" * 201, "b"], {}, "at most 200"),
    ("tiny-classifier", ["x"], "a, b", {}, "labels: a supervised model classifies into its own labels"),
    ("tiny-nli", ["x"], "a, b", {"hypothesis_template": "no slot"}, "hypothesis_template: must contain {}"),
    ("tiny-chat", ["x"], "a, b", {"prompt_template": "no slot"}, "prompt_template: must contain {text}"),
    ("tiny-chat", ["x"], "a, b", {"multi_label": True}, "multi_label: only zero-shot"),
    ("tiny-classifier", ["x"], None, {"batch_size": 0}, "batch_size: must be between 1 and 256"),
    ("tiny-classifier", ["x"], None, {"batch_size": 2.5}, "batch_size: must be a whole number"),
    ("tiny-classifier", ["x"], None, {"mode": "sentiment"}, "mode: must be one of"),
])
def test_invalid_requests_name_the_field_and_load_nothing(registry: Registry, model_id, texts, labels, options,
                                                          message) -> None:
    mode = options.pop("mode", None)
    with pytest.raises(InvalidInputError, match=message):
        clf.classify_texts(registry, model_id, texts, labels, mode, **options)
    assert all(status.state == "unloaded" for status in registry.status())


def test_unknown_model_and_wrong_task(registry: Registry) -> None:
    with pytest.raises(Exception, match="unknown model 'nope'"):
        clf.classify_texts(registry, "nope", ["x"])
    with pytest.raises(UnsupportedTaskError, match="cannot do supervised"):
        clf.classify_texts(registry, "tiny-chat", ["x"], mode="supervised")


# ----------------------------------------------------------------------------------------------- files


def write_reviews_csv(path: Path, rows: int) -> Path:
    samples = ["I loved this film.", "Terrible service, cold food.", "The phone has a great camera.",
               "It broke after two days.", "Thank you very much!"]
    pd.DataFrame({"id": range(rows), "review": [f"{samples[i % len(samples)]} #{i}" for i in range(rows)]}).to_csv(
        path, index=False)
    return path


def test_a_thousand_row_csv_is_classified_completely_with_progress(shared_registry: Registry, tmp_path: Path) -> None:
    table = datafiles.read_table(write_reviews_csv(tmp_path / "reviews.csv", 1000))
    seen: list[float] = []
    outcome = clf.classify_table(shared_registry, "tiny-classifier", table, "review", batch_size=64,
                                 progress=lambda fraction, description: seen.append(fraction))
    result = outcome.result
    assert result.completed == result.total == 1000 and not result.cancelled
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(a <= b for a, b in zip(seen, seen[1:])), "progress must never go back"
    assert len(seen) == 1 + math.ceil(1000 / 64)
    out = outcome.table
    assert len(out) == 1000
    assert list(out.columns) == ["id", "review", "predicted_label", "predicted_score", "score: negative",
                                 "score: positive"]
    assert set(out["predicted_label"]) <= {"negative", "positive"}
    assert ((out["score: negative"] + out["score: positive"] - 1).abs() < 1e-5).all()
    # The same rows one by one give the same predictions.
    direct = clf.classify_texts(shared_registry, "tiny-classifier", out["review"].tolist()[:20], batch_size=1)
    assert [ranked[0].label for ranked in direct.scores] == out["predicted_label"].tolist()[:20]


def test_cancel_mid_file_keeps_the_rows_done(shared_registry: Registry, tmp_path: Path) -> None:
    table = datafiles.read_table(write_reviews_csv(tmp_path / "reviews.csv", 1000))
    cancel = threading.Event()

    def progress(fraction: float, description: str) -> None:
        if fraction >= 0.25:
            cancel.set()  # as if the user pressed Cancel while the run was a quarter through

    outcome = clf.classify_table(shared_registry, "tiny-classifier", table, "review", batch_size=50,
                                 progress=progress, cancel=cancel)
    result = outcome.result
    assert result.cancelled and result.completed == 250 and result.total == 1000
    assert len(outcome.table) == 250
    assert outcome.table["predicted_label"].isin(["negative", "positive"]).all()
    assert any("cancelled after 250 of 1,000" in note for note in outcome.notices())


def test_blank_rows_are_kept_but_not_classified(shared_registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("text,predicted_label\ngood film,x\n,y\n   ,z\nbad film,w\n", encoding="utf-8")
    outcome = clf.classify_table(shared_registry, "tiny-classifier", datafiles.read_table(path), "text")
    out = outcome.table
    assert outcome.blank_rows == 2 and outcome.result.completed == 2
    # The file's own "predicted_label" column is kept; ours gets a free name.
    assert out["predicted_label"].tolist() == ["x", "y", "z", "w"]
    assert out["predicted_label (2)"].tolist()[1:3] == ["", ""]
    assert out["predicted_score"].isna().tolist() == [False, True, True, False]
    assert "2 row(s) with an empty text were skipped" in outcome.notices()[0]


def test_jsonl_and_parquet_files_with_zero_shot_and_llm(shared_registry: Registry, tmp_path: Path) -> None:
    jsonl = tmp_path / "topics.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": text}) for text in TEXTS), encoding="utf-8")
    parquet = tmp_path / "topics.parquet"
    pd.DataFrame({"body": TEXTS, "n": range(len(TEXTS))}).to_parquet(parquet)
    for path, model_id in ((jsonl, "tiny-nli"), (parquet, "tiny-chat")):
        outcome = clf.classify_table(shared_registry, model_id, datafiles.read_table(path), "body", TOPICS,
                                     batch_size=3)
        assert outcome.result.completed == len(TEXTS)
        assert set(outcome.table["predicted_label"]) <= set(TOPICS)
        assert [c for c in outcome.table.columns if c.startswith("score: ")] == [f"score: {t}" for t in TOPICS]


def test_file_with_a_missing_column_is_a_clear_error(shared_registry: Registry, tmp_path: Path) -> None:
    table = datafiles.read_table(write_reviews_csv(tmp_path / "reviews.csv", 3))
    with pytest.raises(InvalidInputError, match="no column 'text'; the file's columns are 'id', 'review'"):
        clf.classify_table(shared_registry, "tiny-classifier", table, "text")


# ---------------------------------------------------------------------------------------- /classify API


@pytest.fixture(scope="module")
@full_tier
def classify_app(tiny_config):
    """A small Blocks holding just the Classify tab and the /classify endpoint, launched on a free port."""
    import gradio as gr
    from gradio_client import Client

    from ui.classify.tab import build_classify_tab, register_classify_api

    registry = Registry(tiny_config, create_engine)
    with gr.Blocks() as demo:
        with gr.Tabs():
            build_classify_tab(registry)
        register_classify_api(registry)
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()
        registry.close()


def test_api_classify_supervised_zero_shot_and_llm(classify_app) -> None:
    supervised = classify_app.predict(text="I loved this film.", model="tiny-classifier", api_name="/classify")
    assert [item["label"] for item in supervised] in (["negative", "positive"], ["positive", "negative"])
    assert math.isclose(sum(item["score"] for item in supervised), 1.0, abs_tol=1e-5)

    zero_shot = classify_app.predict(text="The team won the match.", model="tiny-nli",
                                     labels="sports, politics, science", api_name="/classify")
    assert sorted(item["label"] for item in zero_shot) == ["politics", "science", "sports"]
    scores = [item["score"] for item in zero_shot]
    assert scores == sorted(scores, reverse=True) and math.isclose(sum(scores), 1.0, abs_tol=1e-5)

    multi = classify_app.predict(text="The team won the match.", model="tiny-nli", labels="sports, politics",
                                 multi_label=True, hypothesis_template="It is about {}.", api_name="/classify")
    assert sorted(item["label"] for item in multi) == ["politics", "sports"]

    llm = classify_app.predict(text="Terrible service.", model="tiny-chat", labels="positive, negative",
                               prompt_template="Review: {text}\nSentiment:", api_name="/classify")
    assert sorted(item["label"] for item in llm) == ["negative", "positive"]
    assert math.isclose(sum(item["score"] for item in llm), 1.0, abs_tol=1e-5)

    default_model = classify_app.predict(text="fine", api_name="/classify")
    assert {item["label"] for item in default_model} == {"negative", "positive"}


def test_api_classify_errors_are_readable(classify_app) -> None:
    with pytest.raises(Exception, match="labels: zero-shot classification needs candidate labels"):
        classify_app.predict(text="x", model="tiny-nli", api_name="/classify")
    with pytest.raises(Exception, match="text: is empty"):
        classify_app.predict(text=" ", model="tiny-classifier", api_name="/classify")
    with pytest.raises(Exception, match="unknown model"):
        classify_app.predict(text="x", model="<b>nope</b>", api_name="/classify")


def test_api_documents_the_classify_endpoint(classify_app) -> None:
    info = classify_app.view_api(return_format="dict", print_info=False)
    endpoint = info["named_endpoints"]["/classify"]
    names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
    assert names == ["text", "model", "labels", "multi_label", "hypothesis_template", "prompt_template"]
    # Only the endpoint is public: the tab's own events stay private.
    assert set(info["named_endpoints"]) == {"/classify"}


def test_the_classification_service_imports_no_torch() -> None:
    """ui/classify/tab.py imports these at start-up; torch must wait until a model is used (test_boundaries checks
    ui)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, backend.services.classification, backend.data.files; "
            "print([m for m in ('torch', 'transformers', 'gradio') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_progress_is_reported_before_the_model_loads(registry: Registry) -> None:
    seen: list[tuple[float, str, str]] = []

    def progress(fraction: float, description: str) -> None:
        seen.append((fraction, description, registry.status_of("tiny-classifier").state))

    started = time.perf_counter()
    clf.classify_texts(registry, "tiny-classifier", ["a", "b", "c"], batch_size=2, progress=progress)
    assert time.perf_counter() - started < 60
    assert seen[0][0] == 0.0 and seen[0][2] == "unloaded" and "loading" in seen[0][1]
    assert [fraction for fraction, _, _ in seen[1:]] == [2 / 3, 1.0]


def test_forward_passes_run_inside_spaces_gpu_on_zerogpu(registry: Registry, monkeypatch) -> None:
    """On a ZeroGPU Space the GPU exists only inside `spaces.GPU` functions: every classification forward is one."""
    import sys
    import types

    from backend.engines import label_scoring

    calls: list[tuple[str, int]] = []

    def gpu(duration: int):
        def wrap(fn):
            def run(*args, **kwargs):
                calls.append((getattr(fn, "__name__", "?"), duration))
                return fn(*args, **kwargs)
            return run
        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.setattr(label_scoring, "_ON_DEVICE", {})
    clf.classify_texts(registry, "tiny-classifier", ["a", "b"])
    clf.classify_texts(registry, "tiny-nli", ["a"], "x, y")
    clf.classify_texts(registry, "tiny-chat", ["a"], "x, y")
    names = [name for name, _ in calls]
    assert names.count("_forward") >= 2 and "_label_log_likelihoods" in names
    assert all(duration == 60 for _, duration in calls)
