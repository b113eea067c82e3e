"""The OpenAI streaming protocol as the remote engine reads it: server-sent events, chunks of chat or text
completions, usage and finish reasons. Pure parsing: no connection is opened here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator, Optional

import httpx

from backend.core.config import ModelSpec
from backend.core.json_types import JSONObject, json_list, json_object
from backend.engines.remote_transport import error_message, transport_failure
from backend.engines.text_stream import StopMatcher
from backend.core.types import FinishReason, GenerationError


@dataclass
class StreamState:
    """What one attempt has received so far."""

    matcher: StopMatcher
    chunks: int = 0  # chunks that carried text: a lower bound on generated tokens
    usage: Optional[JSONObject] = None
    finish: Optional[str] = None
    done: bool = False

    def take(self, chunk: JSONObject, kind: str) -> str:
        """Records usage / finish_reason from a decoded chunk (`decode_chunk`'s) and returns its text."""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = json_list(chunk.get("choices"))  # decode_chunk checked: a list of objects, or absent
        if not choices:
            return ""
        choice = json_object(choices[0])
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])
        if kind == "chat":
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        if text:
            self.chunks += 1
            return str(text)
        return ""


def sse_data(response: httpx.Response) -> Iterator[str]:
    """The `data` payloads of a server-sent event stream (multi-line data joined; comments and other fields skipped)."""
    lines: list[str] = []
    for line in response.iter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def decode_chunk(data: str, where: str) -> JSONObject:
    """One SSE payload as a dict; a malformed chunk or an error the server streams becomes a GenerationError."""
    try:
        chunk = json.loads(data)
    except ValueError:
        if '"error"' in data:  # some servers build their error JSON by hand and break it on quotes
            raise GenerationError(f"{where}: the server reported an error mid-stream: {data[:300]}") from None
        raise GenerationError(
            f"{where}: malformed data in the stream (not JSON): {data[:120]!r}; is base_url an OpenAI-compatible "
            f"server?"
        ) from None
    if not isinstance(chunk, dict):
        raise GenerationError(f"{where}: malformed chunk in the stream (expected a JSON object): {data[:120]!r}")
    if chunk.get("error"):
        raise GenerationError(f"{where}: the server reported an error mid-stream: {error_message(chunk)}")
    choices = chunk.get("choices")
    if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices)):
        raise GenerationError(f"{where}: malformed chunk in the stream ('choices' is not a list of objects): "
                              f"{data[:120]!r}")
    return chunk


def finish_reason(state: StreamState, generated: int, max_new_tokens: int, notices: list[str]) -> FinishReason:
    if state.matcher.stopped:
        return "stop"
    reason = (state.finish or "").lower()
    if reason in ("length", "max_tokens", "model_length"):
        return "length"
    if reason in ("abort", "cancelled", "canceled"):
        return "cancelled"
    if reason == "content_filter":
        notices.append("the server's content filter ended the reply")
        return "stop"
    if reason in ("stop", "eos", "eos_token", "stop_sequence", "end_turn", "tool_calls", "function_call"):
        return "stop"
    return "length" if generated >= max_new_tokens else "stop"


def usage_int(usage: Optional[JSONObject], key: str) -> Optional[int]:
    value = usage.get(key) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def wrap_stream_errors(events: Iterator[str], where: str, spec: ModelSpec) -> Iterator[str]:
    """Network failures while reading the body, as typed errors (retryable only until text was shown)."""
    try:
        yield from events
    except httpx.HTTPError as error:
        raise transport_failure(error, where, spec) from error
