"""The one check on a text a person typed (a chat message, a prompt, a task's input): text, not blank, within the
size limit, no NUL. Here, below the engines and tasks, so that a task module checks its inputs the way a chat
message is checked without reaching up to the services (backend/services/generation.py re-exports both names).
"""

from __future__ import annotations

from typing import Optional

from backend.core.error_codes import refuse_as

MAX_MESSAGE_CHARS = 100_000  # a single message or prompt; far beyond any context the shipped models have


def check_text(field: str, text: object, allow_empty: bool = False, shown: Optional[str] = None,
               allow_nul: bool = False, **where: object) -> None:
    """Refuses what is not text, blank text (unless `allow_empty`), text over the size limit and a NUL (unless
    `allow_nul`: text the app itself may have given, /detokenize's); the message names the field as `shown`
    ("history item 2") or by its name, `where` goes to the error's params (item=2)."""
    if not isinstance(text, str):
        raise refuse_as("not_text_type", field, {"got": type(text).__name__, **where}, shown=shown)
    if not allow_empty and not text.strip():
        raise refuse_as("empty", field, where, shown=shown)
    if len(text) > MAX_MESSAGE_CHARS:
        raise refuse_as("text_too_long", field, {"count": len(text), "limit": MAX_MESSAGE_CHARS, **where}, shown=shown)
    if "\x00" in text and not allow_nul:
        raise refuse_as("nul", field, where, shown=shown)
