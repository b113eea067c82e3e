"""Pydantic models of chat messages and tools in requests: `ChatMessage` (with an assistant's `tool_calls` and a
`tool` message's `tool_call_id`), `ToolCall`, `Tool`. Validators raise `invalid(...)` so errors name the field
(`messages[2].tool_calls[0].function.arguments: must be JSON text`).
"""

from __future__ import annotations

import json
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from backend.api.errors import invalid
from backend.core.json_types import JSONObject


class ToolCall(BaseModel):
    """An assistant's call in the history: `{"id", "type": "function", "function": {"name", "arguments"}}`."""

    model_config = ConfigDict(extra="ignore", validate_default=True)  # a missing `function` is refused too
    id: Optional[str] = None
    type: JsonValue = "function"  # not read: the history's calls are all functions
    # {"name", "arguments" (an object)}, checked by `_function`, the default included (a missing one is named).
    # pydantic's JsonValue in fields: it is the same type as JSONValue to mypy, and one pydantic can validate.
    function: dict[str, JsonValue] = Field(None, validate_default=True)

    @field_validator("function", mode="before")
    @classmethod
    def _function(cls, value: object) -> JSONObject:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise invalid("must be {'name': ..., 'arguments': '<JSON text>'}")
        arguments = value.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                raise invalid("arguments must be JSON text", suffix=".arguments") from None
        if not isinstance(arguments, dict):
            raise invalid("arguments must be a JSON object", suffix=".arguments")
        return {"name": value["name"], "arguments": arguments}


class ChatMessage(BaseModel):
    """One message; `developer` is OpenAI's newer name for `system`. Content is text (or text parts); an assistant
    message may carry `tool_calls` instead (content null), and a `tool` message answers one (`tool_call_id`)."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    # Checked and given their types by `_role` / `_content`, the default included (a missing one is named).
    role: str = Field(None, validate_default=True)
    content: str = Field(None, validate_default=True)
    tool_calls: Optional[list[ToolCall]] = None
    tool_call_id: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _object(cls, value: object) -> object:  # handed on to pydantic's own validation
        if not isinstance(value, dict):
            raise invalid("must be an object with 'role' and 'content'")
        if value.get("content") is None and value.get("role") == "assistant" and value.get("tool_calls"):
            return {**value, "content": ""}
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: object) -> str:
        if value == "developer":
            return "system"
        if value in ("system", "user", "assistant", "tool") and isinstance(value, str):
            return value
        raise invalid(f"must be 'system', 'user', 'assistant' or 'tool', not {value!r}")

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: object) -> str:
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

    def for_template(self) -> JSONObject:
        """The message as chat templates take it (tool call arguments as objects)."""
        message: JSONObject = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [{"id": call.id, "type": "function", "function": call.function}
                                     for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


class Tool(BaseModel):
    """`{"type": "function", "function": {"name", "description", "parameters"}}`."""

    model_config = ConfigDict(extra="ignore", validate_default=True)  # a missing `function` is refused too
    type: str = Field("function", validate_default=True)
    # {"name", "description", "parameters"}, checked by `_function` (see ToolCall.function for JsonValue)
    function: dict[str, JsonValue] = Field(None, validate_default=True)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> str:
        if value != "function":
            raise invalid(f"only 'function' tools are supported, not {value!r}")
        return "function"

    @property
    def name(self) -> str:
        """The function's name (`_function` made sure it is a non-empty string)."""
        return str(self.function["name"])

    @field_validator("function", mode="before")
    @classmethod
    def _function(cls, value: object) -> JSONObject:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
            raise invalid("must be {'name': ..., 'description': ..., 'parameters': {JSON Schema}}")
        if value.get("parameters") is not None and not isinstance(value["parameters"], dict):
            raise invalid("must be a JSON Schema object", suffix=".parameters")
        return {key: value[key] for key in ("name", "description", "parameters") if value.get(key) is not None}
