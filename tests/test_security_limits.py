"""Issue 15 items 5-8, 11, 12: failed-login throttling, weak passwords, body / upload / session bounds, login and
ownership on Gradio's heartbeat and cancel routes, and the minor holes (lone surrogates, /openapi.json, escaped
choice errors, unknown fn_index, log lines).

Everything runs against the real `python app.py` (tests/app_process.py) over HTTP and gradio_client, except the
session-expiry and choice-error checks, which launch a small Blocks through the same `ui.launch` in this process
so they can look at Gradio's session table. Different clients are different loopback addresses (127.0.0.x all
reach the server on Linux), so the per-client throttle sees them apart.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.app_process import AppProcess, record_figures, wait_until
from tests.conftest import ROOT
from tests.tiers import full_tier

ALICE = ("alice", "wonderland-4242")
BOB = ("bob", "builder-with-colons:1")
CAROL = ("carol", "carol-secret-99")
API_TOKEN = "wb-token-8c1f4e2a9d7b"
WINDOW_S = 5
MB = 1024 * 1024

ENV = {
    "WORKBENCH_AUTH": ",".join(f"{u}:{p}" for u, p in (ALICE, BOB, CAROL)), "WORKBENCH_API_TOKEN": API_TOKEN,
    "WORKBENCH_LOGIN_MAX_FAILURES": "3", "WORKBENCH_LOGIN_MAX_USER_FAILURES": "6",
    "WORKBENCH_LOGIN_WINDOW_S": str(WINDOW_S),
    "WORKBENCH_MAX_BODY_MB": "1", "WORKBENCH_MAX_UPLOAD_MB": "1", "WORKBENCH_MAX_UPLOAD_REQUEST_MB": "1.5",
    "WORKBENCH_MAX_USER_UPLOADS_MB": "2", "WORKBENCH_UPLOAD_TTL_S": "8", "WORKBENCH_MAX_SESSIONS": "10",
}


@pytest.fixture(scope="module")
@full_tier
def app(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    uploads = tmp_path_factory.mktemp("gradio-uploads")  # this app's own upload folder, to look into
    with AppProcess(tiny_models_yaml, env={**ENV, "GRADIO_TEMP_DIR": str(uploads)}) as process:
        yield process


def client(app: AppProcess, address: str = "127.0.0.1", timeout: float = 30) -> httpx.Client:
    """An HTTP client whose requests come from `address` (a loopback address: a distinct client to the app)."""
    return httpx.Client(base_url=app.url.rstrip("/"), timeout=timeout,
                        transport=httpx.HTTPTransport(local_address=address))


@contextmanager
def logged_in(app: AppProcess, user: tuple[str, str], address: str = "127.0.0.1") -> Iterator[httpx.Client]:
    with client(app, address) as http:
        assert http.post("/login", data={"username": user[0], "password": user[1]}).status_code == 200
        yield http


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# ------------------------------------------------------------------------------------------ item 5: logins


def test_failed_logins_on_the_form_are_throttled_per_client(app: AppProcess) -> None:
    from gradio_client import Client

    guesser = client(app, "127.0.0.2")
    # The browser's login form posts multipart data, gradio_client's login posts urlencoded: both count.
    answers = [guesser.post("/login", files={"username": (None, ALICE[0]), "password": (None, "guess-0")})]
    answers += [guesser.post("/login", data={"username": ALICE[0], "password": f"guess-{i}"}) for i in range(1, 5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429, 429]
    refused = answers[-1]
    assert refused.json()["detail"].startswith("too many failed login attempts; try again in ")
    # Throttled means throttled: the right password from that client is refused too...
    assert guesser.post("/login", data={"username": ALICE[0], "password": ALICE[1]}).status_code == 429
    # ...while another client logs in as the same user (gradio_client, from 127.0.0.1), and uses the app.
    alice = Client(app.url, auth=ALICE, verbose=False)
    assert alice.predict(message="hi", model="tiny-chat", max_new_tokens=2, api_name="/chat")
    alice.close()
    # After the window the guesser's client may log in again.
    assert wait_until(lambda: guesser.post("/login", data={"username": ALICE[0], "password": ALICE[1]})
                      .status_code == 200, timeout=WINDOW_S * 4, poll=0.5)
    record_figures("login_throttle_form", {"statuses": [a.status_code for a in answers],
                                           "answer": refused.json()["detail"]})


def test_failed_logins_on_the_api_are_throttled_with_retry_after(app: AppProcess) -> None:
    guesser = client(app, "127.0.0.3")
    statuses = [guesser.get("/v1/models", headers=basic(BOB[0], f"guess-{i}")).status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    refused = guesser.get("/v1/models", headers=basic(BOB[0], "guess-3"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "too_many_login_attempts"
    assert "too many failed login attempts" in refused.json()["error"]["message"]
    assert guesser.get("/v1/models", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 429
    assert client(app, "127.0.0.4").get("/v1/models", headers=basic(*BOB)).status_code == 200
    # Bearer tokens count per client too.
    tokens = client(app, "127.0.0.5")
    statuses = [tokens.get("/v1/models", headers={"Authorization": f"Bearer wrong-{i}"}).status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert wait_until(lambda: guesser.get("/v1/models", headers=basic(*BOB)).status_code == 200,
                      timeout=WINDOW_S * 4, poll=0.5)
    record_figures("login_throttle_api", {"answer": refused.json()["error"]["message"],
                                          "retry_after": refused.headers["Retry-After"]})


def test_failed_logins_against_one_user_are_throttled_across_clients(app: AppProcess) -> None:
    for i in range(6):  # 2 guesses from each of 3 addresses: no client reaches its own limit of 3
        answer = client(app, f"127.0.1.{i // 2 + 1}").post("/login", data={"username": CAROL[0], "password": f"g{i}"})
        assert answer.status_code == 400
    fresh = client(app, "127.0.1.9")
    assert fresh.post("/login", data={"username": CAROL[0], "password": CAROL[1]}).status_code == 429
    assert fresh.get("/v1/models", headers=basic(*CAROL)).status_code == 429  # every channel shares the count
    assert fresh.post("/login", data={"username": ALICE[0], "password": ALICE[1]}).status_code == 200
    assert wait_until(lambda: fresh.post("/login", data={"username": CAROL[0], "password": CAROL[1]})
                      .status_code == 200, timeout=WINDOW_S * 4, poll=0.5)


@pytest.mark.full
@pytest.mark.parametrize("auth, message", [
    ("alice:abc123", "WORKBENCH_AUTH: the password of user 'alice' is shorter than 8 characters; choose a longer one"),
    ("alice:ALICE", "WORKBENCH_AUTH: the password of user 'alice' is shorter than 8 characters; choose a longer one"),
    ("bobsmith:bobsmith", "WORKBENCH_AUTH: the password of user 'bobsmith' is the user name; choose another one"),
])
def test_weak_passwords_stop_the_app_at_start_up(tiny_models_yaml: Path, auth: str, message: str) -> None:
    env = {**os.environ, "WORKBENCH_AUTH": auth, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "app.py", "--models", str(tiny_models_yaml), "--port", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {message}"
    assert auth.split(":")[1] not in done.stderr.replace("'alice'", "").replace("'bobsmith'", "")


# ------------------------------------------------------------------------------- item 7: request bodies


def raw_post(app: AppProcess, path: str, declared: int, sent: bytes, headers: str = "") -> tuple[str, float]:
    """POSTs a body declared as `declared` bytes but sends only `sent`: the answer must come without the rest."""
    with socket.create_connection(("127.0.0.1", app.port), timeout=20) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
                      f"Content-Length: {declared}\r\n\r\n").encode() + sent)
        started = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode("latin-1"), time.monotonic() - started


def test_over_limit_bodies_are_refused_before_they_are_read(app: AppProcess) -> None:
    before = app.rss_mb()
    auth = basic(*ALICE)["Authorization"]
    answer, _ = raw_post(app, "/v1/chat/completions", 100 * MB, b'{"model": "tiny-chat", "messages": [',
                         f"Authorization: {auth}\r\n")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    body = json.loads(answer.split("\r\n\r\n", 1)[1])
    assert body["error"]["message"] == "the request body (100.0 MB) is over the 1 MB limit (WORKBENCH_MAX_BODY_MB)"
    with logged_in(app, ALICE) as alice:
        cookie = "; ".join(f"{k}={v}" for k, v in alice.cookies.items())
        answer, _ = raw_post(app, "/gradio_api/queue/join", 100 * MB, b'{"data": [', f"Cookie: {cookie}\r\n")
        assert answer.startswith("HTTP/1.1 413") and "WORKBENCH_MAX_BODY_MB" in answer, answer[:300]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams, refused once past 1 MB
            for _ in range(40):
                yield b" " * 100_000

        streamed = alice.post("/gradio_api/queue/join", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert streamed.json()["detail"] == "the request body is over the 1 MB limit (WORKBENCH_MAX_BODY_MB)"
        at_limit = alice.post("/v1/chat/completions", headers=basic(*ALICE), json={
            "model": "tiny-chat", "max_tokens": 1, "messages": [{"role": "user", "content": "word " * 200_000}]})
        assert at_limit.status_code != 413  # 1 MB is allowed through (the model then refuses a context too long)
    after = app.rss_mb()
    assert after - before < 100, (before, after)  # +300 MB when a 100 MB body was read whole
    record_figures("body_limit", {"limit_mb": 1, "declared_100mb": 413, "streamed_4mb": streamed.status_code,
                                  "at_limit_status": at_limit.status_code, "rss_before_mb": round(before),
                                  "rss_after_mb": round(after), "peak_mb": peak_mb(app)})


def peak_mb(app: AppProcess) -> float:
    status = Path(f"/proc/{app.popen.pid}/status").read_text()
    return round(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024)


def test_a_malformed_queue_request_reaches_the_log_only_in_part(app: AppProcess) -> None:
    marker = "Q" * 200_000
    with logged_in(app, ALICE) as alice:
        config = alice.get("/config").json()
        types = {c["id"]: c["type"] for c in config["components"]}
        choice_fn = next(i for i, d in enumerate(config["dependencies"])
                         if any(types.get(x) in ("dropdown", "radio") for x in d["inputs"]))
        inputs = config["dependencies"][choice_fn]["inputs"]
        data = [marker if types.get(x) in ("dropdown", "radio") else None for x in inputs]
        alice.post("/gradio_api/run/predict", json={"data": data, "fn_index": choice_fn, "session_hash": "m1"})
        alice.post("/gradio_api/queue/join", json={"data": data, "fn_index": choice_fn, "session_hash": "m2"})
        alice.post("/gradio_api/queue/join", json={"data": marker, "fn_index": choice_fn, "session_hash": "m3"})
    time.sleep(1)  # let the app flush what it printed
    output = app.output()
    longest = max(len(line) for line in output.splitlines())
    assert output.count("Q") < 2000 and longest < 700, (output.count("Q"), longest)
    record_figures("log_cap", {"marker_chars_sent": 3 * len(marker), "marker_chars_logged": output.count("Q"),
                               "longest_log_line": longest})


# ------------------------------------------------------------------------------------- item 6: uploads


def test_uploads_are_bounded_per_request_and_per_user_and_expire(app: AppProcess) -> None:
    part = b"text\n" + b"a" * int(0.7 * MB)
    with logged_in(app, ALICE, "127.0.2.1") as alice, logged_in(app, BOB, "127.0.2.2") as bob:
        both = alice.post("/gradio_api/upload", files=[("files", ("a.csv", part)), ("files", ("b.csv", part)),
                                                     ("files", ("c.csv", part))])
        assert both.status_code == 413 and "WORKBENCH_MAX_UPLOAD_REQUEST_MB" in both.json()["detail"], both.text
        kept = [alice.post("/gradio_api/upload", files={"files": (f"{i}.csv", part)}) for i in range(2)]
        assert [k.status_code for k in kept] == [200, 200]
        paths = [k.json()[0] for k in kept]
        third = alice.post("/gradio_api/upload", files={"files": ("2.csv", part)})
        assert third.status_code == 413, third.text
        assert "over the 2 MB kept per user (WORKBENCH_MAX_USER_UPLOADS_MB)" in third.json()["detail"]
        assert bob.post("/gradio_api/upload", files={"files": ("b.csv", part)}).status_code == 200  # his own room
        # WORKBENCH_UPLOAD_TTL_S=8: the files go, and with them the room they took.
        assert wait_until(lambda: not any(os.path.exists(p) for p in paths), timeout=40, poll=0.5)
        assert alice.get(f"/gradio_api/file={paths[0]}").status_code in (403, 404)
        assert alice.post("/gradio_api/upload", files={"files": ("3.csv", part)}).status_code == 200
    record_figures("upload_limits", {"per_request": f"{both.status_code} {both.json()['detail']}",
                                     "per_user": f"{third.status_code} {third.json()['detail']}"})


# -------------------------------------------------------------------- item 8: sessions; item 11: routes


def test_sessions_are_bounded(app: AppProcess) -> None:
    with logged_in(app, ALICE) as alice:
        alice.post("/gradio_api/run/models", json={"data": [], "session_hash": "warm-up"})
        before = app.rss_mb()
        for i in range(150):
            assert alice.post("/gradio_api/run/models", json={"data": [], "session_hash": f"s{i}"}).status_code == 200
        after = app.rss_mb()
    # A session holds what it changed (ui/server/session_memory.py): the bound keeps 150 new ones from adding up.
    assert after - before < 30, (before, after)
    record_figures("sessions", {"max_sessions": 10, "sessions_opened": 150, "rss_before_mb": round(before),
                                "rss_after_mb": round(after)})


def test_heartbeat_cancel_and_openapi_need_the_login_and_the_sessions_owner(app: AppProcess) -> None:
    from gradio_client import Client

    anonymous = client(app)
    for method, path in [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/gradio_api/heartbeat/some-session"),
                         ("POST", "/gradio_api/cancel")]:
        kwargs = {"json": {"session_hash": "x", "fn_index": 0, "event_id": "y"}} if method == "POST" else {}
        assert anonymous.request(method, path, **kwargs).status_code == 401, path
    alice = Client(app.url, auth=ALICE, verbose=False)
    job = alice.submit(message="hi", model="tiny-chat", max_new_tokens=60, api_name="/chat")
    assert wait_until(lambda: len(job.outputs()) > 0, timeout=60)  # streaming: the run is under way
    with logged_in(app, BOB) as bob:
        assert bob.get("/openapi.json").status_code == 200
        stolen = bob.post("/gradio_api/cancel", json={"session_hash": alice.session_hash, "fn_index": 0,
                                                       "event_id": "any"})
        assert stolen.status_code == 403 and stolen.json()["detail"] == "this session belongs to another user"
        with bob.stream("GET", f"/gradio_api/heartbeat/{alice.session_hash}") as beat:
            assert beat.status_code == 403
    final = job.result(timeout=120)
    assert len(final) > 0 and job.status().success  # Alice's run finished: nobody else could stop it
    alice.close()


def test_a_lone_surrogate_gets_a_clear_400_and_an_unknown_fn_index_a_422(app: AppProcess) -> None:
    raw = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    answer = httpx.post(f"{app.url}v1/chat/completions", content=raw, timeout=30,
                        headers={**basic(*ALICE), "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "messages[0].content"
    assert "lone UTF-16 surrogate (\\ud800)" in answer.json()["error"]["message"]
    with logged_in(app, ALICE) as alice:
        data = ["hi \ud800", "tiny-chat"] + [None] * 9  # json.dumps writes the surrogate as \ud800
        event = alice.post("/gradio_api/call/chat", content=json.dumps({"data": data}),
                           headers={"Content-Type": "application/json"}).json()["event_id"]
        stream = alice.get(f"/gradio_api/call/chat/{event}").text
        assert "event: error" in stream and "lone UTF-16 surrogate" in stream, stream[:500]
        for index in (99_999, "x", None):
            bad = alice.post("/gradio_api/queue/join", json={"data": [], "fn_index": index, "session_hash": "f"})
            assert bad.status_code == 422, (index, bad.status_code, bad.text[:200])
    record_figures("minor", {"surrogate_v1": answer.json()["error"]["message"], "surrogate_ui": stream[:300]})


# --------------------------------------------------------------- in-process: session expiry, choice errors


@pytest.mark.full
def test_idle_sessions_expire_and_choice_errors_are_escaped() -> None:
    import gradio as gr
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    import ui
    from backend.guard.limits import RequestLimits
    from backend.guard.security import SecuritySettings
    from tests.conftest import free_port

    with gr.Blocks() as demo:
        pick = gr.Dropdown(["a", "b"], value="a", label="Model")
        out = gr.Textbox()
        pick.change(lambda value: value, pick, out, api_name="pick")
    port = free_port()
    app = ui.launch(demo, host="127.0.0.1", port=port, security=SecuritySettings(),
                    limits=RequestLimits(session_idle_s=4), prevent_thread_lock=True)
    try:
        user = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(AppError) as refused:
            user.predict("<img src=x onerror=alert(1)>", api_name="/pick")
        assert str(refused.value) == "Model: '&lt;img src=x onerror=alert(1)&gt;' is not one of the choices"
        assert user.predict("b", api_name="/pick") == "b"
        assert user.session_hash in app.state_holder.session_data  # kept while in use...
        assert wait_until(lambda: user.session_hash not in app.state_holder.session_data, timeout=40)  # ...then not
        user.close()
    finally:
        demo.close()
