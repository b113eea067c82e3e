"""The HTTP API as one package (backend/api/), through the real server (`python app.py`, logins on):

- one login throttle for every route that checks a credential: repeated wrong passwords end in 429 on each
  route, the right password then gets 429 there too, and the count is shared with `/login` and the other routes;
- bad input of every kind is a 4xx naming the field, never a 500, on every route (bytes that are not UTF-8,
  100,000-deep nesting, a tool without its function, a bad token id with `echo`, bodies that are not objects);
- a large JSON Schema is compiled off the event loop: `GET /config` answers quickly meanwhile, and one over the
  size bound is refused naming `response_format`;
- while the largest request of every kind is served (the largest schema built and decoded, as `response_format` and
  as a forced tool's parameters; the longest chat, completions batch, embeddings batch, rating and tokenized chat
  the limits allow), `GET /config` answers in under `CONFIG_BOUND_S` every time it is asked.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import httpx
import pytest

from tests.app_process import AppProcess, models_yaml_variant, record_figures, wait_until
from tests.tiny_models import TOOLS_ID, tools_entry

# Launches the app, a server, a training process or real weights: the full tier (tests/tiers.py). Its /config
# stall bounds are wall-clock times: it runs alone, never beside another test (the `alone` marker, pytest.ini).
pytestmark = [pytest.mark.full, pytest.mark.alone]

ALICE = ("alice", "wonderland-4242")
API_TOKEN = "wb-token-5d2e8a1c7f"
WINDOW_S = 60  # long enough that nothing leaves the window during a test
ENV = {"WORKBENCH_AUTH": f"{ALICE[0]}:{ALICE[1]}", "WORKBENCH_API_TOKEN": API_TOKEN,
       "WORKBENCH_LOGIN_MAX_FAILURES": "3", "WORKBENCH_LOGIN_MAX_USER_FAILURES": "1000",
       "WORKBENCH_LOGIN_WINDOW_S": str(WINDOW_S)}

CHAT = {"model": "tiny-chat", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
# Every route that checks a credential, with a body it accepts (method, path, JSON body or None).
ROUTES = [
    ("POST", "/tokenize", {"model": "tiny-chat", "prompt": "hello"}),
    ("POST", "/detokenize", {"model": "tiny-chat", "tokens": [1, 2]}),
    ("GET", "/tokenizer_info?model=tiny-chat", None),
    ("POST", "/v1/embeddings", {"model": "tiny-chat", "input": "hello"}),
    ("POST", "/v1/feedback", {"model": "tiny-chat", "rating": "up",
                              "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    ("GET", "/v1/feedback", None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"model": "tiny-chat", "prompt": "hi", "max_tokens": 1}),
]


@pytest.fixture(scope="module")
def app(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    scratch = tmp_path_factory.mktemp("api-guard")
    env = {**ENV, "GRADIO_TEMP_DIR": str(scratch / "uploads"), "WORKBENCH_RUNS_DIR": str(scratch / "runs")}

    def with_tools(config: dict) -> None:  # tiny-chat's weights with a chat template that takes tools
        config["models"].append(tools_entry(next(entry for entry in config["models"] if entry["id"] == "tiny-chat")))

    models = models_yaml_variant(tiny_models_yaml, scratch / "models.yaml", with_tools)
    with AppProcess(models, env=env) as process:
        with client(process) as http:  # the port answers before the routes are mounted
            assert wait_until(lambda: http.get("/v1/models", headers=basic(*ALICE)).status_code == 200,
                              timeout=120, poll=0.5)
        yield process


def client(app: AppProcess, address: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client whose requests come from `address` (a loopback address: a distinct client to the app)."""
    return httpx.Client(base_url=app.url.rstrip("/"), timeout=120,
                        transport=httpx.HTTPTransport(local_address=address))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def call(http: httpx.Client, method: str, path: str, body: Optional[dict], headers: dict[str, str]) -> httpx.Response:
    return http.request(method, path, json=body, headers=headers)


# ------------------------------------------------------------------------------------------ one throttle


