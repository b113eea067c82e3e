"""Rated chat replies, and the datasets made from them: SFT (`messages`), preference (chosen / rejected) and
regression test cases that Evaluate runs.

A rating is one JSON line in `user_dir("feedback", user)/ratings.jsonl`: the model, the conversation up to and
including the rated assistant reply, and "up" / "down" (or None: the rating was taken back). The same reply rated
again replaces its earlier rating (the last line for a reply wins), so the file is an append-only log.

Bounds per user (40 ratings of ~1 MB each were all accepted and the file grew to 38 MB): one rating's line is at
most `MAX_RATING_BYTES`, a user keeps at most `MAX_USER_RATINGS` current ratings, and the file at most
`MAX_USER_FEEDBACK_BYTES`; when an append would pass that, the log is first compacted (the last line per reply,
taken-back ones dropped) and the rating refused only if it still does not fit. Taking a rating back always works.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, TypedDict

from backend.data.keyed_log import LogBounds, append_line, latest_entries, log_line
from backend.data.store import DatasetInfo, check_name, list_datasets, now, save_dataset
from backend.core.error_codes import refuse
from backend.core.types import InvalidInputError
from backend.guard.user_space import user_dir

RATINGS_FILE = "ratings.jsonl"
RATINGS = ("up", "down")
MAX_CONVERSATION_MESSAGES = 1_000
MAX_CONVERSATION_CHARS = 1_000_000
MAX_RATING_BYTES = 256 * 1024  # one rated conversation as stored (a long chat: rate part of it with `index`)
MAX_USER_RATINGS = 1_000
MAX_USER_FEEDBACK_BYTES = 16 * 1024 * 1024
_lock = threading.Lock()  # appends from concurrent requests of one server stay whole lines

Conversation = list[dict[str, str]]  # [{"role": ..., "content": ...}], as `clean_conversation` returns it


class RatingEntry(TypedDict):
    """One line of ratings.jsonl."""

    key: str
    time: str
    model: str
    rating: Optional[str]  # None: taken back
    conversation: Conversation  # empty when taken back


class SFTRow(TypedDict):
    messages: Conversation
    model: str


class PreferenceRow(TypedDict):
    """A row of a preference dataset: TRL's conversational format, which the DPO recipe reads."""

    prompt: Conversation
    chosen: Conversation
    rejected: Conversation
    chosen_model: str
    rejected_model: str


@dataclass(frozen=True)
class Rating:
    key: str
    model: str
    rating: str  # "up" or "down"
    conversation: list[dict[str, str]]  # ends with the rated assistant reply
    time: str = ""

    @property
    def prompt(self) -> list[dict[str, str]]:
        return self.conversation[:-1]

    @property
    def reply(self) -> str:
        return self.conversation[-1]["content"]


