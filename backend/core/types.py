"""Plain data that crosses the backend boundary: messages, parameters, stream events, typed errors.

Nothing here imports torch, transformers or gradio, so the UI, a CLI or a script can all use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Mapping, Optional, Sequence, TypedDict, Union, Unpack

from backend.core.error_codes import refuse_as
from backend.core.json_types import JSONOutputObject
from backend.core.errors import (  # noqa: F401 - re-exported: the error classes are part of the shared types
    BusyError,
    ConfigError,
    ContextOverflowError,
    GenerationError,
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedTaskError,
    WorkbenchError,
)

# A registry task: chat, generate, classify, zero_shot, or a pipeline task of backend/tasks/table.py (the table is
# the one list of those, so a new task is one module there; models.yaml's tasks are checked against it).
Task = str
TASKS: tuple[Task, ...] = ("chat", "generate", "classify", "zero_shot",
                           "ner", "question_answering", "fill_mask", "summarize", "translate", "embed")
Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]

# Upper bounds that keep one request from monopolising a shared server; a model's own context is
# checked separately by its engine.
MAX_NEW_TOKENS_LIMIT = 8192
MAX_STOP_SEQUENCES = 8
MAX_LOGIT_BIAS = 300  # as OpenAI


# --------------------------------------------------------------------------------------------- errors
# The classes live in backend/core/errors.py (error_codes builds on them); most callers import them from here.


def _refuse(code: str, field: str, shown: Optional[str] = None, **params: object) -> WorkbenchError:
    return refuse_as(code, field, params, shown=shown)


# ------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    @staticmethod
    def from_dict(data: object, index: int = 0) -> "Message":
        """Builds a message from `{"role": ..., "content": ...}`, with an error naming the bad item."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"history item {index} must be an object with 'role' and 'content'")
        role = data.get("role")
        if role not in ("system", "user", "assistant"):
            raise InvalidInputError(
                f"history item {index}: role must be 'system', 'user' or 'assistant', not {role!r}"
            )
        content = flatten_content(data.get("content"))
        if content is None:
            raise _refuse("item_not_text", "history", item=index)
        return Message(role=role, content=content)


def flatten_content(content: object) -> str | None:
    """Turns Gradio 6 message content (a string or a list of `{"type": "text", "text": ...}` parts) into text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    if isinstance(content, (list, tuple)):
        parts = [flatten_content(part) for part in content]
        texts = [part for part in parts if part is not None]
        return "".join(texts) if len(texts) == len(parts) else None
    return None


class ParamOverrides(TypedDict, total=False):
    """What `GenerationParams.with_overrides` takes: any of its fields, None meaning "keep the current value".
    `stop` may be one string; `logit_bias` OpenAI's `{"token id": bias}` object or (id, bias) pairs."""

    max_new_tokens: Optional[int]
    temperature: Optional[float]
    top_p: Optional[float]
    top_k: Optional[int]
    repetition_penalty: Optional[float]
    seed: Optional[int]
    stop: Union[str, Sequence[str], None]
    top_alternatives: Optional[int]
    presence_penalty: Optional[float]
    frequency_penalty: Optional[float]
    logit_bias: Union[Mapping[str, float], Sequence[tuple[int, float]], None]
    grammar: Optional[str]


@dataclass(frozen=True)
class GenerationParams:
    """Everything that shapes one generation. temperature 0 means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # For the teaching view: how many next-token alternatives to report per generated token (0: none).
    top_alternatives: int = 0
    # OpenAI's penalties on the tokens generated so far (as vLLM): frequency per occurrence, presence once.
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, value added to its logit), OpenAI's logit_bias
    # An llguidance grammar the output must follow (structured output; made by backend/services/structured.py).
    grammar: str | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_overrides(self, **overrides: Unpack[ParamOverrides]) -> "GenerationParams":
        """A copy with the given fields replaced; None values mean 'keep the current value'. The values are
        checked here (`validated`), whatever a caller that read them from a request or a file hands in."""
        clean: dict[str, object] = {key: value for key, value in overrides.items() if value is not None}
        if "stop" in clean:
            clean["stop"] = normalise_stop(clean["stop"])
        if "logit_bias" in clean:
            clean["logit_bias"] = normalise_logit_bias(clean["logit_bias"])
        # A dict read from a request or a file (the UI's transcripts) arrives unchecked: the copy takes the values
        # as they are and `validated()` checks each one's type and range.
        return replace(self, **clean).validated()  # type: ignore[arg-type]

    def validated(self) -> "GenerationParams":
        """Returns self, or raises InvalidInputError naming the field and the allowed range."""
        _check_int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS_LIMIT)
        _check_float("temperature", self.temperature, 0.0, 5.0)
        _check_float("top_p", self.top_p, 0.0, 1.0, low_open=True)
        _check_int("top_k", self.top_k, 0, 100_000)
        _check_float("repetition_penalty", self.repetition_penalty, 0.0, 10.0, low_open=True)
        _check_int("top_alternatives", self.top_alternatives, 0, 20)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_float("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _check_float("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        if len(self.logit_bias) > MAX_LOGIT_BIAS:
            raise InvalidInputError(f"logit_bias: at most {MAX_LOGIT_BIAS} tokens, got {len(self.logit_bias)}",
                                    field="logit_bias")
        for token, bias in self.logit_bias:
            _check_int("logit_bias", token, 0, 10**9, shown=f"logit_bias[{token}]")
            _check_float("logit_bias", bias, -100.0, 100.0, shown=f"logit_bias[{token}]")
        if len(self.stop) > MAX_STOP_SEQUENCES:
            raise _refuse("too_many_stops", "stop", most=MAX_STOP_SEQUENCES, count=len(self.stop))
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidInputError("stop: every stop sequence must be a non-empty string", field="stop")
        return self


def normalise_stop(stop: object) -> tuple[str, ...]:
    """Accepts one string or a list of strings; drops empty entries."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise InvalidInputError("stop: give a list of strings", field="stop")
    return tuple(s for s in stop if s)


