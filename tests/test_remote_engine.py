"""The remote (OpenAI-compatible) engine: the engine contract against a real `transformers serve`, then every
failure path against a scripted fake server, and a server killed mid-stream while the app keeps serving.

One `transformers serve` process for the module (tiny-chat on 127.0.0.1, started once, ~10-20 s), without a
Hugging Face cache folder, as on a fresh machine: its `GET /v1/models` answers 500 there, so every load goes
through the reachability check's fallback. The test that kills it runs last; any test after it would start it
again on the same port.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from backend.core.config import ModelSpec, parse_config
from backend.engines.remote import RemoteEngine, estimate_tokens, probe
from backend.core.registry import Registry
from backend.engines import create_engine
from backend.core.types import (
    ContextOverflowError,
    Delta,
    GenerationError,
    GenerationParams,
    InvalidInputError,
    Message,
    ModelLoadError,
    UnsupportedTaskError,
)
from tests.engine_contract import GREEDY, EngineContract, drain
from tests.remote_server import (
    FakeServer,
    ServeProcess,
    chat_chunk,
    completion_chunk,
    free_port,
    sampling_copy,
    stream_of,
)
from tests.tiers import full_tier

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def remote_spec(base_url: str, model: str = "fake-model", **fields: Any) -> ModelSpec:
    entry = {"id": "remote-tiny", "name": "Tiny chat over HTTP", "tasks": ["chat", "generate"], "backend": "openai",
             "base_url": base_url, "model": model, **fields}
    return parse_config({"models": [entry]}, Path("models.yaml")).models[0]


@pytest.fixture(scope="module")
@full_tier
def serve(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    workdir = tmp_path_factory.mktemp("transformers-serve")
    model_dir = sampling_copy(tiny_config.spec("tiny-chat").local_path(), workdir / "tiny-chat")
    server = ServeProcess(model_dir, workdir, hub_cache=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def engine(serve: ServeProcess) -> Iterator[RemoteEngine]:
    from backend.engines import create_engine

    loaded = create_engine(remote_spec(serve.base_url, serve.model, max_context=512, timeout_s=60))
    assert isinstance(loaded, RemoteEngine)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def fake_engine(fake: FakeServer) -> Iterator[RemoteEngine]:
    fake.reset()
    loaded = RemoteEngine.load(remote_spec(fake.base_url, max_context=512, timeout_s=5))
    yield loaded
    loaded.close()


# ------------------------------------------------------------------------------------------- contract


class TestRemoteEngineContract(EngineContract):
    """The shared contract. `tokens_generated_so_far` stays None: the server's own counter is not observable from
    here, so closing is checked by `test_closing_the_stream_stops_generation_on_the_server` below instead."""

    @pytest.fixture(autouse=True)
    def _server_up(self, serve: ServeProcess) -> None:
        serve.ensure_running()

    @contextmanager
    def failing_generation(self, engine: RemoteEngine) -> Iterator[None]:
        # The server streams two good chunks, then garbage: a failure after generation started.
        server = FakeServer()
        server.reset(stream_of([completion_chunk("Hel"), completion_chunk("lo"), "{not json"]))
        real_url = engine.base_url
        engine.base_url = server.base_url.rstrip("/")
        try:
            yield
        finally:
            engine.base_url = real_url
            server.close()


# ------------------------------------------------------------------------------- real server, extras


def test_describe_probe_and_token_counts(engine: RemoteEngine, serve: ServeProcess) -> None:
    serve.ensure_running()
    facts = engine.describe()
    assert facts["device"] == f"remote: {serve.base_url}"
    assert facts["max_context"] == 512 and facts["memory_bytes"] is None
    assert facts["token_counts"] == "tokenizer"  # `model` is a local folder: its tokenizer counts exactly
    reachable, detail = probe(engine.spec)
    assert reachable and serve.base_url in detail
    # No cache folder: the model list fails, and the health check (on a fresh connection) says it is up.
    assert "HTTP 500" in detail and "/health is healthy" in detail, detail
    _, final = drain(engine.stream_generate("The weather today", GREEDY))
    assert final.stats.prompt_tokens == engine.count_tokens("The weather today")  # server usage == local count
    assert final.stats.notices == ()  # nothing estimated


def test_closing_the_stream_stops_generation_on_the_server(engine: RemoteEngine, serve: ServeProcess) -> None:
    """`transformers serve` generates one request at a time: if closing did not stop the long generation, the
    next request would wait behind ~2000 tokens (tens of seconds) instead of a fraction of a second."""
    serve.ensure_running()
    started = time.perf_counter()
    drain(engine.stream_generate("Baseline", GREEDY))
    baseline = time.perf_counter() - started

    stream = engine.stream_generate("A long story", GenerationParams(max_new_tokens=2000, temperature=0.0))
    for count, event in enumerate(stream, start=1):
        assert isinstance(event, Delta)
        if count == 3:
            break
    stream.close()
    assert engine.active_generations == 0

    started = time.perf_counter()
    _, final = drain(engine.stream_generate("Right after", GREEDY))
    assert final.stats.generated_tokens == GREEDY.max_new_tokens
    assert time.perf_counter() - started < 3 * baseline + 5.0


def test_sampling_parameters_reach_the_server(engine: RemoteEngine, serve: ServeProcess) -> None:
    serve.ensure_running()
    sampled = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    greedy = drain(engine.stream_generate("Tell me", GREEDY.with_overrides(max_new_tokens=12)))[1]
    first = drain(engine.stream_generate("Tell me", sampled))[1]
    again = drain(engine.stream_generate("Tell me", sampled))[1]
    assert first.text == again.text and first.stats.seed == 7
    assert first.text != greedy.text
    assert greedy.stats.seed is None
    unseeded = drain(engine.stream_generate("Tell me", sampled.with_overrides(seed=None)))[1]
    assert unseeded.stats.seed is not None  # a sampled reply always reports the seed that reproduces it


# --------------------------------------------------------------------------------- wire format (fake)


def test_request_bodies(fake: FakeServer, fake_engine: RemoteEngine) -> None:
    fake.reset(stream_of([chat_chunk("Hi"), chat_chunk(finish="stop", usage=USAGE)]))
    drain(fake_engine.stream_chat([Message("system", "Be brief."), Message("user", "Hello")],
                                  GenerationParams(max_new_tokens=9, temperature=0.0, stop=("END",))))
    [chat] = fake.posts()
    fake.reset(stream_of([completion_chunk("Hi"), completion_chunk(finish="length", usage=USAGE)]))
    _, final = drain(fake_engine.stream_generate("Once", GenerationParams(max_new_tokens=5, temperature=0.8,
                                                                          top_p=0.9, seed=42, top_k=40)))
    [completion] = fake.posts()
    assert (chat.path, completion.path) == ("/v1/chat/completions", "/v1/completions")
    assert any("top_k not sent" in notice for notice in final.stats.notices)
    assert chat.body == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": 9, "temperature": 0.0, "stop": ["END"],
    }  # greedy: temperature 0, no seed, no top_p
    assert completion.body == {
        "prompt": "Once", "model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": 5, "temperature": 0.8, "seed": 42, "top_p": 0.9,
    }


def test_api_key_from_the_named_variable_and_extra_headers(fake: FakeServer, monkeypatch) -> None:
    spec = remote_spec(fake.base_url, api_key_env="WORKBENCH_TEST_KEY", headers={"X-Team": "research"})
    monkeypatch.delenv("WORKBENCH_TEST_KEY", raising=False)
    with pytest.raises(ModelLoadError, match="WORKBENCH_TEST_KEY"):
        RemoteEngine.load(spec)
    assert probe(spec)[0] is False and "WORKBENCH_TEST_KEY" in probe(spec)[1]

    monkeypatch.setenv("WORKBENCH_TEST_KEY", "sk-test-123")
    fake.reset(stream_of([chat_chunk("ok"), chat_chunk(finish="stop", usage=USAGE)]))
    loaded = RemoteEngine.load(spec)
    try:
        drain(loaded.stream_chat([Message("user", "hi")], GREEDY))
    finally:
        loaded.close()
    for request in fake.requests:  # the reachability GET and the POST alike
        assert request.headers.get("Authorization") == "Bearer sk-test-123"
        assert request.headers.get("X-Team") == "research"


def test_usage_counts_and_finish_reasons(fake: FakeServer, fake_engine: RemoteEngine) -> None:
    fake.reset(stream_of([chat_chunk("Hel"), chat_chunk("lo"), chat_chunk(finish="stop"),
                          {"choices": [], "usage": USAGE}]))  # vLLM/OpenAI: usage in its own last chunk
    deltas, final = drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    assert [d.text for d in deltas] == ["Hel", "lo"] and final.text == "Hello"
    assert (final.stats.prompt_tokens, final.stats.generated_tokens) == (7, 3)
    assert final.stats.finish_reason == "stop" and final.stats.notices == ()
    assert final.stats.time_to_first_token_s is not None

    # No usage (older TGI): counted from the chunks and flagged; TGI's finish reason names are mapped.
    fake.reset(stream_of([chat_chunk("a"), chat_chunk("b"), chat_chunk(finish="eos_token")]))
    _, final = drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    assert final.stats.generated_tokens == 2 and final.stats.finish_reason == "stop"
    assert any("estimated" in notice for notice in final.stats.notices)

    # No [DONE] (transformers serve) and no finish_reason, but the token budget was used up: length.
    fake.reset(stream_of([completion_chunk("x")] * 3 + [completion_chunk(finish="length")], done=False))
    _, final = drain(fake_engine.stream_generate("go", GREEDY.with_overrides(max_new_tokens=3)))
    assert final.stats.finish_reason == "length"


def test_stop_sequence_is_cut_locally_and_closes_the_stream(fake: FakeServer, fake_engine: RemoteEngine) -> None:
    # This server ignores `stop` and would go on: the engine cuts the text and hangs up.
    fake.reset(stream_of([completion_chunk("one, tw"), completion_chunk("o; three"), completion_chunk(" four"),
                          completion_chunk(finish="length", usage=USAGE)]))
    deltas, final = drain(fake_engine.stream_generate("count", GREEDY.with_overrides(stop=["; "])))
    assert final.text == "one, two" and "".join(d.text for d in deltas) == "one, two"
    assert final.stats.finish_reason == "stop"


# ------------------------------------------------------------------------------------- errors (fake)


def _error(status: int, message: str, headers: dict | None = None):
    return lambda exchange: exchange.json(status, {"error": {"message": message}}, headers)


@pytest.mark.parametrize(
    "status, message, error_type, expected",
    [
        (401, "bad key", GenerationError, "refused our credentials"),
        (404, "model not found", GenerationError, "check base_url"),
        (400, "This model's maximum context length is 512 tokens", ContextOverflowError, "too long"),
        (422, "temperature must be positive", InvalidInputError, "temperature must be positive"),
        (500, "CUDA out of memory", GenerationError, "CUDA out of memory"),
    ],
)
def test_http_errors_become_typed_errors(fake: FakeServer, fake_engine: RemoteEngine, status: int, message: str,
                                         error_type: type, expected: str) -> None:
    fake.reset(_error(status, message))
    with pytest.raises(error_type, match=expected) as caught:
        drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    assert "remote-tiny" in str(caught.value) and fake.base_url in str(caught.value)
    assert len(fake.posts()) == 1  # not worth a retry


@pytest.mark.parametrize("status", [429, 503])
def test_retried_once_before_the_first_token(fake: FakeServer, fake_engine: RemoteEngine, status: int) -> None:
    fake.reset(_error(status, "busy", {"Retry-After": "0"}),
               stream_of([chat_chunk("fine"), chat_chunk(finish="stop", usage=USAGE)]))
    _, final = drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    assert final.text == "fine" and len(fake.posts()) == 2

    fake.reset(_error(status, "still busy", {"Retry-After": "0"}))
    with pytest.raises(GenerationError, match=str(status)):
        drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    assert len(fake.posts()) == 2  # two attempts, no more


def test_never_retried_after_the_first_token(fake: FakeServer, fake_engine: RemoteEngine) -> None:
    def dies_mid_stream(exchange) -> None:
        exchange.start_stream()
        exchange.send_event(chat_chunk("partial"))
        exchange.break_connection()

    fake.reset(dies_mid_stream, stream_of([chat_chunk("second try"), chat_chunk(finish="stop")]))
    received = []
    with pytest.raises(GenerationError, match="connection broke"):
        for event in fake_engine.stream_chat([Message("user", "hi")], GREEDY):
            received.append(event)
    assert [e.text for e in received] == ["partial"] and len(fake.posts()) == 1


def test_malformed_and_error_chunks(fake: FakeServer, fake_engine: RemoteEngine) -> None:
    fake.reset(stream_of([chat_chunk("ok"), "{this is not json"]))
    with pytest.raises(GenerationError, match="malformed"):
        drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    fake.reset(stream_of([{"error": {"message": "worker died", "type": "server_error"}}]))
    with pytest.raises(GenerationError, match="worker died"):
        drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    fake.reset(stream_of([chat_chunk("cut")], done=False))  # body ends cleanly but unfinished
    with pytest.raises(GenerationError, match="no finish_reason"):
        drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))
    fake.reset(lambda exchange: exchange.json(200, {"error": "streaming not supported"}))
    with pytest.raises(GenerationError, match="JSON instead of an event stream"):
        drain(fake_engine.stream_chat([Message("user", "hi")], GREEDY))


def test_a_stalled_server_fails_within_the_timeout(fake: FakeServer) -> None:
    release = threading.Event()

    def stalls(exchange) -> None:
        exchange.start_stream()
        exchange.send_event(chat_chunk("first"))
        release.wait(10)

    fake.reset(stalls)
    loaded = RemoteEngine.load(remote_spec(fake.base_url, timeout_s=1.0))
    try:
        started = time.perf_counter()
        with pytest.raises(GenerationError, match="sent nothing for 1s"):
            drain(loaded.stream_chat([Message("user", "hi")], GREEDY))
        assert time.perf_counter() - started < 4.0
    finally:
        release.set()
        loaded.close()


def test_load_and_probe_failures_say_what_to_check(fake: FakeServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelLoadError, match=r"model 'remote-tiny'.*cannot connect.*is the server running"):
        RemoteEngine.load(remote_spec(closed))
    reachable, detail = probe(remote_spec(closed))
    assert not reachable and closed in detail

    fake.reset()
    fake.models_status = 500  # transformers serve without a hub cache folder: /health still says it is up
    loaded = RemoteEngine.load(remote_spec(fake.base_url))
    assert any("HTTP 500" in note for note in loaded.describe()["notes"])
    loaded.close()
    fake.health_status = 404
    with pytest.raises(ModelLoadError, match="check base_url"):
        RemoteEngine.load(remote_spec(fake.base_url))

    fake.reset()
    fake.models_status = 401
    with pytest.raises(ModelLoadError, match="api_key_env"):
        RemoteEngine.load(remote_spec(fake.base_url))
    fake.reset()

    loaded = RemoteEngine.load(remote_spec(fake.base_url, model="not-served"))
    assert any("does not list model 'not-served'" in note for note in loaded.describe()["notes"])
    loaded.close()


def test_estimates_without_a_tokenizer(fake: FakeServer, fake_engine: RemoteEngine) -> None:
    assert fake_engine.describe()["token_counts"] == "estimated"
    assert fake_engine.count_tokens("abcdef") == estimate_tokens("abcdef") == 2
    with pytest.raises(ContextOverflowError, match="context"):
        fake_engine.stream_generate("word " * 5000, GREEDY)
    with pytest.raises(UnsupportedTaskError):
        fake_engine.classify(["text"])


# ------------------------------------------------------------------------- the server dies (runs last)


def test_killing_the_server_mid_stream_is_a_clear_error_and_the_app_keeps_serving(
    serve: ServeProcess, tiny_config
) -> None:
    from backend.services import generation as service

    serve.ensure_running()
    local = tiny_config.spec("tiny-chat").model_dump(exclude_none=True)
    remote = {"id": "remote-chat", "tasks": ["chat", "generate"], "backend": "openai", "base_url": serve.base_url,
              "model": serve.model, "max_context": 512, "timeout_s": 10}
    config = parse_config({"models": [local, remote]}, Path("models.yaml"))
    registry = Registry(config, create_engine)
    try:
        params = GenerationParams(max_new_tokens=400, temperature=0.0)
        stream = service.stream_chat(registry, "remote-chat", "Tell me a long story", params=params)
        assert isinstance(next(stream), Delta) and isinstance(next(stream), Delta)
        serve.kill()
        started = time.perf_counter()
        with pytest.raises(GenerationError) as caught:
            for _ in stream:
                pass
        assert time.perf_counter() - started < remote["timeout_s"]
        message = str(caught.value)
        assert "remote-chat" in message and serve.base_url in message and "check its logs" in message
        assert registry.status_of("remote-chat").active_requests == 0  # the lease ended with the stream

        # The local model is unaffected...
        _, final = drain(service.stream_chat(registry, "tiny-chat", "Hello there", params=GREEDY))
        assert final.stats.generated_tokens == GREEDY.max_new_tokens
        # ...and the next remote request says plainly that nobody answers, after one quick retry.
        started = time.perf_counter()
        with pytest.raises(GenerationError, match="cannot connect.*is the server running"):
            drain(service.stream_chat(registry, "remote-chat", "again", params=GREEDY))
        assert time.perf_counter() - started < 5.0
        assert probe(config.spec("remote-chat"))[0] is False
    finally:
        registry.close()


def test_models_tab_shows_whether_remote_endpoints_answer(serve: ServeProcess, tiny_config) -> None:
    from backend.core.config import AppConfig
    from backend.core.registry import Registry
    from tests.conftest import free_port
    from ui.models.tab import ModelsTab

    serve.ensure_running()  # an earlier test kills the server on purpose
    up = remote_spec(serve.base_url, model=serve.model, id="remote-up")
    down = remote_spec(f"http://127.0.0.1:{free_port()}/v1", id="remote-down")
    registry = Registry(AppConfig(models=(tiny_config.spec("tiny-chat"), up, down)), create_engine)
    tab = ModelsTab(registry=registry, table=None)
    weights = {row[0]: row[3] for row in tab.rows()["data"]}
    assert weights["remote-up"] == "remote: reachable"
    assert weights["remote-down"].startswith("remote: unreachable (") and "127.0.0.1" in weights["remote-down"]
    assert weights["tiny-chat"] == "local"
    assert all(status.state == "unloaded" for status in registry.status())  # probing loads nothing
