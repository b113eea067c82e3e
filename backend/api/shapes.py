"""OpenAI-shaped chunks and responses for one request, in the chat or the text-completion shape."""

from __future__ import annotations

import time
import uuid
from typing import Literal, Optional, Sequence

from backend.core.json_types import JSONOutput, JSONOutputObject
from backend.core.types import Final

Kind = Literal["chat", "text"]


class Completion:
    """Builds the chunks of a stream and the body of a plain response for one completion request."""

    def __init__(self, kind: Kind, model: str, include_usage: bool = False) -> None:
        self.kind = kind
        self.model = model
        self.include_usage = include_usage
        self.is_chat = kind == "chat"
        self.id = f"{'chatcmpl' if self.is_chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    @property
    def input_field(self) -> str:
        """The API field that carries the input, for errors about it (too long, empty, ...)."""
        return "messages" if self.is_chat else "prompt"

    def _envelope(self, kind: str, choices: Sequence[JSONOutput], **extra: JSONOutput) -> JSONOutputObject:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": choices, **extra}

    def opening(self) -> Optional[JSONOutputObject]:
        """The chunk before any text (chat: the assistant role); text completions have none."""
        return self.chunk("", role=True) if self.is_chat else None

    def chunk(self, text: str, finish: Optional[str] = None, role: bool = False,
              **extra: JSONOutput) -> JSONOutputObject:
        """A streamed piece of text (empty with `finish`: the closing chunk)."""
        if not self.is_chat:
            return self._envelope("text_completion", [{"index": 0, "text": text, "logprobs": None,
                                                       "finish_reason": finish}], **extra)
        delta: dict[str, str] = {}
        if role:
            delta = {"role": "assistant", "content": text}
        elif text:
            delta = {"content": text}
        return self._envelope("chat.completion.chunk", [{"index": 0, "delta": delta, "logprobs": None,
                                                         "finish_reason": finish}], **extra)

    def closing(self, final: Final) -> JSONOutputObject:
        """The last chunk with text choices: the finish reason and the workbench's statistics."""
        return self.chunk("", openai_finish(final), workbench=final.stats.to_dict())

    def usage_chunk(self, final: Final) -> JSONOutputObject:
        """stream_options.include_usage: one last chunk with no choices and the token counts."""
        kind = "chat.completion.chunk" if self.is_chat else "text_completion"
        return self._envelope(kind, [], usage=usage(final))

    def response(self, final: Final) -> JSONOutputObject:
        choice: JSONOutputObject = {"index": 0}
        if self.is_chat:
            choice["message"] = {"role": "assistant", "content": final.text}
        else:
            choice["text"] = final.text
        choice.update(logprobs=None, finish_reason=openai_finish(final))
        return self._envelope("chat.completion" if self.is_chat else "text_completion", [choice],
                              usage=usage(final), workbench=final.stats.to_dict())


def usage(final: Final) -> dict[str, int]:
    prompt, generated = final.stats.prompt_tokens, final.stats.generated_tokens
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


def openai_finish(final: Final) -> str:
    return "length" if final.stats.finish_reason == "length" else "stop"
