"""Tool calling through /v1/chat/completions: the openai SDK and LangChain's ChatOpenAI (`bind_tools`,
`with_structured_output`) against a tiny model whose chat template takes tools (tests/tiny_models.py
`tools_entry`); a model whose template takes none gets a 400 naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from backend.core.config import parse_config
from backend.api.tools import parse_tool_calls
from backend.core.registry import Registry
from backend.engines import create_engine
from tests.app_process import openai_api_served
from tests.tiny_models import TOOLS_ID, tools_entry
from tests.tiers import full_tier

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


class Weather(BaseModel):
    """get_weather's arguments; replies are validated against the same model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    city: str = Field(max_length=12)
    unit: Literal["celsius", "fahrenheit"]


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": Weather.model_json_schema()}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Local time in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"],
    "additionalProperties": False}}}


@pytest.fixture(scope="module")
@full_tier
def app_url(tiny_config) -> Iterator[str]:
    entries = [spec.model_dump(exclude_none=True) for spec in tiny_config.models]
    entries.append(tools_entry(next(entry for entry in entries if entry["id"] == "tiny-chat")))
    registry = Registry(parse_config({"models": entries}, Path("models.yaml")), create_engine)
    with openai_api_served(registry) as url:
        yield url
    registry.close()


@pytest.fixture(scope="module")
def client(app_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_required_and_named_tool_choice_give_valid_calls(client: openai.OpenAI) -> None:
    for seed in range(3):
        reply = client.chat.completions.create(model=TOOLS_ID, messages=ASK, tools=[WEATHER, TIME],
                                               tool_choice="required", max_tokens=80, temperature=1.0, seed=seed)
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in ("get_weather", "get_time")
        if call.function.name == "get_weather":
            Weather.model_validate_json(call.function.arguments)
    named = client.chat.completions.create(model=TOOLS_ID, messages=ASK, tools=[WEATHER, TIME], max_tokens=80,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = named.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and Weather.model_validate_json(call.function.arguments)
    chunks = list(client.chat.completions.create(model=TOOLS_ID, messages=ASK, tools=[WEATHER], max_tokens=80,
                                                 tool_choice="required", stream=True))
    deltas = [tool for c in chunks if c.choices and c.choices[0].delta.tool_calls
              for tool in c.choices[0].delta.tool_calls]
    assert len(deltas) == 1 and deltas[0].function.name == "get_weather" and deltas[0].index == 0
    Weather.model_validate_json(deltas[0].function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_history_with_tool_calls_and_results_is_accepted(client: openai.OpenAI) -> None:
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees, sunny"},
    ]
    reply = client.chat.completions.create(model=TOOLS_ID, messages=history, tools=[WEATHER], max_tokens=8,
                                           temperature=0, tool_choice="none")
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 40  # the tools, the call and its result were all rendered


def test_a_model_whose_template_takes_no_tools_gets_a_clear_400(app_url: str) -> None:
    answer = httpx.post(f"{app_url}/v1/chat/completions", timeout=60, json={
        "model": "tiny-chat", "messages": ASK, "tools": [WEATHER]})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "tools" and error["code"] == "tools_not_supported"
    assert "model 'tiny-chat' cannot use tools" in error["message"]
    named_unknown = httpx.post(f"{app_url}/v1/chat/completions", timeout=60, json={
        "model": TOOLS_ID, "messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "function",
                                                                                 "function": {"name": "nope"}}})
    assert named_unknown.status_code == 400 and named_unknown.json()["error"]["param"] == "tool_choice"


def test_tool_calls_are_parsed_from_hermes_blocks() -> None:
    text = 'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>' \
           '<tool_call>not json</tool_call>'
    content, calls = parse_tool_calls(text)
    assert [call["function"]["name"] for call in calls] == ["get_weather"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    assert content == "Let me check. <tool_call>not json</tool_call>"
    assert parse_tool_calls("plain words") == ("plain words", [])


def test_langchain_bind_tools_and_with_structured_output_round_trip(app_url: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=TOOLS_ID, base_url=f"{app_url}/v1", api_key="unused", max_tokens=80, temperature=0,
                     max_retries=0)
    bound = llm.bind_tools([WEATHER], tool_choice="get_weather")
    asked = HumanMessage("What is the weather in Paris?")
    reply = bound.invoke([asked])
    assert len(reply.tool_calls) == 1 and reply.tool_calls[0]["name"] == "get_weather"
    Weather.model_validate(reply.tool_calls[0]["args"])
    # ... the call and its result go back in the history, as an agent loop sends them.
    result = ToolMessage("21 degrees, sunny", tool_call_id=reply.tool_calls[0]["id"])
    answer = llm.bind_tools([WEATHER], tool_choice="none").invoke([asked, reply, result])
    assert isinstance(answer.content, str) and not answer.tool_calls
    for method in ("function_calling", "json_schema"):
        structured = llm.with_structured_output(Weather, method=method).invoke("Weather in Oslo, please")
        assert isinstance(structured, Weather), method
