"""Pydantic models of the request bodies: `ChatCompletionRequest` and `CompletionRequest`.

Each field is checked by a validator that says what is wrong in plain words (`invalid(...)`), so the 400 reads
"temperature: must be a number, got 'hot'" with `param: temperature`, as OpenAI's does. Fields clients send that
this server has no use for (`user`, `metadata`, ...) are ignored; fields whose meaning it cannot honour are
refused by name rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

from backend.openai_api.errors import API_NAMES, invalid
from backend.types import GenerationParams, normalise_stop


def _whole(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise invalid(f"must be a whole number, got {value!r}")
    return int(value)


def _real(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"must be a number, got {value!r}")
    return float(value)


def _flag(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid("must be true or false")
    return value


Whole = Annotated[Optional[int], BeforeValidator(_whole)]
Real = Annotated[Optional[float], BeforeValidator(_real)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise invalid("must be an object")
        return value


class _Sampling(BaseModel):
    """The fields both completion APIs share: model, sampling, stop, stream."""

    model_config = ConfigDict(extra="ignore", validate_default=True, protected_namespaces=())

    model: Any = None
    stream: Flag = False
    stream_options: Optional[StreamOptions] = None
    max_tokens: Whole = None
    max_completion_tokens: Whole = None
    temperature: Real = None
    top_p: Real = None
    top_k: Whole = None  # an extension, as in vLLM
    repetition_penalty: Real = None  # an extension, as in vLLM
    seed: Whole = None
    stop: Any = None
    n: Whole = None

    @field_validator("model")
    @classmethod
    def _model(cls, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise invalid("required; give a model id from GET /v1/models")
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid("give a list of strings")
        return normalise_stop(value)

    @field_validator("n")
    @classmethod
    def _n(cls, value: Optional[int]) -> Optional[int]:
        if value not in (None, 1):
            raise invalid("only n=1 is supported")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def api_names(self) -> dict[str, str]:
        """The backend's parameter names as this request called them (max_tokens or max_completion_tokens)."""
        if self.max_completion_tokens is not None:
            return {**API_NAMES, "max_new_tokens": "max_completion_tokens"}
        return API_NAMES

    def params(self, defaults: GenerationParams) -> GenerationParams:
        """`defaults` (the model's) with this request's values; InvalidInputError names a backend field."""
        max_tokens = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        return defaults.with_overrides(max_new_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p,
                                       top_k=self.top_k, repetition_penalty=self.repetition_penalty,
                                       seed=self.seed, stop=self.stop)


def _refused(why: str) -> Any:
    """A validator refusing any value but 'not given' for a field whose meaning this server cannot honour."""
    def check(value: Any) -> Any:
        if value not in (None, [], "none", False):
            raise invalid(f"{why} by this server")
        return None
    return BeforeValidator(check)


# ------------------------------------------------------------------------------------------ chat


class ChatMessage(BaseModel):
    """One message; `developer` is OpenAI's newer name for `system`. Content is text (or text parts)."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    role: Any = None
    content: Any = None

    @model_validator(mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise invalid("must be an object with 'role' and 'content'")
        return value

    @field_validator("role")
    @classmethod
    def _role(cls, value: Any) -> str:
        if value == "developer":
            value = "system"
        if value not in ("system", "user", "assistant"):
            raise invalid(f"must be 'system', 'user' or 'assistant', not {value!r}")
        return value

    @field_validator("content")
    @classmethod
    def _content(cls, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            texts = []
            for index, part in enumerate(value):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise invalid(f"only text parts are supported, got {kind!r}", suffix=f"[{index}]")
                texts.append(part["text"])
            return "".join(texts)
        raise invalid("must be a string or a list of text parts")


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: Optional[list[ChatMessage]] = None
    logprobs: Annotated[Any, _refused("not supported")] = None
    response_format: Any = None
    tools: Annotated[Any, _refused("tool calling is not supported")] = None
    functions: Annotated[Any, _refused("function calling is not supported")] = None
    tool_choice: Annotated[Any, _refused("tool calling is not supported")] = None
    function_call: Annotated[Any, _refused("function calling is not supported")] = None
    audio: Annotated[Any, _refused("audio output is not supported")] = None

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise invalid("required; give a non-empty list of {'role', 'content'} objects")
        return value

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("type") not in (None, "text"):
            raise invalid("only {'type': 'text'} is supported")
        return value

    @model_validator(mode="after")
    def _ends_with_user(self) -> "ChatCompletionRequest":
        if self.messages and self.messages[-1].role != "user":
            raise invalid("the last message must come from the user", where=f"messages[{len(self.messages) - 1}]",
                          param="messages")
        return self

    def conversation(self) -> tuple[str, list[dict[str, str]]]:
        """(the last user message, everything before it)."""
        assert self.messages
        past = [{"role": m.role, "content": m.content} for m in self.messages[:-1]]
        return self.messages[-1].content, past


# ------------------------------------------------------------------------------------------ text


class CompletionRequest(_Sampling):
    """POST /v1/completions (the legacy text-completion API)."""

    prompt: Any = None
    echo: Annotated[Any, _refused("not supported (the completion never includes the prompt)")] = None
    suffix: Annotated[Any, _refused("insertion (text after the completion) is not supported")] = None
    best_of: Whole = None
    logprobs: Any = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Any) -> str:
        """A string, or a list holding exactly one string (OpenAI's batch form, with a batch of one)."""
        if value is None:
            raise invalid("required; give the text to complete")
        if isinstance(value, list):
            if len(value) != 1:
                raise invalid(f"one prompt per request is supported (a string, or a list of one string); "
                              f"got a list of {len(value)}")
            value = value[0]
        if not isinstance(value, str):
            raise invalid("must be a string (token-id prompts are not supported)")
        return value

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, value: Optional[int]) -> Optional[int]:
        if value not in (None, 1):
            raise invalid("only best_of=1 is supported")
        return value

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, value: Any) -> Any:
        if value is not None and value is not False:  # a number, where even 0 asks for some
            raise invalid("not supported by this server")
        return value