def normalise_logit_bias(bias: object) -> tuple[tuple[int, float], ...]:
    """OpenAI's `{"token id": bias}` (ids as strings in JSON) or (id, bias) pairs, as sorted pairs."""
    refusal = InvalidInputError('logit_bias: give an object of token ids and biases, e.g. {"50256": -100}',
                                field="logit_bias")
    if bias is None:
        return ()
    if isinstance(bias, dict):
        pairs = list(bias.items())
    elif isinstance(bias, (list, tuple)):
        pairs = list(bias)
    else:
        raise refusal
    try:
        clean = [(int(str(token)), value) for token, value in pairs]
    except (TypeError, ValueError):
        raise refusal from None
    return tuple(sorted(clean))


def _check_int(name: str, value: object, low: int, high: int, shown: Optional[str] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _refuse("whole_between", name, shown, low=low, high=high, got=value)
    if not low <= value <= high:
        raise _refuse("between", name, shown, low=low, high=high, got=value)


def _check_float(name: str, value: object, low: float, high: float, low_open: bool = False,
                 shown: Optional[str] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _refuse("number_between", name, shown, low=low, high=high, got=value)
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise _refuse("in_range", name, shown, low=low, high=high, range=f"{bracket}{low}, {high}]",
                      got=value)


# --------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class TokenAlternative:
    token: str
    probability: float


@dataclass(frozen=True)
class TokenChoice:
    """One generated token and what else the model was choosing between (the teaching view)."""

    token: str
    probability: float
    alternatives: tuple[TokenAlternative, ...]


@dataclass(frozen=True)
class Delta:
    """A piece of newly generated text; joining all deltas gives the final text."""

    text: str
    choices: tuple[TokenChoice, ...] = ()


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    generated_tokens: int
    time_to_first_token_s: float | None
    tokens_per_second: float | None
    total_s: float
    finish_reason: FinishReason
    dropped_turns: int = 0  # chat turns dropped (oldest first) to fit the context
    max_context: int | None = None
    notices: tuple[str, ...] = ()  # what the user should know: dropped turns, lowered max_new_tokens, ...
    seed: int | None = None  # the seed a sampled reply used, so it can be reproduced
    error: str | None = None

    def to_dict(self) -> JSONOutputObject:
        return {
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "time_to_first_token_s": self.time_to_first_token_s,
            "tokens_per_second": self.tokens_per_second,
            "total_s": self.total_s,
            "finish_reason": self.finish_reason,
            "dropped_turns": self.dropped_turns,
            "max_context": self.max_context,
            "notices": list(self.notices),
            "seed": self.seed,
            "error": self.error,
        }


@dataclass(frozen=True)
class Final:
    """The last event of every stream: the whole text and its statistics."""

    text: str
    stats: GenerationStats


Event = Union[Delta, Final]


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


# --------------------------------------------------------------------------------------------- status


WeightsAvailability = Literal["local", "cached", "download", "unavailable", "remote"]


@dataclass(frozen=True)
class ModelStatus:
    id: str
    name: str
    tasks: tuple[Task, ...]
    backend: str
    state: Literal["unloaded", "loading", "loaded", "failed"]
    weights: WeightsAvailability
    weights_detail: str
    device: str | None = None
    dtype: str | None = None
    parameters: int | None = None
    memory_bytes: int | None = None
    load_time_s: float | None = None
    last_error: str | None = None
    active_requests: int = 0
    generated_tokens_total: int = 0
    max_context: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    owner: str | None = None  # a fine-tuned model's owner (None: everyone's)
    shared: bool = False  # an owned model its owner shared with everyone

    def to_dict(self) -> JSONOutputObject:
        return {
            "id": self.id,
            "name": self.name,
            "tasks": list(self.tasks),
            "backend": self.backend,
            "state": self.state,
            "weights": self.weights,
            "weights_detail": self.weights_detail,
            "device": self.device,
            "dtype": self.dtype,
            "parameters": self.parameters,
            "memory_bytes": self.memory_bytes,
            "load_time_s": self.load_time_s,
            "last_error": self.last_error,
            "active_requests": self.active_requests,
            "generated_tokens_total": self.generated_tokens_total,
            "max_context": self.max_context,
            "notes": list(self.notes),
            "owner": self.owner,
            "shared": self.shared,
        }
