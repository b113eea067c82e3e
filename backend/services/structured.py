"""Structured output: the llguidance grammar of a JSON Schema (OpenAI's `response_format`) or of a forced tool
call, checked and costed before any model is touched. No torch here; the decode step applies the grammar
(backend/engines/grammar.py).

The decode step builds a matcher of the grammar over the model's vocabulary and computes its first token mask
inside the batch thread, so every other row of the batch waits meanwhile. That cost is the grammar's, hardly the
vocabulary's (measured, thread CPU, the same grammars over a 262-token byte vocabulary / SmolLM2's 49,152 tokens:
0.15 / 0.17 s for a 64 kB object of 2,100 properties, 0.41 / 0.51 s for 700 integer ranges, 0.63 / 0.64 s for 2,250
optional properties). So the same work is done here, over the byte vocabulary, in the request's build thread
(off the event loop, backend/api/grammar.py): a grammar whose matcher fails is refused with llguidance's words, and
one whose matcher and first mask take over `MAX_PREPARE_CPU_S` of CPU is refused as too complex. Every later mask
is bounded by llguidance's own per-step limits (its default `LLParserLimits`: ~14 ms of lexer fuel, 50,000 Earley
items a step).
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Optional, Sequence

from backend.core.error_codes import refuse
from backend.core.json_types import JSONObject
from backend.core.types import InvalidInputError

if TYPE_CHECKING:
    import llguidance

# Compact JSON (no free whitespace between tokens) keeps a weak model from looping on spaces and newlines.
_OPTIONS = {"x-guidance": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}}
# CPU-seconds the matcher and its first mask may take (thread CPU: the same on a loaded machine as on a quiet
# one). Real schemas take milliseconds; the 64 kB size bound alone let 5,000 optional properties take 3.1 s.
MAX_PREPARE_CPU_S = 0.5


def grammar_for_schema(schema: Optional[JSONObject], field: str = "response_format") -> str:
    """The llguidance grammar of a JSON Schema (None: any JSON object), or InvalidInputError naming `field`."""
    import llguidance

    schema = schema if schema is not None else {"type": "object"}
    if not isinstance(schema, dict):
        raise InvalidInputError(f"{field}: the schema must be a JSON object", field=field)
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema({**schema, **_OPTIONS})
    except Exception as error:  # noqa: BLE001 - the library's words name the schema's problem
        raise InvalidInputError(f"{field}: not a usable JSON Schema: {error}", field=field) from None
    return prepared(grammar, field, "this JSON Schema is not supported")


def grammar_for_tool_call(tools: Sequence[JSONObject], name: Optional[str] = None) -> str:
    """A grammar for exactly one call, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the Hermes
    format, backend/api/tools.py), of the tool `name` or any of `tools`: tool_choice 'required' / named."""
    import llguidance

    chosen = [tool for tool in tools if name is None or tool["name"] == name]
    calls = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
              "properties": {"name": {"const": tool["name"]},
                             "arguments": tool.get("parameters") or {"type": "object"}}} for tool in chosen]
    schema = {"anyOf": calls} if len(calls) > 1 else calls[0]
    lark = 'start: "<tool_call>" call "</tool_call>"\ncall: %json ' + json.dumps({**schema, **_OPTIONS})
    try:
        grammar = llguidance.grammar_from("lark", lark)
    except Exception as error:  # noqa: BLE001
        raise InvalidInputError(f"tools: a function's parameters are not a usable JSON Schema: {error}",
                                field="tools") from None
    return prepared(grammar, "tools", "a function's parameters are not supported")


def prepared(grammar: str, field: str, unsupported: str) -> str:
    """`grammar`, once a matcher of it and its first mask were built within `MAX_PREPARE_CPU_S` (see the module
    text); else InvalidInputError naming `field`."""
    import llguidance

    begin = time.thread_time()
    matcher = llguidance.LLMatcher(_probe_vocabulary(), grammar, log_level=0)
    if not matcher.is_error():
        matcher.compute_logit_bias()  # the first mask
    seconds = time.thread_time() - begin
    if matcher.is_error():
        raise InvalidInputError(f"{field}: {unsupported}: {matcher.get_error()}", field=field)
    if seconds > MAX_PREPARE_CPU_S:
        raise refuse("grammar_too_complex", field, seconds=round(seconds, 2), limit=MAX_PREPARE_CPU_S)
    return grammar


@functools.cache
def _probe_vocabulary() -> "llguidance.LLTokenizer":
    """llguidance's byte-level tokenizer (256 bytes and a few special tokens): no model needed."""
    import llguidance

    return llguidance.LLTokenizer("byte")