@pytest.mark.parametrize("number, route", list(enumerate(ROUTES)), ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_wrong_passwords_end_in_429_on_every_route(app: AppProcess, number: int, route: tuple) -> None:
    method, path, body = route
    with client(app, f"127.0.3.{number + 1}") as guesser:
        statuses = [call(guesser, method, path, body, basic(ALICE[0], f"guess-{i}")).status_code for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429], (path, statuses)
        refused = call(guesser, method, path, body, basic(*ALICE))  # the right password, while blocked
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "too_many_login_attempts"
        assert call(guesser, method, path, body, {"Authorization": f"Bearer {API_TOKEN}"}).status_code == 429
    with client(app, f"127.0.4.{number + 1}") as other:  # another client is not blocked
        answer = call(other, method, path, body, basic(*ALICE))
        # 200, or for /v1/embeddings 400: tiny-chat is no embed model (the request got past the login).
        assert answer.status_code == (400 if path == "/v1/embeddings" else 200), (path, answer.text[:300])


def test_failures_on_the_tokenizer_routes_count_with_login_and_v1(app: AppProcess) -> None:
    with client(app, "127.0.5.1") as guesser:
        # ~800 tries/s used to go uncounted here; now they share the count of /login and /v1.
        assert guesser.post("/tokenize", json={"prompt": "x"}, headers=basic(ALICE[0], "a")).status_code == 401
        assert guesser.get("/tokenizer_info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert guesser.post("/login", data={"username": ALICE[0], "password": "b"}).status_code == 400
        assert guesser.get("/v1/models", headers=basic(*ALICE)).status_code == 429
        assert guesser.post("/login", data={"username": ALICE[0], "password": ALICE[1]}).status_code == 429
        assert guesser.post("/detokenize", json={"tokens": [1]}, headers=basic(*ALICE)).status_code == 429
    with client(app, "127.0.5.2") as guesser:
        # No credentials at all is refused, but is no guess: it never blocks.
        assert [guesser.get("/tokenizer_info").status_code for _ in range(5)] == [401] * 5
        assert guesser.get("/tokenizer_info?model=tiny-chat", headers=basic(*ALICE)).status_code == 200


# ------------------------------------------------------------------------------------------ bad input

DEEP = 100_000
# Per route: the body with a bad byte (0xff) inside one string field, and the field it must name.
NOT_UTF8 = [
    ("/v1/chat/completions", b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "hi \xff"}]}',
     "messages[0].content"),
    ("/v1/completions", b'{"model": "tiny-chat", "prompt": "a \xff b"}', "prompt"),
    ("/v1/embeddings", b'{"model": "tiny-chat", "input": ["ok", "\xfe\xff"]}', "input[1]"),
    ("/v1/feedback", b'{"model": "tiny-chat", "rating": "up", "messages": [{"role": "user", "content": "\xff"}]}',
     "messages[0].content"),
    ("/tokenize", b'{"model": "tiny-chat", "prompt": "\xc3\x28"}', "prompt"),
    ("/detokenize", b'{"model": "tiny\xff", "tokens": [1]}', "model"),
]
POSTS = [path for path, _, _ in NOT_UTF8]
FIELD_OF = {"/v1/chat/completions": "messages", "/v1/completions": "prompt", "/v1/embeddings": "input",
            "/v1/feedback": "messages", "/tokenize": "prompt", "/detokenize": "tokens"}


@pytest.fixture(scope="module")
def alice(app: AppProcess) -> Iterator[httpx.Client]:
    with client(app, "127.0.6.1") as http:
        http.headers.update(basic(*ALICE))
        yield http


