"""The app's own OpenAI-compatible API, served next to a Gradio UI on one server, driven by the `openai` client.

The app is wired the way `ui.launch` is meant to do it: `demo.launch(prevent_thread_lock=True)`, then
`add_openai_routes(app, registry)` on the FastAPI app Gradio returns. The registry holds the local tiny-chat,
`tiny-chat-only` (the same weights with only the 'chat' task, for /v1/completions' wrong-task path) and a remote
entry whose server is down (for the 503 path).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
from pydantic import BaseModel, field_validator

from backend.services import generation as service
from backend.core.config import parse_config
from backend.api import add_openai_routes, invalid
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.types import GenerationParams
from tests.remote_server import free_port
from tests.tiers import full_tier

PROMPT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there"}]
TEXT_PROMPT = "Once upon a time"
CHAT_ONLY = "tiny-chat-only"


@pytest.fixture(scope="module")
def registry(tiny_config) -> Iterator[Registry]:
    entries = [spec.model_dump(exclude_none=True) for spec in tiny_config.models]
    chat = next(entry for entry in entries if entry["id"] == "tiny-chat")
    entries.append({**chat, "id": CHAT_ONLY, "tasks": ["chat"]})
    entries.append({"id": "remote-down", "tasks": ["chat"], "backend": "openai",
                    "base_url": f"http://127.0.0.1:{free_port()}/v1", "timeout_s": 5})
    reg = Registry(parse_config({"models": entries}, Path("models.yaml")), create_engine)
    yield reg
    reg.close()


@pytest.fixture(scope="module")
@full_tier
def app_url(registry: Registry) -> Iterator[str]:
    import gradio as gr

    with gr.Blocks() as demo:
        text = gr.Textbox()
        out = gr.Textbox()
        text.submit(lambda value: value[::-1], text, out, api_name="reverse")
    app, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    add_openai_routes(app, registry)
    yield url.rstrip("/")
    demo.close()


@pytest.fixture(scope="module")
def client(app_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected_text(registry: Registry) -> str:
    """What the backend itself answers, greedy, for PROMPT with 16 new tokens."""
    events = list(service.stream_chat(registry, "tiny-chat", "Hello there", history=PROMPT[:1],
                                      params=GenerationParams(max_new_tokens=16, temperature=0.0)))
    return events[-1].text


def test_streams_a_chat_completion_with_the_openai_client(client: openai.OpenAI, expected_text: str) -> None:
    stream = client.chat.completions.create(model="tiny-chat", messages=PROMPT, stream=True, max_tokens=16,
                                            temperature=0, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2 and "".join(pieces) == expected_text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    usage = chunks[-1].usage
    assert usage.completion_tokens == 16 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + 16
    assert all(c.model == "tiny-chat" and c.id == chunks[0].id for c in chunks)


def test_a_reply_the_api_gave_is_accepted_back(client: openai.OpenAI) -> None:
    """Whatever the app emits it accepts back: an assistant turn holding a NUL (byte-level tokenizers emit them)
    is read with the NUL dropped, the same as without it; the next turn is answered, not refused."""
    def reply(assistant: str) -> str:
        answer = client.chat.completions.create(model="tiny-chat", max_tokens=6, temperature=0, messages=[
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": assistant},
            {"role": "user", "content": "And now?"}])
        return answer.choices[0].message.content

    assert reply("Hel\x00lo.") == reply("Hello.")


def test_the_api_never_emits_a_nul_so_its_replies_go_back_as_they_came(client: openai.OpenAI,
                                                                        app_url: str) -> None:
    """A model pushed to write NULs (logit_bias on the byte-0 token of the byte-level tokenizer): chat completions
    (whole and streamed) and completions carry none, and each answer, sent back as it came (the chat as history,
    the completion appended to its prompt), is answered, never "contains a NUL character"."""
    nul = httpx.post(f"{app_url}/tokenize", json={"model": "tiny-chat", "prompt": "\x00",
                                                  "add_special_tokens": False}, timeout=60).json()["tokens"]
    assert len(nul) == 1
    forced = {"logit_bias": {str(nul[0]): 100}, "max_tokens": 4, "temperature": 0}
    asked = [{"role": "user", "content": "Hi"}]
    whole = client.chat.completions.create(model="tiny-chat", messages=asked, **forced)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="tiny-chat", messages=asked, stream=True, **forced) if chunk.choices)
    assert whole.usage.completion_tokens == 4
    assert "\x00" not in whole.choices[0].message.content and "\x00" not in streamed
    history = asked + [{"role": "assistant", "content": whole.choices[0].message.content},
                       {"role": "user", "content": "And now?"}]
    assert client.chat.completions.create(model="tiny-chat", messages=history, max_tokens=2).choices
    completion = client.completions.create(model="tiny-chat", prompt="Once", **forced).choices[0].text
    assert "\x00" not in completion
    assert client.completions.create(model="tiny-chat", prompt="Once" + completion, max_tokens=2).choices
    # /detokenize gives the token's text faithfully; /tokenize takes that text back.
    text = httpx.post(f"{app_url}/detokenize", json={"model": "tiny-chat", "tokens": nul}, timeout=60).json()
    again = httpx.post(f"{app_url}/tokenize", json={"model": "tiny-chat", "prompt": text["prompt"],
                                                    "add_special_tokens": False}, timeout=60)
    assert again.status_code == 200 and again.json()["tokens"] == nul


def test_non_streaming_completion(client: openai.OpenAI, expected_text: str) -> None:
    reply = client.chat.completions.create(model="tiny-chat", messages=PROMPT, max_tokens=16, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected_text
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 16
    stats = reply.model_extra["workbench"]  # the workbench's own statistics ride along
    assert stats["time_to_first_token_s"] > 0 and stats["finish_reason"] == "length"


def test_stop_and_seed_are_honoured(client: openai.OpenAI, expected_text: str) -> None:
    stop = expected_text[6:9]
    reply = client.chat.completions.create(model="tiny-chat", messages=PROMPT, max_tokens=16, temperature=0,
                                           stop=[stop])
    assert reply.choices[0].message.content == expected_text[: expected_text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"
    sampled = [client.chat.completions.create(model="tiny-chat", messages=PROMPT, max_tokens=12, temperature=1.0,
                                              seed=99).choices[0].message.content for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_models_lists_the_registry(client: openai.OpenAI, registry: Registry) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert set(listed) == {spec.id for spec in registry.specs()}
    assert listed["tiny-chat"].owned_by == "llm-workbench"
    assert listed["tiny-chat"].model_extra["tasks"] == ["chat", "generate"]
    assert listed[CHAT_ONLY].model_extra["tasks"] == ["chat"]
    assert client.models.retrieve("tiny-chat").id == "tiny-chat"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def _error_of(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value.status_code, caught.value.body


@pytest.mark.parametrize(
    "overrides, status, param, words",
    [
        ({"model": "no-such-model"}, 404, "model", "unknown model"),
        ({"model": "tiny-classifier"}, 400, "model", "does not do 'chat'"),
        ({"temperature": -1}, 400, "temperature", "temperature"),
        ({"max_tokens": 10**9}, 400, "max_tokens", "max_tokens: must be between"),
        ({"top_p": "high"}, 400, "top_p", "must be a number"),
        ({"messages": []}, 400, "messages", "non-empty list"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, 400, "messages",
         "last message must come from the user"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role", "must be 'system'"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, 400, "messages",
         "model 'tiny-chat' cannot use tools"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400,
         "messages[0].content[0]", "only text parts"),
        ({"messages": [{"role": "user", "content": "   "}]}, 400, "messages", "is empty"),
        ({"n": 30}, 400, "n", "n: must be between 1 and 8"),
        ({"model": "remote-down"}, 503, None, "cannot connect"),
    ],
)
def test_bad_requests_get_openai_style_errors(client: openai.OpenAI, overrides: dict, status: int,
                                              param: str | None, words: str) -> None:
    request = {"model": "tiny-chat", "messages": PROMPT, "max_tokens": 4, **overrides}
    got_status, body = _error_of(lambda: client.chat.completions.create(**request))
    assert got_status == status
    assert set(body) >= {"message", "type", "param", "code"}  # the client unwraps {"error": {...}}
    assert words in body["message"]
    if param is not None:
        assert body["param"] == param
    assert body["type"] == ("server_error" if status >= 500 else "invalid_request_error")


def test_a_body_that_is_not_json(app_url: str) -> None:
    answer = httpx.post(f"{app_url}/v1/chat/completions", content=b"{nope", timeout=30,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "must be JSON" in answer.json()["error"]["message"]


@pytest.mark.parametrize("route, input_", [("chat/completions", {"messages": PROMPT}),
                                           ("completions", {"prompt": TEXT_PROMPT})])
def test_client_disconnect_stops_generation(app_url: str, registry: Registry, route: str, input_: dict) -> None:
    registry.load("tiny-chat")
    engine = registry._slots["tiny-chat"].engine  # noqa: SLF001 - its token counter is the evidence
    before = engine.generated_tokens_total
    body = {"model": "tiny-chat", **input_, "stream": True, "max_tokens": 400, "temperature": 0}
    with httpx.stream("POST", f"{app_url}/v1/{route}", json=body, timeout=60) as response:
        assert response.status_code == 200
        lines = 0
        for line in response.iter_lines():
            lines += line.startswith("data: ")
            if lines == 4:
                break
    deadline = time.monotonic() + 5
    while registry.status_of("tiny-chat").active_requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert registry.status_of("tiny-chat").active_requests == 0, "the lease must end when the client leaves"
    settled = engine.generated_tokens_total
    time.sleep(0.5)
    assert engine.generated_tokens_total == settled, "generation must stop when the client leaves"
    assert settled - before < 100  # nowhere near the 400 tokens asked for


def test_gradio_routes_still_work(app_url: str) -> None:
    from gradio_client import Client

    assert httpx.get(app_url, timeout=30).status_code == 200
    assert Client(app_url, verbose=False).predict("abc", api_name="/reverse") == "cba"


def test_token_check_seam(registry: Registry) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    add_openai_routes(app, registry, check_token=lambda token: token == "s3cret")
    with TestClient(app) as http:
        refused = http.get("/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.post("/v1/chat/completions", json={"model": "tiny-chat", "messages": PROMPT}).status_code == 401
        refused = http.post("/v1/completions", json={"model": "tiny-chat", "prompt": TEXT_PROMPT},
                            headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        allowed = http.post("/v1/completions", json={"model": "tiny-chat", "prompt": TEXT_PROMPT, "max_tokens": 3},
                            headers={"Authorization": "Bearer s3cret"})
        assert allowed.status_code == 200 and allowed.json()["usage"]["completion_tokens"] == 3
        # The login is checked before the body: a stranger hears 401, not what is wrong with its JSON.
        refused = http.post("/v1/chat/completions", content=b"{nope", headers={"Content-Type": "application/json"})
        assert refused.status_code == 401


class Echo(BaseModel):
    """A request body of another module's route (module level: FastAPI resolves annotations by name)."""

    word: Any = ""

    @field_validator("word")
    @classmethod
    def _short(cls, value: Any) -> str:
        if not isinstance(value, str) or len(value) > 9:
            raise invalid("must be a string of at most 9 characters")
        return value


