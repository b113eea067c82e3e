"""Generation rows that carry a conversation: the turns before the one being evaluated.

Two shapes of the same thing reach Evaluate:

- a suite saved from Chat (backend/data/feedback.py `save_test_case`): `input` is the last user message,
  `reference` the expected reply, and `context` the conversation before that user message (JSON text of
  [{role, content}], empty for a first turn);
- a `messages` column (the SFT format): the whole conversation, ending with the assistant reply that is the
  reference.

Both become one list of messages per row that goes through the model's chat template. With an input column
mapped (Chat's suites) the conversation is all history: its turns, then the input as the last user message.
Without one (a `messages` column) the conversation holds the evaluated turn itself: an assistant turn that ends
it is the reference turn, cut from the prompt (and the reference when no reference column is mapped), and the
user turn before it is the one answered. A model is never shown the reply it is asked to write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from backend.core.error_codes import refuse
from backend.core.types import InvalidInputError, Message

if TYPE_CHECKING:
    import pandas as pd

# Column names that usually hold a conversation, most likely first (generation only: for question answering a
# `context` column is the passage).
CONVERSATION_HINTS = ("messages", "conversation", "context", "history")
Conversation = list[dict[str, str]]


def parse_conversation(value: object, row: int, column: str) -> Conversation:
    """One cell as [{role, content}] messages: a list (JSONL, Parquet) or its JSON text (CSV, Chat's suites).

    A blank cell is an empty conversation (a first turn). Anything else is refused with the row and column."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise refuse("eval_conversation", "conversation_column", row=row, column=column,
                         reason="not JSON") from None
    if hasattr(value, "tolist") and not isinstance(value, (list, dict)):  # Parquet / Arrow lists come as arrays
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise refuse("eval_conversation", "conversation_column", row=row, column=column,
                     reason="not a list of messages")
    messages = []
    for index, item in enumerate(value):
        try:
            message = Message.from_dict(_plain_content(item), index)
        except InvalidInputError as error:
            raise refuse("eval_conversation", "conversation_column", row=row, column=column,
                         reason=str(error)) from None
        messages.append({"role": message.role, "content": message.content})
    return messages


def _plain_content(item: object) -> object:
    """Gradio's parts ([{"type": "text", "text": ...}]) flattened to text, as Chat's own export does."""
    if isinstance(item, dict) and isinstance(item.get("content"), list):
        text = "".join(part.get("text", "") for part in item["content"] if isinstance(part, dict))
        return {**item, "content": text}
    return item


def split_reference_turn(conversation: Conversation) -> tuple[Conversation, Optional[str]]:
    """(the turns before the reference turn, the reference turn's text): a final assistant turn is the reference."""
    if conversation and conversation[-1]["role"] == "assistant":
        return conversation[:-1], conversation[-1]["content"]
    return conversation, None


def prompt_messages(history: Conversation, user_text: Optional[str]) -> list[Message]:
    """The messages a model is asked with: the history, then `user_text` as the last user turn (when given)."""
    messages = [Message(item["role"], item["content"]) for item in history]  # type: ignore[arg-type]
    if user_text is not None:
        messages.append(Message("user", user_text))
    if not messages or messages[-1].role != "user":
        raise InvalidInputError("conversation: the turn to answer must be a user message (map the input column, or "
                                "end each conversation with the user turn or the reference reply)",
                                field="conversation_column")
    return messages


def last_user_text(conversation: Conversation) -> str:
    """What a results table shows as a conversation's input: its last user message."""
    return next((m["content"] for m in reversed(conversation) if m["role"] == "user"), "")


def guess_conversation_column(columns: Sequence[str]) -> Optional[str]:
    by_lower = {str(column).lower(): str(column) for column in columns}
    return next((by_lower[hint] for hint in CONVERSATION_HINTS if hint in by_lower), None)


@dataclass(frozen=True)
class ConversationExamples:
    """The rows kept from a table with a conversation column, aligned (backend/evaluation/data.py makes them its
    `Examples`)."""

    rows: list[int]
    inputs: list[str]
    references: list[str]
    notices: list[str]
    conversations: list[Conversation]


def conversation_examples(table: "pd.DataFrame", column: str, texts: dict[str, list[str]],
                          limit: Callable[[list[int]], list[int]]) -> ConversationExamples:
    """The examples of a table whose `column` holds conversations (`texts`: the other mapped columns as text).

    A row is kept when it has a reference (its column, else the conversation's final assistant turn) and a turn
    to answer (the input column, else the conversation's final user turn); `limit` then picks the rows."""
    histories, references, inputs = [], [], []
    for row, value in enumerate(table[column].tolist()):
        history, turn = parse_conversation(value, row, column), None
        if "input" not in texts:
            history, turn = split_reference_turn(history)
        histories.append(history)
        references.append(texts["reference"][row] if "reference" in texts else turn or "")
        inputs.append(texts["input"][row] if "input" in texts else last_user_text(history))
    asked = ["input" in texts or bool(h and h[-1]["role"] == "user") for h in histories]
    keep = [row for row in range(len(table)) if references[row].strip() and asked[row] and inputs[row].strip()]
    notices = []
    if len(keep) < len(table):
        notices.append(f"{len(table) - len(keep):,} row(s) without a reference or a user turn to answer were skipped")
    if not keep:
        raise refuse("eval_conversation_empty", "conversation_column", column=column)
    keep = limit(keep)
    return ConversationExamples(rows=keep, inputs=[inputs[row] for row in keep],
                                references=[references[row] for row in keep], notices=notices,
                                conversations=[histories[row] for row in keep])