def clean_conversation(messages: Sequence[object], index: Optional[int] = None) -> Conversation:
    """[{role, content}] text messages up to the assistant reply at `index` (default: the last message)."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidInputError("messages: a non-empty list of {'role': ..., 'content': ...}", field="messages")
    if len(messages) > MAX_CONVERSATION_MESSAGES:
        raise InvalidInputError(f"messages: at most {MAX_CONVERSATION_MESSAGES} messages", field="messages")
    index = len(messages) - 1 if index is None else index
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(messages):
        raise InvalidInputError(f"index: must point at a message (0..{len(messages) - 1}), got {index!r}",
                                field="index")
    out = []
    for number, message in enumerate(messages[: index + 1]):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise InvalidInputError(f"messages[{number}]: needs a role of system, user or assistant")
        out.append({"role": message["role"], "content": _text(message.get("content"))})
    if out[-1]["role"] != "assistant":
        raise InvalidInputError(f"index: message {index} is a {out[-1]['role']} message; rate an assistant reply",
                                field="index")
    if sum(len(m["content"]) for m in out) > MAX_CONVERSATION_CHARS:
        raise InvalidInputError(f"messages: more than {MAX_CONVERSATION_CHARS:,} characters", field="messages")
    return out


def record_rating(username: Optional[str], model: Optional[str], messages: Sequence[object], rating: Optional[str],
                  index: Optional[int] = None, root: Optional[Path] = None) -> Rating:
    """Stores (or, with rating None, takes back) a thumbs up / down on the assistant reply at `index`."""
    if rating is not None and rating not in RATINGS:
        raise InvalidInputError(f"rating: 'up', 'down' or null, got {rating!r}", field="rating")
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model: the id of the model that wrote the reply", field="model")
    conversation = clean_conversation(messages, index)
    key = hashlib.sha256(json.dumps([model, conversation], sort_keys=True).encode("utf-8")).hexdigest()[:32]
    # A taken-back rating needs only its key: it is never read back.
    entry: RatingEntry = {"key": key, "time": now(), "model": model, "rating": rating,
                          "conversation": conversation if rating else []}
    line = log_line(entry, limit=MAX_RATING_BYTES, code="rating_too_large", field="messages")
    path = user_dir("feedback", username, root) / RATINGS_FILE
    # Taking a rating back always works: only a new rating is checked against the bounds.
    append_line(path, key, line, _bounds(), _lock, check_room=rating is not None)
    return Rating(key, model, rating or "", conversation, entry["time"])


def _bounds() -> LogBounds:
    """A user's ratings log bounds: current ratings (taken-back ones neither count nor survive compaction)."""
    return LogBounds("feedback", MAX_USER_RATINGS, "ratings_count", MAX_USER_FEEDBACK_BYTES, "ratings_bytes",
                     current=lambda entry: entry.get("rating") in RATINGS)


def load_ratings(username: Optional[str], model: Optional[str] = None, root: Optional[Path] = None) -> list[Rating]:
    """The user's current ratings (the last one per reply; taken-back ones left out), oldest first."""
    latest = latest_entries(user_dir("feedback", username, root, create=False) / RATINGS_FILE)
    return [Rating(str(e["key"]), str(e["model"]), str(e["rating"]), stored_conversation(e["conversation"]),
                   str(e.get("time", "")))
            for e in latest.values() if e.get("rating") in RATINGS and (model is None or e["model"] == model)]


def stored_conversation(value: object) -> Conversation:
    """A conversation as a log line holds it (written by `clean_conversation`); TypeError for another shape."""
    if not isinstance(value, list) or not all(isinstance(message, dict) for message in value):
        raise TypeError("a conversation is a list of {role, content} messages")
    return [{"role": str(message["role"]), "content": str(message["content"])} for message in value]


def sft_rows(ratings: Sequence[Rating]) -> list[SFTRow]:
    """One `messages` row per reply rated up: the conversation up to and including that reply."""
    return [{"messages": r.conversation, "model": r.model} for r in ratings if r.rating == "up"]


def preference_rows(ratings: Sequence[Rating]) -> list[PreferenceRow]:
    """chosen / rejected pairs (TRL's conversational format) from replies to the same conversation rated up and
    down (Retry gives another reply to the same prompt)."""
    by_prompt: dict[str, dict[str, list[Rating]]] = {}
    for rating in ratings:
        key = json.dumps(rating.prompt, sort_keys=True)
        by_prompt.setdefault(key, {"up": [], "down": []})[rating.rating].append(rating)
    rows: list[PreferenceRow] = []
    for group in by_prompt.values():
        for good in group["up"]:
            for bad in group["down"]:
                rows.append({"prompt": good.prompt, "chosen": [good.conversation[-1]],
                             "rejected": [bad.conversation[-1]], "chosen_model": good.model,
                             "rejected_model": bad.model})
    return rows


def save_feedback_dataset(username: Optional[str], name: str, kind: str, model: Optional[str] = None,
                          root: Optional[Path] = None) -> DatasetInfo:
    """Builds an SFT ("sft") or preference ("preference") dataset from the user's ratings and saves it."""
    import pandas as pd

    ratings = load_ratings(username, model, root)
    rows: list[SFTRow] | list[PreferenceRow]
    if kind == "sft":
        rows = sft_rows(ratings)
        if not rows:
            raise refuse("nothing_rated", "feedback")
    elif kind == "preference":
        rows = preference_rows(ratings)
        if not rows:
            raise InvalidInputError("feedback: a preference pair needs one reply rated up and another reply to the "
                                    "same conversation rated down (use Retry in Chat, then rate both)",
        field="feedback")
    else:
        raise InvalidInputError(f"kind: 'sft' or 'preference', got {kind!r}", field="kind")
    card = {"kind": kind, "created": now(), "columns": list(rows[0]),
            "source": {"feedback": RATINGS_FILE, "ratings": len(ratings), "model": model},
            "steps": [{"step": "load", "detail": f"{len(ratings)} rated replies", "rows_after": len(ratings)},
                      {"step": f"build:{kind}", "rows_after": len(rows)}]}
    return save_dataset({"train": pd.DataFrame(rows)}, card, name, username, "jsonl", root=root)