def post_raw(http: httpx.Client, path: str, raw: bytes) -> httpx.Response:
    return http.post(path, content=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path, raw, field", NOT_UTF8, ids=POSTS)
def test_bytes_that_are_not_utf8_name_their_field(alice: httpx.Client, path: str, raw: bytes, field: str) -> None:
    answer = post_raw(alice, path, raw)
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["param"] == field, (path, answer.text[:300])
    assert error["message"].startswith(f"{field}: is not valid UTF-8 (byte 0x")


@pytest.mark.parametrize("path", POSTS)
def test_100000_deep_nesting_names_the_field(alice: httpx.Client, path: str) -> None:
    field = FIELD_OF[path]
    raw = f'{{"model": "tiny-chat", "{field}": {"[" * DEEP}{"]" * DEEP}}}'.encode()
    answer = post_raw(alice, path, raw)
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["code"] == "too_deep", (path, answer.text[:300])
    assert error["param"].startswith(f"{field}[0][0]") and "nests deeper than 64 levels" in error["message"]
    # Parseable, but deeper than the bound: the same answer.
    raw = f'{{"model": "tiny-chat", "{field}": {"[" * 500}{"]" * 500}}}'.encode()
    answer = post_raw(alice, path, raw)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "too_deep", (path, answer.text[:300])


# Bodies that are wrong as a whole; each route must answer 4xx with an error message, never 5xx.
WHOLE_BODIES = [b"", b"{", b"[]", b"null", b'"text"', b"1e999999", b"\xff\xfe{}", b'{"model": {"a": 1}}',
                b'{"model": "tiny-chat", "messages": 5, "prompt": 5, "input": 5, "tokens": 5}',
                b'{"model": "tiny-chat", "messages": [null], "prompt": [null], "input": [null], "tokens": [null]}',
                b'{"model": "tiny-chat", "\xff": 1}']


@pytest.mark.parametrize("path", POSTS)
def test_no_body_makes_any_route_fail_with_a_500(alice: httpx.Client, path: str) -> None:
    answers = {raw: post_raw(alice, path, raw) for raw in WHOLE_BODIES}
    for raw, answer in answers.items():
        assert 400 <= answer.status_code < 500, (path, raw, answer.status_code, answer.text[:300])
        assert answer.json()["error"]["message"], (path, raw)


def test_a_tool_without_its_function_names_the_field(alice: httpx.Client) -> None:
    answer = alice.post("/v1/chat/completions", json={**CHAT, "tools": [{"type": "function"}]})
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["param"] == "tools[0].function", answer.text[:300]
    answer = alice.post("/v1/chat/completions", json={**CHAT, "messages": [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}, {"role": "user", "content": "hi"}]})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "messages[0].tool_calls[0].function"


def test_a_bad_token_id_with_echo_names_prompt(alice: httpx.Client) -> None:
    answer = alice.post("/v1/completions", json={"model": "tiny-chat", "prompt": [[1, 99_999_999]], "echo": True,
                                                  "max_tokens": 1})
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["param"] == "prompt", answer.text[:300]
    assert error["message"].startswith("prompt: token 1 is 99999999")
    answer = alice.post("/detokenize", json={"model": "tiny-chat", "tokens": [99_999_999]})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "tokens"


# ------------------------------------------------------------------------------------------ grammar builds


def wide_schema(properties: int) -> dict:
    """An object schema with many properties: slow to compile (~0.3-0.5 s at 1,900, 58 kB, on a quiet machine)."""
    return {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(properties)},
            "required": [f"p{i}" for i in range(0, properties, 7)]}


def config_seconds(page: httpx.Client) -> float:
    begin = time.perf_counter()
    assert page.get("/config").status_code == 200
    return time.perf_counter() - begin


