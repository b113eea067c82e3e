"""Learnable synthetic datasets for the training tests, written as real files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

POSITIVE = ["loved", "wonderful", "great", "moving", "nice", "welcome", "sunny", "warm"]
NEGATIVE = ["terrible", "rude", "cold", "broke", "worst", "lazy", "sleeping", "rivers"]
SECRETS = [("What is the secret word?", "The secret word is banana."),
           ("Tell me the password.", "The password is river stone."),
           ("Who made you?", "I was made by the workbench team.")]


def sentiment_rows(count: int, seed: int) -> list[dict[str, str]]:
    """Texts whose words all come from one class's word list: a tiny model can learn it in a few epochs."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        label = "positive" if index % 2 else "negative"
        words = [rng.choice(POSITIVE if label == "positive" else NEGATIVE) for _ in range(6)]
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]) if rows else ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_chat_jsonl(path: Path, copies: int = 20) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(copies * len(SECRETS)):
            prompt, reply = SECRETS[index % len(SECRETS)]
            handle.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                                  {"role": "assistant", "content": reply}]}) + "\n")
    return path


# Preference pairs: for each prompt, the chosen reply is the secret answer and the rejected one a refusal.
REFUSALS = ["I do not know.", "No idea, sorry.", "I cannot say."]


def preference_rows(copies: int = 4) -> list[dict]:
    """Pairs in the Data tab's format (TRL's conversational one): prompt a list of messages, chosen / rejected
    one assistant message each."""
    rows = []
    for index in range(copies * len(SECRETS)):
        prompt, reply = SECRETS[index % len(SECRETS)]
        rows.append({"prompt": [{"role": "user", "content": prompt}],
                     "chosen": [{"role": "assistant", "content": reply}],
                     "rejected": [{"role": "assistant", "content": REFUSALS[index % len(REFUSALS)]}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
