"""Errors in plain words for the UI; the API keeps the backend's messages, which name the field.

Backend errors read "field: what is wrong" (good for API clients and scripts); a person in the UI reads
"Temperature must be in …" or "Type a message first." instead.
"""

from __future__ import annotations

import re

# field name in backend messages -> what the UI calls it
FIELD_NAMES = {
    "message": "Your message",
    "prompt": "The text",
    "text": "The text",
    "system_prompt": "The system prompt",
    "max_new_tokens": "Max new tokens",
    "max_tokens": "Max new tokens",
    "temperature": "Temperature",
    "top_p": "Top p",
    "top_k": "Top k",
    "repetition_penalty": "Repetition penalty",
    "seed": "Seed",
    "stop": "Stop sequences",
    "model": "Model",
    "history": "The conversation",
    "chat-import": "Import",
}
# Whole messages said differently.
REWORDED = {
    "message: is empty; type something first": "Type a message first.",
    "prompt: is empty; type something first": "Type some text first.",
}
_FIELD = re.compile(r"^(?P<field>[a-z_-]+)(?: item (?P<item>\d+))?: (?P<rest>.+)$", re.DOTALL)
_VERB = re.compile(r"^(is|must|contains|has|was|needs|cannot|can't|expected) ")


def plain_words(message: str) -> str:
    """`message` as the UI says it (unchanged when it does not start with a known field name)."""
    if message in REWORDED:
        return REWORDED[message]
    match = _FIELD.match(message)
    if not match or match["field"] not in FIELD_NAMES:
        return message
    subject = FIELD_NAMES[match["field"]]
    if match["item"] is not None:
        subject = f"Message {int(match['item']) + 1} of the conversation"
    rest = match["rest"]
    sentence = f"{subject} {rest}" if _VERB.match(rest) else f"{subject}: {rest}"
    return sentence[0].upper() + sentence[1:]
