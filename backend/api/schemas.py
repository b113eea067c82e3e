"""Pydantic models of the request bodies: `ChatCompletionRequest` and `CompletionRequest`.

Each field is checked by a validator that says what is wrong in plain words (`invalid(...)`), so the 400 reads
"temperature: must be a number, got 'hot'" with `param: temperature`, as OpenAI's does. Fields clients send that
this server has no use for (`user`, `metadata`, ...) are ignored; fields whose meaning it cannot honour are
refused by name rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, field_validator, model_validator

from backend.api.errors import API_NAMES, invalid
from backend.api.messages import ChatMessage, Tool
from backend.core.json_types import JSONObject
from backend.core.types import GenerationParams, normalise_stop


MAX_PROMPTS = 64  # per /v1/completions request (lm-evaluation-harness sends --batch_size of them)
MAX_LOGPROBS = 20  # as vLLM
MAX_N = 8  # choices per chat request: each is a generation of its own


def _whole(value: object) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise invalid(f"must be a whole number, got {value!r}")
    return int(value)


def _real(value: object) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"must be a number, got {value!r}")
    return float(value)


def _flag(value: object) -> bool:
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
    def _object(cls, value: object) -> object:  # handed on to pydantic's own validation
        if not isinstance(value, dict):
            raise invalid("must be an object")
        return value


class _Sampling(BaseModel):
    """The fields both completion APIs share: model, sampling, stop, stream."""

    model_config = ConfigDict(extra="ignore", validate_default=True, protected_namespaces=())

    # `model`, `stop` and `logit_bias` are checked and given their types by their validators below, the default
    # included (a missing model is named; a missing stop or bias is none).
    model: str = Field(None, validate_default=True)
    stream: Flag = False
    stream_options: Optional[StreamOptions] = None
    max_tokens: Whole = None
    max_completion_tokens: Whole = None
    temperature: Real = None
    top_p: Real = None
    top_k: Whole = None  # an extension, as in vLLM
    repetition_penalty: Real = None  # an extension, as in vLLM
    seed: Whole = None
    stop: tuple[str, ...] = Field(None, validate_default=True)
    n: Whole = None
    presence_penalty: Real = None
    frequency_penalty: Real = None
    logit_bias: tuple[tuple[int, float], ...] = Field(None, validate_default=True)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise invalid("required; give a model id from GET /v1/models")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, value: object) -> tuple[str, ...]:
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

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _logit_bias(cls, value: object) -> tuple[tuple[int, float], ...]:
        if value is None:
            return ()
        if not isinstance(value, dict) or not all(isinstance(key, str) and key.strip().isdigit() for key in value):
            raise invalid('must be an object mapping token ids to biases, e.g. {"50256": -100}')
        for key, bias in value.items():
            if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
                raise invalid(f"must be a number from -100 to 100, got {bias!r}", suffix=f"[{key}]")
        return tuple(sorted((int(key), float(bias)) for key, bias in value.items()))

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
                                       seed=self.seed, stop=self.stop, presence_penalty=self.presence_penalty,
                                       frequency_penalty=self.frequency_penalty, logit_bias=self.logit_bias or None)


def _refused(why: str) -> BeforeValidator:
    """A validator refusing any value but 'not given' for a field whose meaning this server cannot honour."""
    def check(value: object) -> None:
        if value not in (None, [], "none", False):
            raise invalid(f"{why} by this server")
        return None
    return BeforeValidator(check)


# ------------------------------------------------------------------------------------------ chat


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: Optional[list[ChatMessage]] = None
    logprobs: Flag = False
    top_logprobs: Whole = None
    response_format: Optional[dict[str, JsonValue]] = None  # the JSON Schema the reply follows (see the validator)
    tools: Optional[list[Tool]] = None
    tool_choice: Optional[str] = None  # 'auto', 'none', 'required' or the name of the function to call
    parallel_tool_calls: JsonValue = None  # accepted: at most one call is forced; `auto` parses every call written
    functions: Annotated[None, _refused("the legacy functions field is not supported (use tools)")] = None
    function_call: Annotated[None, _refused("the legacy function_call field is not supported (use tool_choice)")] = None
    audio: Annotated[None, _refused("audio output is not supported")] = None

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: object) -> object:  # handed on to pydantic's own validation
        if not isinstance(value, list) or not value:
            raise invalid("required; give a non-empty list of {'role', 'content'} objects")
        return value

    @field_validator("n")
    @classmethod
    def _n(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and not 1 <= value <= MAX_N:
            raise invalid(f"must be between 1 and {MAX_N}, got {value}")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and not 0 <= value <= MAX_LOGPROBS:
            raise invalid(f"must be between 0 and {MAX_LOGPROBS}, got {value}")
        return value

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> "ChatCompletionRequest":
        if self.top_logprobs and not self.logprobs:
            raise invalid("needs logprobs: true", where="top_logprobs", param="top_logprobs")
        return self

    def params(self, defaults: GenerationParams) -> GenerationParams:
        """As for completions; `logprobs` asks the decode step for each token's alternatives. The grammar of
        `response_format` is built by the route, off the event loop (backend/api/grammar.py)."""
        params = _Sampling.params(self, defaults)
        if self.logprobs:
            params = params.with_overrides(top_alternatives=max(1, self.top_logprobs or 0))
        return params

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def plain(self) -> bool:
        """One choice without logprobs: the single-stream path."""
        return self.choices == 1 and not self.logprobs and not self.uses_tools

    @field_validator("response_format", mode="before")
    @classmethod
    def _response_format(cls, value: object) -> Optional[JSONObject]:
        """None (free text) or the JSON Schema the reply must follow ({} for json_object: any object)."""
        if value is None:
            return None
        if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
            raise invalid("give {'type': 'text'}, {'type': 'json_object'} or {'type': 'json_schema', "
                          "'json_schema': {'name': ..., 'schema': {...}}}")
        if value["type"] == "text":
            return None
        if value["type"] == "json_object":
            return {"type": "object"}
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise invalid("required: a JSON Schema object", suffix=".json_schema.schema")
        return spec["schema"]

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, value: object) -> Optional[str]:
        """'auto' (the default), 'none', 'required', or {'type': 'function', 'function': {'name': ...}}."""
        if value is None or (isinstance(value, str) and value in ("auto", "none", "required")):
            return value
        if isinstance(value, dict) and isinstance((value.get("function") or {}).get("name"), str):
            return value["function"]["name"]
        raise invalid("give 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}")

    @model_validator(mode="after")
    def _ends_with_user(self) -> "ChatCompletionRequest":
        last = len(self.messages or []) - 1
        if self.messages and self.messages[-1].role not in ("user", "tool"):
            raise invalid("the last message must come from the user (or be a tool's result)",
                          where=f"messages[{last}]", param="messages")
        names = [tool.name for tool in self.tools or []]
        if self.tool_choice not in (None, "auto", "none", "required") and self.tool_choice not in names:
            raise invalid(f"names {self.tool_choice!r}, which is not one of the tools ({', '.join(names) or 'none'})",
                          where="tool_choice", param="tool_choice")
        if self.tool_choice == "required" and not names:
            raise invalid("'required' needs tools", where="tool_choice", param="tool_choice")
        if self.uses_tools and self.response_format is not None:
            raise invalid("cannot be combined with tools", where="response_format", param="response_format")
        return self

    @property
    def uses_tools(self) -> bool:
        """Tools on offer, or tool calls / results in the history: the template renders them (tools.py)."""
        return bool(self.tools) or any(m.role == "tool" or m.tool_calls for m in self.messages or [])

    @property
    def forced_tool(self) -> Optional[str]:
        """'*' when any tool must be called (required), a tool's name when that one must, else None."""
        if not self.tools or self.tool_choice in (None, "auto", "none"):
            return None
        return "*" if self.tool_choice == "required" else self.tool_choice

    def conversation(self) -> tuple[str, list[dict[str, str]]]:
        """(the last user message, everything before it)."""
        assert self.messages
        past = [{"role": m.role, "content": m.content} for m in self.messages[:-1]]
        return self.messages[-1].content, past