def test_other_modules_add_routes_behind_the_same_auth_and_error_shape(registry: Registry) -> None:
    """The documented seam for routes beside these (embeddings, feedback): api_router + invalid + ApiError."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from backend.api import ApiError, api_router

    def echo_routes(reg: Registry, auth):  # noqa: ANN001, ANN202 - the factory shape
        router = api_router(auth)

        @router.post("/echo")
        async def echo(body: Echo) -> dict:
            if body.word == "teapot":
                raise ApiError(418, "word: no teapots", param="word")
            reg.spec(body.word)  # an unknown id raises the backend's ModelNotFoundError
            return {"word": body.word}

        return router

    app = FastAPI()
    add_openai_routes(app, registry, check_token=lambda token: token == "k", extra_routers=[echo_routes])
    with TestClient(app) as http:
        assert http.post("/v1/echo", json={"word": "x"}).status_code == 401
        ok = {"Authorization": "Bearer k"}
        long = http.post("/v1/echo", json={"word": "far too long a word"}, headers=ok)
        assert long.status_code == 400
        assert long.json()["error"] == {"message": "word: must be a string of at most 9 characters",
                                        "type": "invalid_request_error", "param": "word", "code": None}
        assert http.post("/v1/echo", json={"word": "nope"}, headers=ok).json()["error"]["code"] == "model_not_found"
        assert http.post("/v1/echo", json={"word": "tiny-chat"}, headers=ok).json() == {"word": "tiny-chat"}
        teapot = http.post("/v1/echo", json={"word": "teapot"}, headers=ok)
        assert teapot.status_code == 418 and teapot.json()["error"]["param"] == "word"


def test_max_completion_tokens_errors_name_that_field(client: openai.OpenAI) -> None:
    status, body = _error_of(lambda: client.chat.completions.create(model="tiny-chat", messages=PROMPT,
                                                                    max_completion_tokens=10**9))
    assert status == 400 and body["param"] == "max_completion_tokens"
    assert body["message"].startswith("max_completion_tokens: must be between 1 and")


# ------------------------------------------------------------------------------- POST /v1/completions


@pytest.fixture(scope="module")
def expected_completion(registry: Registry) -> str:
    """What the backend itself completes, greedy, for TEXT_PROMPT with 16 new tokens."""
    events = list(service.stream_generate(registry, "tiny-chat", TEXT_PROMPT,
                                          GenerationParams(max_new_tokens=16, temperature=0.0)))
    return events[-1].text


def test_streams_a_text_completion_with_the_openai_client(client: openai.OpenAI, expected_completion: str) -> None:
    stream = client.completions.create(model="tiny-chat", prompt=TEXT_PROMPT, stream=True, max_tokens=16,
                                       temperature=0, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "text_completion" and c.model == "tiny-chat" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].id.startswith("cmpl-")
    pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert len(pieces) >= 2 and "".join(pieces) == expected_completion
    assert not expected_completion.startswith(TEXT_PROMPT)  # the completion only, never the prompt
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    usage = chunks[-1].usage
    assert usage.completion_tokens == 16 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + 16


def test_sixteen_concurrent_streams_share_the_update_budget_and_lose_nothing(client: openai.OpenAI,
                                                                           registry: Registry,
                                                                           expected_completion: str) -> None:
    """Under load each stream's chunks carry the text since its last one (backend/api/streaming.py coalesced):
    fewer chunks in all than the backend's text deltas, every stream's text still exactly the greedy completion,
    its usage exact."""
    from concurrent.futures import ThreadPoolExecutor

    from backend.core.types import Delta

    deltas = sum(1 for event in service.stream_generate(registry, "tiny-chat", TEXT_PROMPT,
                                                          GenerationParams(max_new_tokens=16, temperature=0.0))
                 if isinstance(event, Delta) and event.text)

    def one(_: int) -> tuple[str, int, int]:
        stream = client.completions.create(model="tiny-chat", prompt=TEXT_PROMPT, stream=True, max_tokens=16,
                                           temperature=0, stream_options={"include_usage": True})
        chunks = list(stream)
        pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
        return "".join(pieces), len(pieces), chunks[-1].usage.completion_tokens

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    assert all(text == expected_completion and tokens == 16 for text, _, tokens in results)
    assert sum(pieces for _, pieces, _ in results) < 16 * deltas  # a chunk per delta would be 16 * deltas


def test_non_streaming_text_completion(client: openai.OpenAI, expected_completion: str) -> None:
    for prompt in (TEXT_PROMPT, [TEXT_PROMPT]):  # a string, or OpenAI's list form with one string
        reply = client.completions.create(model="tiny-chat", prompt=prompt, max_tokens=16, temperature=0)
        assert reply.object == "text_completion" and reply.model == "tiny-chat"
        assert len(reply.choices) == 1 and reply.choices[0].index == 0
        assert reply.choices[0].text == expected_completion
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 16
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + 16
        assert reply.model_extra["workbench"]["finish_reason"] == "length"


def test_text_completion_honours_stop_and_seed(client: openai.OpenAI, expected_completion: str) -> None:
    stop = expected_completion[6:9]
    cut = expected_completion[: expected_completion.index(stop)]
    reply = client.completions.create(model="tiny-chat", prompt=TEXT_PROMPT, max_tokens=16, temperature=0,
                                      stop=stop)
    assert reply.choices[0].text == cut and reply.choices[0].finish_reason == "stop"
    streamed = list(client.completions.create(model="tiny-chat", prompt=TEXT_PROMPT, max_tokens=16, temperature=0,
                                              stop=[stop], stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut  # the stop never reaches the stream
    assert streamed[-1].choices[0].finish_reason == "stop"
    sampled = [client.completions.create(model="tiny-chat", prompt=TEXT_PROMPT, max_tokens=12, temperature=1.0,
                                         seed=5).choices[0].text for _ in range(2)]
    assert sampled[0] == sampled[1]


@pytest.mark.parametrize(
    "overrides, status, param, words",
    [
        ({"model": CHAT_ONLY}, 400, "model",
         f"model '{CHAT_ONLY}' does not do 'generate' (it does: chat)"),
        ({"model": "no-such-model"}, 404, "model", "unknown model"),
        ({"temperature": -1}, 400, "temperature", "temperature"),
        ({"max_tokens": 10**9}, 400, "max_tokens", "max_tokens: must be between"),
        ({"top_p": "high"}, 400, "top_p", "top_p: must be a number"),
        ({"seed": 1.5}, 400, "seed", "seed: must be a whole number"),
        ({"stop": [3]}, 400, "stop", "stop: give a list of strings"),
        ({"n": 2}, 400, "n", "n: only n=1 is supported"),
        ({"prompt": ["one", 2]}, 400, "prompt[1]", "prompt[1]: must be a string or a non-empty list of token ids"),
        ({"prompt": [[1, 2.5]]}, 400, "prompt[0]", "must be a string or a non-empty list of token ids"),
        ({"suffix": "the end"}, 400, "suffix", "suffix:"),
        ({"logprobs": 2.5}, 400, "logprobs", "logprobs: must be a whole number"),
        ({"prompt": "word " * 2000}, 400, "prompt", "has a context of 512 tokens"),
    ],
)
def test_bad_text_completion_requests_name_the_field(client: openai.OpenAI, overrides: dict, status: int,
                                                     param: str, words: str) -> None:
    request = {"model": "tiny-chat", "prompt": TEXT_PROMPT, "max_tokens": 4, **overrides}
    got_status, body = _error_of(lambda: client.completions.create(**request))
    assert got_status == status
    assert words in body["message"] and body["param"] == param
    assert body["type"] == "invalid_request_error"


def test_chat_only_model_error_points_to_chat_completions(client: openai.OpenAI) -> None:
    _, body = _error_of(lambda: client.completions.create(model=CHAT_ONLY, prompt=TEXT_PROMPT, max_tokens=4))
    assert body["code"] == "unsupported_task" and "POST /v1/chat/completions" in body["message"]
    # ... and the chat route still serves it.
    reply = client.chat.completions.create(model=CHAT_ONLY, messages=PROMPT, max_tokens=4, temperature=0)
    assert reply.usage.completion_tokens == 4


def test_completions_needs_a_prompt(app_url: str) -> None:
    answer = httpx.post(f"{app_url}/v1/completions", json={"model": "tiny-chat"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "prompt" and "prompt: required" in answer.json()["error"]["message"]
