"""Structured output: the llguidance grammar of a JSON Schema (OpenAI's `response_format`), checked before any
model is touched. No torch here; the decode step applies the grammar (backend/engines/grammar.py).
"""

from __future__ import annotations

from typing import Any, Optional

from backend.core.types import InvalidInputError

# Compact JSON (no free whitespace between tokens) keeps a weak model from looping on spaces and newlines.
_OPTIONS = {"x-guidance": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}}


def grammar_for_schema(schema: Optional[dict[str, Any]], field: str = "response_format") -> str:
    """The llguidance grammar of a JSON Schema (None: any JSON object), or InvalidInputError naming `field`."""
    import llguidance

    schema = schema if schema is not None else {"type": "object"}
    if not isinstance(schema, dict):
        raise InvalidInputError(f"{field}: the schema must be a JSON object", field=field)
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema({**schema, **_OPTIONS})
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    except Exception as error:  # noqa: BLE001 - the library's words name the schema's problem
        raise InvalidInputError(f"{field}: not a usable JSON Schema: {error}", field=field) from None
    if is_error:
        raise InvalidInputError(f"{field}: this JSON Schema is not supported: {'; '.join(map(str, messages))}",
                                field=field)
    return grammar


def grammar_for_tool_call(tools: list[dict[str, Any]], name: Optional[str] = None) -> str:
    """A grammar for exactly one call, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the Hermes
    format, backend/api/tools.py), of the tool `name` or any of `tools`: tool_choice 'required' / named."""
    import json

    import llguidance

    chosen = [tool for tool in tools if name is None or tool["name"] == name]
    calls = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
              "properties": {"name": {"const": tool["name"]},
                             "arguments": tool.get("parameters") or {"type": "object"}}} for tool in chosen]
    schema = {"anyOf": calls} if len(calls) > 1 else calls[0]
    lark = 'start: "<tool_call>" call "</tool_call>"\ncall: %json ' + json.dumps({**schema, **_OPTIONS})
    try:
        grammar = llguidance.grammar_from("lark", lark)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    except Exception as error:  # noqa: BLE001
        raise InvalidInputError(f"tools: a function's parameters are not a usable JSON Schema: {error}",
                                field="tools") from None
    if is_error:
        raise InvalidInputError(f"tools: a function's parameters are not supported: {'; '.join(map(str, messages))}",
                                field="tools")
    return grammar