# ------------------------------------------------------------------------------------------ text


class CompletionRequest(_Sampling):
    """POST /v1/completions (the legacy text-completion API): one or several prompts, each a string or token ids,
    with vLLM's `echo` / `logprobs` / `max_tokens: 0` (how lm-evaluation-harness scores log-likelihoods)."""

    prompt: list[Union[str, list[int]]] = Field(None, validate_default=True)  # see `_prompt`: None is refused
    echo: Flag = False
    suffix: Annotated[None, _refused("insertion (text after the completion) is not supported")] = None
    best_of: Whole = None
    logprobs: Whole = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: object) -> list[Union[str, list[int]]]:
        """A string, token ids, or a list of either (one choice per prompt, in order)."""
        if value is None:
            raise invalid("required; give the text to complete")
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not value:
            raise invalid("must be a string, a list of strings, a list of token ids or a list of such lists")
        if all(_is_token_id(item) for item in value):
            return [list(value)]
        if len(value) > MAX_PROMPTS:
            raise invalid(f"at most {MAX_PROMPTS} prompts per request, got {len(value)}; split the batch")
        prompts: list[Union[str, list[int]]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                prompts.append(item)
            elif isinstance(item, list) and item and all(_is_token_id(token) for token in item):
                prompts.append(list(item))
            else:
                raise invalid("must be a string or a non-empty list of token ids (whole numbers)",
                              suffix=f"[{index}]")
        return prompts

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, value: Optional[int]) -> Optional[int]:
        if value not in (None, 1):
            raise invalid("only best_of=1 is supported")
        return value

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and not 0 <= value <= MAX_LOGPROBS:
            raise invalid(f"must be between 0 and {MAX_LOGPROBS}, got {value}")
        return value

    @property
    def new_tokens(self) -> Optional[int]:
        """max_tokens as sent (None: the model's default); 0 generates nothing (echo scores the prompt)."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def params(self, defaults: GenerationParams) -> GenerationParams:
        """As for chat; `max_tokens: 0` keeps the default (nothing is generated), and `logprobs` asks the decode
        step for each token's alternatives (Generate's probabilities view: the same computation)."""
        request = self
        if self.new_tokens == 0:
            request = self.model_copy(update={"max_tokens": None, "max_completion_tokens": None})
        params = _Sampling.params(request, defaults)
        if self.logprobs is not None:
            params = params.with_overrides(top_alternatives=max(1, self.logprobs))
        return params

    @property
    def plain(self) -> bool:
        """One string prompt and nothing token-level: the streaming path the Chat tab's engine uses as is."""
        return (len(self.prompt) == 1 and isinstance(self.prompt[0], str) and not self.echo
                and self.logprobs is None and self.new_tokens != 0)


def _is_token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
