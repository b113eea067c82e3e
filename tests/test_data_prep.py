"""backend/data on real files: each cleaning step with exact counts, near-duplicates, stratified splits,
augmentation (nlpaug + offline WordNet), paraphrase through a registry model, reproducibility, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from backend.data.pipeline import prepare
from backend.data.recipe import Recipe
from backend.data.split import split_indices
from backend.data.store import dataset_path, list_datasets, save_dataset, write_splits
from backend.evaluation.data import DataSource
from backend.core.types import InvalidInputError


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


CRAFTED = [
    {"text": "  Hello   world ", "label": "pos"},              # normalize: changed
    {"text": "\uff26\uff55\uff4c\uff4c width", "label": "pos"},  # normalize (NFKC): changed
    {"text": "<p>Bold <b>move</b> &amp; more</p>", "label": "neg"},  # html: changed
    {"text": "", "label": "pos"},                                # empty: dropped
    {"text": "   ", "label": "neg"},                             # empty after normalize: dropped
    {"text": "Hello world", "label": "pos"},                     # exact duplicate of row 0 after normalize
    {"text": "the cat sat on the mat with a hat today", "label": "neg"},
    {"text": "the cat sat on the mat with a hat today!", "label": "neg"},  # near-duplicate (punctuation only)
    {"text": "ok", "label": "pos"},                              # too short (< 3 chars)
    {"text": "a completely different sentence about dogs", "label": ""},  # labels: missing
    {"text": "another sentence entirely about birds", "label": "meh"},    # labels: not in list
]


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "crafted.csv", CRAFTED)


def recipe(path: Path, **changes) -> Recipe:
    return Recipe(DataSource(path=str(path)), "text", "label").with_changes(**changes)


def test_each_cleaning_step_reports_exact_counts(crafted: Path) -> None:
    steps = ("normalize", "html", "empty", "length", "dedupe", "near-dedupe", "labels")
    prepared = prepare(recipe(crafted, clean=steps, min_chars=3, allowed_labels=("pos", "neg")))
    reports = {step["step"]: step for step in prepared.card["steps"]}
    assert [step["step"] for step in prepared.card["steps"]] == ["load", *steps]
    assert reports["load"]["rows_after"] == 11
    assert (reports["normalize"]["changed"], reports["normalize"]["dropped"]) == (3, 0)  # incl. "   " -> ""
    assert (reports["html"]["changed"], reports["html"]["dropped"]) == (1, 0)
    assert reports["empty"]["dropped"] == 2
    assert reports["length"]["dropped"] == 1
    assert reports["dedupe"]["dropped"] == 1
    assert reports["near-dedupe"]["dropped"] == 1
    assert reports["labels"]["dropped"] == 2
    texts = prepared.splits["data"]["text"]
    assert texts == ["Hello world", "Full width", "Bold move & more", "the cat sat on the mat with a hat today"]


def test_near_duplicates_found_but_different_texts_kept(tmp_path: Path) -> None:
    base = "the quick brown fox jumps over the lazy dog near the river bank this morning"
    rows = [{"text": base, "label": "a"}, {"text": base.replace("morning", "mornin"), "label": "a"},
            {"text": base.upper(), "label": "b"},  # same words, case only: a near-duplicate
            {"text": "an unrelated line about the stock market and interest rates", "label": "b"}]
    prepared = prepare(recipe(write_csv(tmp_path / "near.csv", rows), clean=("near-dedupe",)))
    assert prepared.splits["data"]["text"] == [base, rows[3]["text"]]
    assert prepared.card["steps"][1]["dropped"] == 2


def test_token_length_bounds_use_the_registry_models_tokenizer(tmp_path: Path, tiny_config) -> None:
    from backend.core.config import ModelSpec  # noqa: F401 - the spec comes from tiny_config
    from backend.data.tokens import token_counter
    from backend.core.registry import Registry
    from backend.engines import create_engine

    registry = Registry(tiny_config, create_engine)
    rows = [{"text": "hello", "label": "a"}, {"text": "hello " * 40, "label": "a"}, {"text": "hi there", "label": "b"}]
    counts = token_counter(registry.spec("tiny-chat"))([row["text"] for row in rows])
    prepared = prepare(recipe(write_csv(tmp_path / "t.csv", rows), clean=("length",), max_tokens=counts[0] + 1,
                              token_model="tiny-chat"), registry)
    assert counts[1] > counts[0] + 1
    assert len(prepared.splits["data"]) == sum(count <= counts[0] + 1 for count in counts)
    registry.close()


def test_stratified_split_keeps_class_proportions_within_one_row(tmp_path: Path) -> None:
    rows = [{"text": f"row {i}", "label": label} for i, label in enumerate(["a"] * 53 + ["b"] * 31 + ["c"] * 16)]
    prepared = prepare(recipe(write_csv(tmp_path / "s.csv", rows), split=(0.7, 0.2, 0.1), seed=3))
    for name, fraction in (("train", 0.7), ("validation", 0.2), ("test", 0.1)):
        labels = prepared.splits[name]["label"]
        for label, total in (("a", 53), ("b", 31), ("c", 16)):
            assert abs(labels.count(label) - fraction * total) <= 1, (name, label)
    assert sum(len(part) for part in prepared.splits.values()) == 100
    seen = [text for part in prepared.splits.values() for text in part["text"]]
    assert len(set(seen)) == 100  # no row in two splits
    # Same seed, same rows; another seed, other rows.
    assert split_indices(["x"] * 20, 20, (0.5, 0.5, 0), 1) == split_indices(["x"] * 20, 20, (0.5, 0.5, 0), 1)
    assert split_indices(None, 20, (0.5, 0.5, 0), 1) != split_indices(None, 20, (0.5, 0.5, 0), 2)


SENTENCES = ["I am happy with this great product", "the movie was long and the ending was sad",
             "quick delivery and a very friendly seller", "the food tasted bad and cold"]


def test_augmentation_keeps_labels_and_makes_exactly_the_copies_asked(tmp_path: Path) -> None:
    rows = [{"text": text, "label": label, "id": str(i)} for i, (text, label) in
            enumerate(zip(SENTENCES, ["pos", "neg", "pos", "neg"]))]
    methods = ("delete", "swap", "insert", "synonym")
    prepared = prepare(recipe(write_csv(tmp_path / "aug.csv", rows), augment=methods, copies=3, rate=0.3, seed=5))
    frame = prepared.splits["data"].to_pandas()
    assert len(frame) == 4 + 4 * 3 * len(methods)
    assert list(frame["augmented"][:4]) == [""] * 4
    for method in methods:
        made = frame[frame["augmented"] == method]
        assert len(made) == 12
        for row in rows:  # each original's copies carry its label and its other columns
            copies = made[made["id"] == row["id"]]
            assert len(copies) == 3 and set(copies["label"]) == {row["label"]}
    changed = frame[(frame["augmented"] != "") & ~frame["text"].isin(SENTENCES)]
    assert len(changed) >= 40  # nearly every copy really differs from its original
    again = prepare(recipe(write_csv(tmp_path / "aug.csv", rows), augment=methods, copies=3, rate=0.3, seed=5))
    assert again.splits["data"].to_pandas().equals(frame)  # same seed, same rows
    other = prepare(recipe(write_csv(tmp_path / "aug.csv", rows), augment=methods, copies=3, rate=0.3, seed=6))
    assert not other.splits["data"].to_pandas().equals(frame)


def test_synonym_replacement_uses_real_wordnet_offline(tmp_path: Path) -> None:
    from backend.data.augment import word_augmenter
    from backend.data.wordnet import synonyms

    assert "glad" in synonyms("happy")
    make = word_augmenter("synonym", 1.0)
    import random

    random.seed(0)
    outputs = {make("happy") for _ in range(30)}
    assert outputs <= {"felicitous", "glad", "well chosen"} and "glad" in outputs


def test_paraphrase_runs_through_a_registry_chat_model(tmp_path: Path, registry) -> None:
    rows = [{"text": text, "label": label} for text, label in zip(SENTENCES[:2], ["pos", "neg"])]
    args = dict(augment=("paraphrase",), copies=2, paraphrase_model="tiny-chat", seed=1,
                paraphrase_prompt="Say it differently: {text}")
    prepared = prepare(recipe(write_csv(tmp_path / "p.csv", rows), **args), registry)
    frame = prepared.splits["data"].to_pandas()
    made = frame[frame["augmented"] == "paraphrase"]
    assert len(made) == 4 and list(made["label"]) == ["pos", "pos", "neg", "neg"]
    assert all(text and text not in SENTENCES for text in made["text"])  # the model's (gibberish) words
    assert registry.load_count("tiny-chat") == 1


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    unreadable = tmp_path / "bad.csv"
    unreadable.write_bytes(b"text\n\xff\xfe\xfa broken\n")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        prepare(recipe(unreadable))
    good = write_csv(tmp_path / "good.csv", CRAFTED)
    with pytest.raises(InvalidInputError, match="there is no column 'body'.*'text', 'label'"):
        prepare(recipe(good).with_changes(text_column="body"))
    with pytest.raises(InvalidInputError, match=r"rate \(--rate\): must be a number from 0 to 1, got 1.5"):
        prepare(recipe(good, augment=("swap",), rate=1.5))
    with pytest.raises(InvalidInputError, match="every row was dropped"):
        prepare(recipe(good, clean=("length",), min_chars=1000))


def test_hub_id_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InvalidInputError, match="cannot be reached offline"):
        prepare(Recipe(DataSource(hub_id="nobody/no-such-dataset", split="train"), "text"))


def test_saved_datasets_are_listed_and_nothing_is_half_written(tmp_path: Path, crafted: Path) -> None:
    prepared = prepare(recipe(crafted, clean=("normalize", "empty"), split=(0.5, 0.5, 0)))
    info = save_dataset(prepared.splits, prepared.card, "reviews-v1", "alice", "csv", root=tmp_path)
    assert [d.name for d in list_datasets("alice", root=tmp_path)] == ["reviews-v1"]
    assert list_datasets("bob", root=tmp_path) == []
    train = dataset_path("alice", "reviews-v1", root=tmp_path)
    assert train == info.files["train"] and len(pd.read_csv(train)) == info.rows["train"]
    card = json.loads((info.folder / "card.json").read_text())
    assert card["source"]["file"] == "crafted.csv" and card["reproduce"].startswith("python app.py data")
    assert [step["step"] for step in card["steps"]] == ["load", "normalize", "empty", "split"]
    with pytest.raises(InvalidInputError, match="a dataset named 'reviews-v1' exists already"):
        save_dataset(prepared.splits, prepared.card, "reviews-v1", "alice", root=tmp_path)
    with pytest.raises(InvalidInputError, match="not a valid dataset name"):
        save_dataset(prepared.splits, prepared.card, "../escape", "alice", root=tmp_path)
    # A table that cannot be written (a column of Python objects) leaves no folder behind, not even a hidden one.
    out = tmp_path / "broken"
    with pytest.raises(Exception):
        write_splits({"data": pd.DataFrame({"x": [object()]})}, {}, out, "parquet")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".broken")]