def test_schemas_compile_off_the_event_loop_and_a_huge_one_is_refused(app: AppProcess, alice: httpx.Client) -> None:
    """Builds alone: each request's `logit_bias` names a token outside the vocabulary, which is refused right after
    the grammar is built (before any decoding, whose own cost is the engine's and not measured here)."""
    def chat(properties: int) -> httpx.Response:
        body = {**CHAT, "logit_bias": {"99999999": 1}, "response_format": {"type": "json_schema", "json_schema": {
            "name": "w", "schema": wide_schema(properties)}}}
        return alice.post("/v1/chat/completions", json=body)

    # Not measured: tiny-chat's load, and the start of both builder processes (each a new Python importing
    # llguidance: the second one started inside the measured builds stretched the first /config to 0.9-1.2 s).
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert all(reply.json()["error"]["param"] == "logit_bias" for reply in pool.map(chat, [10, 1000]))
    with client(app, "127.0.7.1") as page:
        assert page.post("/login", data={"username": ALICE[0], "password": ALICE[1]}).status_code == 200
        idle = sorted(config_seconds(page) for _ in range(5))
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            started = time.monotonic()
            replies = [pool.submit(chat, 1900 + i) for i in range(6)]
            waits = []
            while not all(reply.done() for reply in replies):
                waits.append(config_seconds(page))
            busy_s = time.monotonic() - started
        assert all(reply.result().json()["error"]["param"] == "logit_bias" for reply in replies)
        # /config is served while six builds (~2-3 s of CPU on the event loop before) run in worker processes.
        # Bound: assert_quick's (the median CONFIG_BOUND_S over twice the idle median, the worst STALL_S over twice
        # the idle worst); a build on the loop fails both. It was the worst under 0.5 s over the idle worst, which
        # full garbage collections landing in the idle samples (0.3-0.45 s) had loosened: once they were gone
        # (backend/core/heap.py) the first sample, as the six requests arrive with both builders busy on the
        # 2-core machine, reached 0.6-1.2 s at load 5-8 against idle worsts of 0.11-0.23 s.
        waits.sort()
        assert len(waits) >= 2 and waits[len(waits) // 2] < CONFIG_BOUND_S + 2 * idle[2], (waits, idle, busy_s)
        assert waits[-1] < STALL_S + 2 * idle[-1], (waits, idle, busy_s)
    huge = chat(3000)  # 92 kB
    error = huge.json()["error"]
    assert huge.status_code == 400 and error["param"] == "response_format" and error["code"] == "schema_too_large"
    record_figures("api_grammar_off_loop", {"config_idle_s": [round(w, 3) for w in idle],
                                            "config_during_builds_s": [round(w, 3) for w in waits],
                                            "six_builds_s": round(busy_s, 2), "huge": error["message"]})


CONFIG_BOUND_S = 0.5  # the bound on GET /config while the largest allowed requests are served
STALL_S = 1.0  # no single /config may wait this much longer than twice the idle worst (seen: up to 0.58 s)
BOUND_SCHEMA_BYTES = 64 * 1024  # backend/api/grammar.py MAX_SCHEMA_BYTES


def any_optional(properties: int) -> dict:
    """Optional properties of any type: cheap to send, costly to prepare (quadratic; 5,000 in 64 kB: ~3 CPU-s)."""
    return {"type": "object", "properties": {f"p{i}": {} for i in range(properties)}}


def config_while(page: httpx.Client, work: Callable[[], httpx.Response],
                 samples: int = 3) -> tuple[list[float], httpx.Response]:
    """`GET /config` timed again and again while `work` runs in another thread (the samples begun before it
    ended; `work` is run again until there are `samples` of them), and what `work` answered last."""
    waits: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        while len(waits) < samples:
            future = pool.submit(work)
            while not future.done():
                waits.append(config_seconds(page))
                time.sleep(0.1)  # a page asks now and then; back to back, the samples would be the server's load
            answer = future.result()
    return waits, answer


@pytest.fixture(scope="module")
def page(app: AppProcess) -> Iterator[httpx.Client]:
    """A logged-in browser's view of the app: what it asks `/config` with. tiny-chat is loaded first (a model's
    load is not what is measured)."""
    with client(app, "127.0.8.1") as http:
        assert http.post("/login", data={"username": ALICE[0], "password": ALICE[1]}).status_code == 200
        assert http.post("/v1/chat/completions", json=CHAT, headers=basic(*ALICE)).status_code == 200
        yield http


def assert_quick(name: str, idle: list[float], waits: list[float], answer: httpx.Response, figures: dict) -> None:
    """`/config` while a request was served: its median under CONFIG_BOUND_S over twice the idle median just before
    (twice: the request's own thread, decoding or embedding, may take half the process's CPU and GIL, which slows
    /config's own work, a 913 kB config, as much; a blocked event loop adds its blocking time on top). On a quiet
    machine /config takes ~0.05 s idle, so this is the issue's "under 0.5 s"; on a shared, overloaded one (the idle
    samples say how much) the bound moves with the load. The worst sample has a wider bound, STALL_S over twice the
    idle worst: a worker thread still holds the GIL for single C calls (the 1.8 million ids of the longest tokenized
    chat made into Python ints, ~0.08 s on a quiet machine; docs/RELIABILITY.md), which a loaded machine stretches,
    but no request may hold the process for seconds (64 long completions prompts held the loop 7-10 s while all 64
    tokenized at once; /tokenize's JSONResponse encoded its ids on the loop in one 0.22 CPU-s call; full garbage
    collections of the server's ~560,000 objects stopped every thread for 0.3-0.4 CPU-s, 2-6 times a request,
    until the server froze its long-lived objects, backend/core/heap.py)."""
    idle, waits = sorted(idle), sorted(waits)
    figures[name] = {"status": answer.status_code, "samples": len(waits),
                     "config_idle_median_s": round(idle[len(idle) // 2], 3), "config_idle_max_s": round(idle[-1], 3),
                     "config_median_s": round(waits[len(waits) // 2], 3), "config_max_s": round(waits[-1], 3)}
    assert answer.status_code < 500, (name, answer.status_code, answer.text[:300])
    assert len(waits) >= 3, (name, waits)  # several samples while the request was served
    assert waits[len(waits) // 2] < CONFIG_BOUND_S + 2 * idle[len(idle) // 2], (name, waits, idle)
    assert waits[-1] < STALL_S + 2 * idle[-1], (name, waits, idle)


def idle_config(page: httpx.Client) -> list[float]:
    return [config_seconds(page) for _ in range(5)]


def test_config_stays_quick_while_the_largest_schemas_are_built_and_decoded(alice: httpx.Client,
                                                                           page: httpx.Client) -> None:
    """The largest schema the size bound allows, built and then followed while decoding (tiny-chat writes JSON until
    max_tokens) as `response_format`, and built as a forced tool's parameters; then a schema of the same size that is
    refused as too complex once its matcher is costed (the decode step would have paid that inside a batch)."""
    schema = wide_schema(2100)
    assert BOUND_SCHEMA_BYTES - 2048 < len(json.dumps(schema)) <= BOUND_SCHEMA_BYTES
    tool = {"type": "function", "function": {"name": "fill", "parameters": wide_schema(2000)}}
    assert len(json.dumps([tool["function"]])) <= BOUND_SCHEMA_BYTES
    decoding = {**CHAT, "max_tokens": 48, "temperature": 0}
    figures: dict = {}

    idle = idle_config(page)
    waits, answer = config_while(page, lambda: alice.post("/v1/chat/completions", timeout=600, json={
        **decoding, "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}}))
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"].startswith('{"p0": ')
    assert_quick("response_format_64kB", idle, waits, answer, figures)

    idle = idle_config(page)
    waits, answer = config_while(page, lambda: alice.post("/v1/chat/completions", timeout=600, json={
        **decoding, "model": TOOLS_ID, "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "fill"}}}))
    # Built and accepted (a refused build names `tools`); then the 44,000-token prompt the tool's definition makes
    # is over tiny's 512-token context: the decode step is the response_format case's.
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "context_length_exceeded", answer.text
    assert_quick("forced_tool_61kB", idle, waits, answer, figures)

    costly = any_optional(3500)
    idle = idle_config(page)
    waits, answer = config_while(page, lambda: alice.post("/v1/chat/completions", timeout=600, json={
        **decoding, "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": costly}}}))
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["code"] == "schema_too_complex", answer.text[:300]
    assert error["param"] == "response_format" and ("CPU-s" in error["message"] or "to compile" in error["message"])
    assert_quick("costly_schema_refused", idle, waits, answer, figures)
    record_figures("api_config_during_schemas", figures)


def test_config_stays_quick_while_the_largest_request_of_every_kind_is_served(alice: httpx.Client,
                                                                             page: httpx.Client) -> None:
    """Each route's largest request under the default limits (4 MB bodies, 2 MB for feedback; 100,000 characters a
    text, 1,000 history messages, 2,048 texts to embed, 64 completions prompts). The 64 prompts of 60,000 characters
    (tiny-chat refuses the first one it has tokenized: 27,888 tokens over its 512) once had their 64 stream threads
    tokenizing at once: /config took 4-8 s meanwhile (idle 0.1-0.4); local engines now tokenize at most
    cores - 1 texts at a time (backend/engines/runtime.py, docs/RELIABILITY.md)."""
    from tests.test_bounds_server import longest_history

    history = longest_history()  # 1,000 messages, 3.97 MB: the longest the limits allow
    text = "the printing press spread news and ideas across europe within decades. "
    longest = (text * 1400)[:100_000]  # the most characters one message may hold
    figures: dict = {}
    requests: list[tuple[str, str, dict]] = [
        ("chat", "/v1/chat/completions", {"model": "tiny-chat", "max_tokens": 1, "messages": history}),
        ("completions", "/v1/completions", {"model": "tiny-chat", "max_tokens": 1,
                                            "prompt": [(text * 900)[:60_000]] * 64}),
        ("embeddings", "/v1/embeddings", {"model": "tiny-embed", "input": [(text * 27)[:1_900]] * 2048}),
        ("feedback", "/v1/feedback", {"model": "tiny-chat", "rating": "up", "index": 1, "messages": [
            {"role": "user", "content": longest}, {"role": "assistant", "content": longest}]
            + [{"role": "user" if i % 2 else "assistant", "content": text * 11} for i in range(998)]}),
        ("tokenize", "/tokenize", {"model": "tiny-chat", "messages": [
            {"role": "user" if i % 2 == 0 else "assistant", "content": (text * 56)[:3_900]} for i in range(1000)]}),
    ]
    for name, path, body in requests:
        size = len(json.dumps(body))
        assert size < (2_000_000 if name == "feedback" else 4 * 2**20), (name, size)
        idle = idle_config(page)
        waits, answer = config_while(page, lambda: alice.post(path, json=body, timeout=600))
        assert_quick(name, idle, waits, answer, figures)
        figures[name]["body_mb"] = round(size / 2**20, 2)
    record_figures("api_config_during_largest_requests", figures)


def test_an_unknown_route_is_a_404_and_a_bad_query_names_its_field(alice: httpx.Client) -> None:
    # An unknown route under /v1 is no API route: plain 404, no credential counted.
    assert alice.get("/v1/nope").status_code == 404
    answer = alice.get("/v1/feedback?limit=0")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "limit"
    assert json.loads(answer.text)["error"]["type"] == "invalid_request_error"


def test_a_grammar_build_leaves_the_event_loop_free() -> None:
    """In-process, without the server's noise: a coroutine keeps ticking while a schema compiles (on the event
    loop, as before, it could not tick once until the build was over)."""
    import asyncio

    from backend.api.grammar import schema_grammar

    async def measure() -> tuple[int, float]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        ticks, begin = 0, time.perf_counter()
        await schema_grammar(wide_schema(1900))
        took = time.perf_counter() - begin
        done.set()
        await task
        return ticks, took

    from tests.test_streams import run_in_own_loop  # a browser test may have left a loop running in this thread

    ticks, took = run_in_own_loop(measure)
    assert took > 0.05 and ticks >= 3, (ticks, took)


def test_the_error_handler_takes_param_from_the_errors_field() -> None:
    from backend.api.errors import api_error
    from backend.core.types import BusyError, InvalidInputError, ModelNotFoundError

    typed = api_error(InvalidInputError("must be a number between 0 and 5", field="temperature"))
    assert (typed.status, typed.param) == (400, "temperature")  # no "field:" in the message needed
    from backend.core.error_codes import refuse

    # A coded error about a field the API calls otherwise is said again from its template under the API's name.
    renamed = api_error(refuse("between", "max_new_tokens", low=1, high=8192, got=9000))
    assert (renamed.param, renamed.message) == ("max_tokens", "max_tokens: must be between 1 and 8192, got 9000")
    assert api_error(InvalidInputError("too long", field="history[2]"), input_field="messages").param == "messages"
    assert api_error(InvalidInputError("empty", field="prompt"), input_field="prompt").param == "prompt"
    # The field wins over whatever the message starts with.
    assert api_error(InvalidInputError("top_p: bad", field="top_k")).param == "top_k"
    # An error that names no field has no param: nothing reads the message back.
    assert api_error(InvalidInputError("seed: must be whole")).param is None
    assert api_error(ModelNotFoundError("unknown model 'x'")).status == 404
    busy = api_error(BusyError("queue full"))
    assert busy.status == 429 and busy.response().headers["Retry-After"] == "1"
    assert api_error(ValueError("boom")).status == 500
