"""Chat export / import: one JSON file with the messages, model, parameters and system prompt.

Pure functions (no Gradio) so the file format is unit-tested on its own. Import is strict and every error says
what is wrong where, because people edit these files by hand.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence

from backend.core.types import GenerationParams, InvalidInputError, Message

FORMAT = "llm-workbench-chat"
VERSION = 1
# Parameters a chat file carries; top_alternatives is a Generate-tab view setting, not part of a chat.
PARAM_FIELDS = tuple(f.name for f in fields(GenerationParams) if f.name != "top_alternatives")
EXPORT_DIR = Path(tempfile.gettempdir()) / "llm-workbench-exports"


@dataclass(frozen=True)
class Transcript:
    messages: tuple[Message, ...]
    model: Optional[str] = None
    system_prompt: str = ""
    params: Optional[GenerationParams] = None

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": self.model,
            "system_prompt": self.system_prompt,
            "parameters": _params_to_dict(self.params) if self.params else None,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
        }
        return json.dumps(data, ensure_ascii=False, indent=2)


def messages_from_history(history: Sequence[Any]) -> tuple[Message, ...]:
    """Chatbot value (dicts whose content may be a list of parts) -> plain messages."""
    return tuple(Message.from_dict(item, index) for index, item in enumerate(history or ()))


def write_export(transcript: Transcript, directory: Path = EXPORT_DIR) -> Path:
    """Writes the transcript to a fresh file (unique name, so concurrent sessions never share one)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"chat-{transcript.model or 'model'}-{stamp}-{uuid.uuid4().hex[:8]}.json"
    path.write_text(transcript.to_json(), encoding="utf-8")
    return path


def read_import(path: str | Path) -> Transcript:
    """Reads an exported chat; raises InvalidInputError naming the file and the problem."""
    name = Path(path).name
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise InvalidInputError(f"{name}: cannot read the file: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name}: not UTF-8 text; export a chat from this app and import that") from None
    return parse_transcript(text, name)


def parse_transcript(text: str, name: str = "chat file") -> Transcript:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{name}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    try:
        return _transcript_from_data(data)
    except InvalidInputError as error:
        raise InvalidInputError(f"{name}: {error}") from None


def _transcript_from_data(data: Any) -> Transcript:
    if isinstance(data, list):  # a bare list of messages is accepted too
        data = {"messages": data}
    if not isinstance(data, dict):
        raise InvalidInputError("expected a JSON object with a 'messages' list")
    if data.get("format", FORMAT) != FORMAT:
        raise InvalidInputError(f"'format' is {data.get('format')!r}, expected {FORMAT!r}")
    version = data.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise InvalidInputError(f"'version' {version!r} is not supported (this app reads version {VERSION})")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list):
        raise InvalidInputError("'messages' must be a list of {\"role\": ..., \"content\": ...} objects")
    messages = [Message.from_dict(item, index) for index, item in enumerate(raw_messages)]
    system_prompt = _optional_text(data, "system_prompt")
    # The chat view has no system bubbles: a leading system message becomes the system prompt.
    if messages and messages[0].role == "system":
        system_prompt = system_prompt or messages[0].content
        messages = messages[1:]
    if any(m.role == "system" for m in messages):
        raise InvalidInputError("only the first message may have role 'system'")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidInputError("'model' must be a model id (text)")
    return Transcript(tuple(messages), model or None, system_prompt, _params_from_dict(data.get("parameters")))


def _optional_text(data: dict[str, Any], key: str) -> str:
    value = data.get(key) or ""
    if not isinstance(value, str):
        raise InvalidInputError(f"'{key}' must be text")
    return value


def _params_to_dict(params: GenerationParams) -> dict[str, Any]:
    values = asdict(params)
    values["stop"] = list(params.stop)
    return {key: values[key] for key in PARAM_FIELDS}


def _params_from_dict(raw: Any) -> Optional[GenerationParams]:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInputError("'parameters' must be an object")
    unknown = sorted(set(raw) - set(PARAM_FIELDS))
    if unknown:
        raise InvalidInputError(f"parameters: unknown field(s) {', '.join(unknown)}; known: {', '.join(PARAM_FIELDS)}")
    try:
        return GenerationParams().with_overrides(**raw)
    except InvalidInputError as error:
        raise InvalidInputError(f"parameters: {error}") from None
