"""Tool calling on /v1/chat/completions, for models whose chat template takes tools.

The conversation (with `tool_calls` of assistant turns and `tool` results) and the tools on offer are rendered
by the model's own template; the reply is generated from those tokens and tool calls are parsed from it in the
Hermes format that Qwen, Hermes and many other templates teach their models:
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`. `tool_choice: "required"` or a named function
constrains decoding (backend/services/structured.py) to exactly one such call whose arguments follow the function's JSON
Schema, so even a weak model answers with a valid call; `auto` lets the model choose; `none` parses nothing.
A model whose template has no tool support gets a 400 naming it. Streaming sends the reply once it is complete
(tool calls can only be told from text at the end of a call), in OpenAI's chunk shape with `delta.tool_calls`.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import AsyncIterator, Optional

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.services import tokens
from backend.api import grammar
from backend.api.errors import ApiError, api_error, errors_about
from backend.api.shapes import Completion, openai_finish, usage
from backend.api.schemas import ChatCompletionRequest
from backend.api.streaming import SSE_HEADERS, Pumps, merged, sse_line
from backend.core.json_types import JSONOutputObject
from backend.core.registry import Registry
from backend.core.types import Final, GenerationParams

CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_tool_calls(text: str) -> tuple[Optional[str], list[JSONOutputObject]]:
    """(the text outside the calls, or None when there is none; the calls in OpenAI's shape). A block that is not
    a JSON object with a string `name` stays in the text."""
    calls: list[JSONOutputObject] = []
    kept = []
    position = 0
    for match in CALL.finditer(text):
        try:
            call = json.loads(match.group(1))
        except ValueError:
            continue
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            continue
        kept.append(text[position:match.start()])
        position = match.end()
        arguments = call.get("arguments", call.get("parameters", {}))
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": call["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}})
    kept.append(text[position:])
    content = "".join(kept).strip()
    return (content or None) if calls else text, calls


async def complete(request: Request, registry: Registry, body: ChatCompletionRequest,
                   params: GenerationParams) -> Response:
    if body.choices != 1 or body.logprobs:
        raise ApiError(400, "n: tool calling answers one choice without logprobs; send n=1 and no logprobs",
                       param="n" if body.choices != 1 else "logprobs")
    tools = [tool.function for tool in body.tools or []]
    offered = tools if body.tool_choice != "none" else []
    messages = [message.for_template() for message in body.messages or []]
    with errors_about("messages", body.api_names):
        ids, template = await asyncio.to_thread(tokens.render_messages, registry, body.model, messages,
                                                offered or None)
    if "tool" not in (template or ""):
        field = "tools" if tools else "messages"
        raise ApiError(400, f"{field}: model '{body.model}' cannot use tools: its chat template takes no tools "
                       "(choose a model whose template does, or set one with chat_template in models.yaml)",
                       param=field, code="tools_not_supported")
    forced = body.forced_tool
    if forced is not None:
        with errors_about("tools"):
            call = await grammar.tool_call_grammar(tools, None if forced == "*" else forced)
        params = params.with_overrides(grammar=call)
    with errors_about("messages", body.api_names):
        events = await asyncio.to_thread(tokens.stream_generate_ids, registry, body.model, ids, params)
    pumps = Pumps(request, [events])
    completion = Completion("chat", body.model, body.include_usage)
    final: Optional[Final] = None
    try:
        async for _, _, value in merged(pumps.pumps):
            if isinstance(value, Exception):  # kind "error"
                raise api_error(value, input_field="messages", names=body.api_names)
            if isinstance(value, Final):
                final = value
    finally:
        pumps.stop()
    if final is None:
        raise ApiError(500, "generation ended without a result", kind="server_error")
    content, calls = parse_tool_calls(final.text) if body.tool_choice != "none" else (final.text, [])
    finish = "tool_calls" if calls else openai_finish(final)
    if body.stream:
        return StreamingResponse(_chunks(completion, content, calls, finish, final), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    message: JSONOutputObject = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return JSONResponse({"id": completion.id, "object": "chat.completion", "created": completion.created,
                         "model": body.model, "system_fingerprint": None,
                         "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                         "usage": usage(final), "workbench": final.stats.to_dict()})


async def _chunks(completion: Completion, content: Optional[str], calls: list[JSONOutputObject], finish: str,
                  final: Final) -> AsyncIterator[str]:
    def chunk(delta: JSONOutputObject, finish_reason: Optional[str] = None) -> JSONOutputObject:
        return {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
                "model": completion.model, "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    yield sse_line(chunk({"role": "assistant", "content": ""}))
    if content:
        yield sse_line(chunk({"content": content}))
    for index, call in enumerate(calls):
        yield sse_line(chunk({"tool_calls": [{"index": index, **call}]}))
    yield sse_line(chunk({}, finish))
    if completion.include_usage:
        yield sse_line({**chunk({}), "choices": [], "usage": usage(final)})
    yield "data: [DONE]\n\n"