def read_conversation_file(path: str | Path, max_bytes: int = 5 * 1024 * 1024) -> list[dict[str, str]]:
    """The messages of a Chat export (`{"messages": [...], "system_prompt": ...}`) or a plain JSON message list;
    the export's system prompt comes first."""
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise InvalidInputError(f"file: '{path.name}' is over {max_bytes // 1024**2} MB", field="file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InvalidInputError(f"file: '{path.name}' is not a readable JSON chat export ({error})",
                                field="file") from None
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError(f"file: '{path.name}' has no 'messages' list (export a conversation from Chat)",
                                field="file")
    system = data.get("system_prompt") if isinstance(data, dict) else None
    if system and not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
               default=None)
    if last is None:
        raise InvalidInputError(f"file: '{path.name}' has no assistant reply to learn from", field="file")
    return clean_conversation(messages, last)


def save_conversations_dataset(username: Optional[str], name: str, paths: Sequence[str | Path],
                               root: Optional[Path] = None) -> DatasetInfo:
    """An SFT dataset (`messages`) with one row per exported / imported conversation, in one step."""
    import pandas as pd

    if not paths:
        raise InvalidInputError("files: upload one or more conversation exports (.json)", field="files")
    rows = [{"messages": read_conversation_file(path)} for path in paths]
    card = {"kind": "sft", "created": now(), "columns": ["messages"],
            "source": {"conversations": [Path(path).name for path in paths]},
            "steps": [{"step": "load", "detail": f"{len(paths)} conversation file(s)", "rows_after": len(rows)},
                      {"step": "build:sft", "rows_after": len(rows)}]}
    return save_dataset({"train": pd.DataFrame(rows)}, card, name, username, "jsonl", root=root)


def save_test_case(username: Optional[str], suite: str, messages: Sequence[object], expected: Optional[str] = None,
                   index: Optional[int] = None, model: str = "", root: Optional[Path] = None) -> DatasetInfo:
    """Adds a chat turn to the regression suite `suite` (a dataset with `input` and `reference` columns, which
    Evaluate runs as a generation task): the input is the last user message before the reply, the expected
    answer `expected` or else the reply itself."""
    import pandas as pd

    suite = check_name(suite)
    conversation = clean_conversation(messages, index)
    users = [m for m in conversation[:-1] if m["role"] == "user"]
    if not users:
        raise InvalidInputError("messages: there is no user message before this reply", field="messages")
    reference = conversation[-1]["content"] if expected is None or not expected.strip() else expected
    row = {"input": users[-1]["content"], "reference": reference, "context": json.dumps(conversation[:-2]),
           "model": model}
    existing = [info for info in list_datasets(username, root) if info.name == suite]
    rows = []
    if existing:
        if existing[0].kind != "test-cases":
            raise InvalidInputError(f"suite: '{suite}' is a {existing[0].kind} dataset, not a test suite",
                                    field="suite")
        rows = pd.read_json(existing[0].files["data"], lines=True, dtype=False).to_dict("records")
    rows.append(row)
    card = {"kind": "test-cases", "created": now(), "columns": list(row), "source": {"chat": "saved turns"},
            "task": "generation", "input_column": "input", "reference_column": "reference",
            "steps": [{"step": "test-case", "rows_after": len(rows)}]}
    return save_dataset({"data": pd.DataFrame(rows)}, card, suite, username, "jsonl", overwrite=True, root=root)


def _text(content: object) -> str:
    """Gradio's browser sends content as a list of parts; everything else as a plain string."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return "" if content is None else str(content)
