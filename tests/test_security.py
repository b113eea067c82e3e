"""Security: custom code refused unless opted in, the file route confined to the app's files, upload limits,
authentication from the environment over the UI / Gradio API / OpenAI API, escaped user text, and secrets kept
out of logs and error messages.

The HTTP checks run against the real `python app.py` process (tests/app_process.py).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from backend.guard.security import SecuritySettings
from tests.app_process import AppProcess, models_yaml_variant, record_figures
from tests.conftest import ROOT
from tests.remote_server import QuietHTTPServer
from tests.tiers import full_tier

CHAT = "tiny-chat"
ALICE = ("alice", "wonderland-4242")
BOB = ("bob", "builder:with:colons")
API_TOKEN = "wb-token-8c1f4e2a9d7b"
REMOTE_KEY = "sk-remote-5e3a1c9f0b7d"
XSS = "<img src=x onerror=alert(1)>"


# ------------------------------------------------------------------------------------- trust_remote_code


def custom_code_folder(tiny_models_yaml: Path, target: Path) -> Path:
    """tiny-chat's files, but config.json says: model type unknown to transformers, code in the folder."""
    import shutil

    shutil.copytree(tiny_models_yaml.parent / CHAT, target)
    config = json.loads((target / "config.json").read_text())
    config.update(model_type="workbench-custom", architectures=["CustomForCausalLM"],
                  auto_map={"AutoConfig": "configuration_custom.CustomConfig",
                            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"})
    (target / "config.json").write_text(json.dumps(config, indent=1))
    marker = target / "CUSTOM_CODE_RAN"
    for name in ("configuration_custom.py", "modeling_custom.py"):  # proof of execution, then a failure
        (target / name).write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                   "raise ImportError('custom code ran')\n")
    return target


@pytest.mark.parametrize("opt_in", [False, True])
def test_custom_code_is_refused_unless_the_entry_opts_in(tiny_models_yaml: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, opt_in: bool) -> None:
    from backend.services import generation as service
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = custom_code_folder(tiny_models_yaml, tmp_path / "custom")
    entry = {"id": "custom", "tasks": ["chat"], "source": str(folder), "device": "cpu"}
    if opt_in:
        entry["trust_remote_code"] = True
    path = models_yaml_variant(tiny_models_yaml, tmp_path / "models.yaml", lambda c: c.update(models=[entry]))
    registry = Registry(load_config(path), create_engine)
    try:
        with pytest.raises(ModelLoadError) as refused:
            next(service.stream_chat(registry, "custom", "hi"))
    finally:
        registry.close()
    message = str(refused.value)
    if opt_in:  # the flag is what lets the folder's code run
        assert (folder / "CUSTOM_CODE_RAN").exists()
        return
    assert not (folder / "CUSTOM_CODE_RAN").exists(), "custom code ran without trust_remote_code"
    assert message == (f"model 'custom': {folder} needs custom code from its repository. It is refused because "
                       "'trust_remote_code' is off; set trust_remote_code: true in models.yaml only for a "
                       "repository you trust.")
    record_figures("trust_remote_code", {"message": message.replace(str(folder), "<folder>")})


# ---------------------------------------------------------------------------- file route and uploads


@pytest.fixture(scope="module")
@full_tier
def open_app(tiny_models_yaml: Path) -> Iterator[AppProcess]:
    """The app as most people run it (no login), with a 1 MB upload limit."""
    with AppProcess(tiny_models_yaml, env={"WORKBENCH_MAX_UPLOAD_MB": "1"}) as app:
        yield app


def forbidden_paths(tiny_models_yaml: Path) -> list[str]:
    weights = tiny_models_yaml.parent / CHAT / "model.safetensors"
    return [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=%2Fetc%2Fpasswd",
        "/gradio_api/file=%252Fetc%252Fpasswd",
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/gradio_api/file=/tmp/gradio/../../etc/passwd",
        "/gradio_api/file=/proc/self/environ",
        "/gradio_api/file=app.py",
        "/gradio_api/file=models.yaml",
        f"/gradio_api/file={ROOT / 'backend' / 'security.py'}",
        f"/gradio_api/file={tiny_models_yaml}",
        f"/gradio_api/file={weights}",
        "/file=/etc/passwd",
        "/gradio_api/file=//etc/passwd",
        "/gradio_api/file=\\etc\\passwd",
        "/static/../../../../etc/passwd",
        "/assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    ]


def test_the_file_route_serves_nothing_outside_the_apps_own_files(open_app: AppProcess,
                                                                  tiny_models_yaml: Path) -> None:
    answers = {}
    with httpx.Client(base_url=open_app.url.rstrip("/"), timeout=10) as http:
        for path in forbidden_paths(tiny_models_yaml):
            answer = http.get(path)
            answers[path.replace(str(ROOT), "<repo>").replace(str(tiny_models_yaml.parent), "<models>")] = \
                answer.status_code
            assert answer.status_code in (400, 403, 404), (path, answer.status_code, answer.text[:200])
            # A short refusal, never the file: /etc/passwd starts "root:x:0:0", the others are far longer.
            assert "root:x:0:0" not in answer.text and len(answer.content) < 1000, (path, answer.text[:200])
        # The route itself works: a file uploaded to the app is served back to its uploader.
        uploaded = http.post("/gradio_api/upload", files={"files": ("note.txt", b"hello")}).json()[0]
        assert http.get(f"/gradio_api/file={uploaded}").text == "hello"
    record_figures("file_route", {"refused": answers})


def test_uploads_over_the_limit_are_refused(open_app: AppProcess) -> None:
    with httpx.Client(base_url=open_app.url.rstrip("/"), timeout=30) as http:
        small = http.post("/gradio_api/upload", files={"files": ("ok.csv", b"text\n" + b"a" * 500_000)})
        big = http.post("/gradio_api/upload", files={"files": ("big.csv", b"text\n" + b"a" * 2_000_000)})
    assert small.status_code == 200, small.text
    assert big.status_code == 413, big.text
    assert "exceeded maximum allowed size" in big.text
    record_figures("upload_limit", {"limit_mb": 1, "under_limit": small.status_code,
                                    "over_limit": f"{big.status_code} {big.text}"})


def test_upload_limit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.core.types import ConfigError

    assert SecuritySettings.from_env({}).max_upload_mb == 50  # the datafiles limit, so any readable file fits
    assert SecuritySettings.from_env({"WORKBENCH_MAX_UPLOAD_MB": "2.5"}).max_upload_bytes == int(2.5 * 1024**2)
    with pytest.raises(ConfigError, match="WORKBENCH_MAX_UPLOAD_MB: must be a number, got 'lots'"):
        SecuritySettings.from_env({"WORKBENCH_MAX_UPLOAD_MB": "lots"})


# ------------------------------------------------------------------------------------------- escaping


def test_user_text_in_error_messages_is_escaped(open_app: AppProcess) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(open_app.url, verbose=False)
    with pytest.raises(AppError) as refused:
        client.predict(message="hi", model=XSS, api_name="/chat")
    client.close()
    message = str(refused.value)
    assert "&lt;img src=x onerror=alert(1)&gt;" in message and "<img" not in message, message
    # The OpenAI API answers JSON (never rendered as HTML): the id comes back as the text it was.
    answer = httpx.post(f"{open_app.url}v1/chat/completions", timeout=10,
                        json={"model": XSS, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"
    record_figures("escaping", {"gradio": message, "v1": answer.json()["error"]["message"]})


# ---------------------------------------------------------------------------------------- authentication


class EchoingServer(BaseHTTPRequestHandler):
    """A careless OpenAI-compatible server: refuses every key and quotes the key it got in the error."""

    def _refuse(self) -> None:
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {self.headers.get('Authorization')}"}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _refuse

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echoing_server() -> Iterator[str]:
    server = QuietHTTPServer(("127.0.0.1", 0), EchoingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
@full_tier
def locked_app(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory,
               echoing_server: str) -> Iterator[AppProcess]:
    """Login required (two users and a token), plus a remote entry whose key lives in REMOTE_KEY."""
    def change(config: dict[str, Any]) -> None:
        config["models"].append({"id": "remote-chat", "backend": "openai", "tasks": ["chat"],
                                 "base_url": echoing_server, "api_key_env": "WORKBENCH_TEST_REMOTE_KEY"})

    path = models_yaml_variant(tiny_models_yaml, tmp_path_factory.mktemp("locked") / "models.yaml", change)
    env = {"WORKBENCH_AUTH": f"{ALICE[0]}:{ALICE[1]},{BOB[0]}:{BOB[1]}", "WORKBENCH_API_TOKEN": API_TOKEN,
           "WORKBENCH_TEST_REMOTE_KEY": REMOTE_KEY}
    app = AppProcess(path, env=env).wait_ready()
    try:
        yield app
    finally:
        app.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth_settings_from_the_environment() -> None:
    from backend.core.types import ConfigError

    settings = SecuritySettings.from_env({"WORKBENCH_AUTH": "alice:pw-12345, bob:a:b:c:12",
                                          "WORKBENCH_API_TOKEN": API_TOKEN})
    assert settings.users == (("alice", "pw-12345"), ("bob", "a:b:c:12"))
    assert "pw-12345" not in repr(settings) and API_TOKEN not in repr(settings) and API_TOKEN not in settings.describe()
    assert settings.check_password("alice", "pw-12345") and not settings.check_password("alice", "a:b:c:12")
    assert settings.check_password("anyone", API_TOKEN)
    assert settings.check_authorization(f"Bearer {API_TOKEN}")
    assert settings.check_authorization(basic("bob", "a:b:c:12"))
    assert not settings.check_authorization("Bearer pw-12345") and not settings.check_authorization(None)
    assert SecuritySettings.from_env({}).gradio_auth() is None  # open unless configured
    for bad, why in [("alice", "entry 1 is not 'user:password'"), ("alice:pw-1234", "shorter than 8"),
                     ("alice:pw-12345,alice:pw-56789", "listed twice")]:
        with pytest.raises(ConfigError, match=why) as refused:
            SecuritySettings.from_env({"WORKBENCH_AUTH": bad})
        assert "pw-" not in str(refused.value)  # a malformed value is never echoed: it may be a password


def test_the_ui_and_the_gradio_api_need_a_login(locked_app: AppProcess) -> None:
    from gradio_client import Client

    with httpx.Client(base_url=locked_app.url.rstrip("/"), timeout=10) as http:
        assert http.get("/config").status_code == 401
        assert http.get("/gradio_api/info").status_code == 401
        assert http.post("/gradio_api/upload", files={"files": ("a.txt", b"x")}).status_code == 401
        assert http.get("/gradio_api/file=/etc/passwd").status_code == 401
        page = http.get("/")
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        assert http.post("/login", data={"username": ALICE[0], "password": "wrong"}).status_code == 400
        assert http.post("/login", data={"username": ALICE[0], "password": ALICE[1]}).status_code == 200
        assert http.get("/config").status_code == 200  # the session cookie now opens the app
    with pytest.raises(Exception, match="credentials"):
        Client(locked_app.url, verbose=False)
    with pytest.raises(Exception):
        Client(locked_app.url, auth=(ALICE[0], "wrong"), verbose=False)
    for auth in (ALICE, BOB, ("whoever", API_TOKEN)):
        client = Client(locked_app.url, auth=auth, verbose=False)
        assert client.predict(message="hi", model=CHAT, max_new_tokens=3, api_name="/chat")
        client.close()


def test_the_openai_api_needs_the_token_or_a_login(locked_app: AppProcess) -> None:
    url = f"{locked_app.url}v1/models"
    cases = {
        "no credentials": ({}, 401),
        "wrong token": ({"Authorization": "Bearer not-the-token"}, 401),
        "a password as bearer token": ({"Authorization": f"Bearer {ALICE[1]}"}, 401),
        "wrong basic password": ({"Authorization": basic(ALICE[0], "nope")}, 401),
        "the token": ({"Authorization": f"Bearer {API_TOKEN}"}, 200),
        "basic auth of a user": ({"Authorization": basic(*BOB)}, 200),
    }
    answers = {}
    for name, (headers, expected) in cases.items():
        answer = httpx.get(url, headers=headers, timeout=10)
        answers[name] = answer.status_code
        assert answer.status_code == expected, (name, answer.text)
        if expected == 401:
            assert answer.json()["error"]["code"] == "invalid_api_key"
    from openai import OpenAI

    client = OpenAI(base_url=f"{locked_app.url}v1", api_key=API_TOKEN, max_retries=0)
    reply = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert reply.usage.completion_tokens == 3
    record_figures("openai_api_auth", answers)


def test_model_status_does_not_quote_the_remote_key(locked_app: AppProcess) -> None:
    from gradio_client import Client

    client = Client(locked_app.url, auth=ALICE, verbose=False)
    try:
        with pytest.raises(Exception):
            client.predict(message="hi", model="remote-chat", api_name="/chat")
        status = next(s for s in client.predict(api_name="/models") if s["id"] == "remote-chat")
    finally:
        client.close()
    assert REMOTE_KEY not in json.dumps(status), status["last_error"]


def test_secrets_never_reach_logs_or_error_messages(locked_app: AppProcess) -> None:
    """The remote server quotes the key it was sent in its error; the user sees `***`, and nothing the app
    prints contains a password, the token or the key, after logins (good and bad), API calls and failures."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(locked_app.url, auth=ALICE, verbose=False)
    with pytest.raises(AppError) as failed:
        client.predict(message="hi", model="remote-chat", api_name="/chat")
    shown = str(failed.value)
    assert "HTTP 401" in shown and "***" in shown and REMOTE_KEY not in shown, shown
    answer = httpx.post(f"{locked_app.url}v1/chat/completions", headers={"Authorization": f"Bearer {API_TOKEN}"},
                        json={"model": "remote-chat", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert answer.status_code == 503 and REMOTE_KEY not in answer.text and "***" in answer.text
    # Secrets sent as user text must not be echoed into the logs either.
    with pytest.raises(AppError):
        client.predict(message="hi", model=f"{API_TOKEN}{ALICE[1]}", api_name="/chat")
    httpx.post(f"{locked_app.url}login", data={"username": BOB[0], "password": BOB[1] + "x"}, timeout=10)
    client.close()
    locked_app.stop()  # flush and close everything it would print
    output = locked_app.output()
    assert "access: login required" in output  # the log was captured
    for secret in (ALICE[1], BOB[1], API_TOKEN, REMOTE_KEY):
        assert secret not in output, f"a secret reached the app's output:\n{output[-3000:]}"
    record_figures("secrets", {"user_sees": shown, "log_lines": len(output.splitlines())})


def test_log_redaction_covers_print_logging_and_tracebacks() -> None:
    """In a fresh interpreter (the redaction wraps sys.stdout/sys.stderr): everything printed is redacted."""
    code = f"""
import logging, sys
logging.basicConfig(level=logging.INFO)
from backend.guard.security import install_log_redaction
install_log_redaction([{API_TOKEN!r}, {REMOTE_KEY!r}])
print("token:", {API_TOKEN!r})
logging.getLogger("uvicorn.error").warning("key %s", {REMOTE_KEY!r})
logging.getLogger("x").info("both " + {API_TOKEN!r} + " and %s", {REMOTE_KEY!r})
raise RuntimeError("failed with " + {REMOTE_KEY!r})
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert API_TOKEN not in output and REMOTE_KEY not in output, output
    assert output.count("***") >= 5 and "RuntimeError: failed with ***" in output, output
