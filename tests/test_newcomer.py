"""A newcomer without the Hugging Face Hub (issue 20): a fresh clone serves, loads fail at once with what to do
(`hf download`, the README's offline section), the failure is remembered, WORKBENCH_PRELOAD of such a model is a
one-line error, and nothing the app does dirties the clone.

"The Hub cannot be reached" is made real with local sockets: one port that refuses connections, and one server
that accepts them and never answers (what a firewall that drops packets looks like).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from tests.app_process import AppProcess, wait_until
from tests.conftest import ROOT, free_port

HUB_ID = "someone/not-on-this-machine"


class SilentServer:
    """Accepts TCP connections and never answers; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    server = SilentServer()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.close()


def hub_registry_yaml(folder: Path) -> Path:
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [{"id": "hub-chat", "tasks": ["chat"], "source": HUB_ID}]}),
                    encoding="utf-8")
    return path


def test_an_unreachable_hub_fails_the_load_at_once_and_is_remembered(silent_hub: SilentServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.core import hub
    from backend.core.config import load_config
    from backend.engines import loading
    from backend.core.registry import Registry
    from backend.engines import create_engine
    from backend.core.types import ModelLoadError

    check = hub.HubCheck(timeout_s=0.5, remember_s=300)
    monkeypatch.setattr(loading, "HUB", check)  # the process-wide check, with a short timeout for the test
    registry = Registry(load_config(hub_registry_yaml(tmp_path)), create_engine)
    try:
        for _ in range(2):
            with pytest.raises(ModelLoadError) as failed:
                registry.load("hub-chat")
            message = str(failed.value)
            assert f"`hf download {HUB_ID}`" in message and "huggingface-cli" not in message
            assert "Hub cannot be reached" in message and "Run it offline" in message
    finally:
        registry.close()
    assert check.probes == 1 and len(silent_hub.accepted) == 1  # asked once, then remembered


def test_hub_check_asks_again_after_the_remembered_while(silent_hub: SilentServer) -> None:
    from backend.core.hub import HubCheck

    now = [0.0]
    check = HubCheck(timeout_s=0.3, remember_s=60, clock=lambda: now[0])
    assert check.reachable()[0] is False
    now[0] = 59.0
    check.reachable()
    assert check.probes == 1
    now[0] = 61.0
    check.reachable()
    assert check.probes == 2


@pytest.mark.full
def test_preloading_an_unreachable_model_is_a_one_line_error(tmp_path: Path) -> None:
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", WORKBENCH_PRELOAD="hub-chat",
               GRADIO_ANALYTICS_ENABLED="False", WORKBENCH_HUB_TIMEOUT_S="2")
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--models", str(hub_registry_yaml(tmp_path)),
                           "--port", str(free_port())], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "WORKBENCH_PRELOAD" in errors[0] and f"hf download {HUB_ID}" in errors[0], \
        done.stderr[-2000:]
    assert "the Hugging Face Hub cannot be reached" in done.stderr  # said at start-up, before the preload


@pytest.mark.full
def test_a_fresh_clone_serves_without_the_hub_and_stays_clean(tmp_path: Path) -> None:
    """The README's run command from a fresh clone (a new `.venv` that sees the installed packages, since no
    package can be downloaded here), with the default models.yaml and no Hub: it serves, says the Hub cannot be
    reached and where the offline section is, a chat fails at once saying `hf download`, and `git status` of
    the clone is clean afterwards."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    clone = fresh_clone(tmp_path)
    port = free_port()
    env = dict(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_HOME=str(tmp_path / "hf-home"),
               WORKBENCH_RUNS_DIR=str(tmp_path / "runs"), WORKBENCH_HUB_TIMEOUT_S="2")
    with AppProcess(env=env, args=["--port", str(port)], port=port, listen=False, unset=["HF_HUB_OFFLINE"],
                    python=str(clone / ".venv" / "bin" / "python"), cwd=clone).wait_ready(120) as app:
        text = app.output()
        assert "the Hugging Face Hub cannot be reached" in text and "Run it offline" in text, text[-3000:]
        client = Client(app.url, verbose=False)
        with pytest.raises(AppError, match=r"hf download"):
            client.predict(message="Hello", api_name="/chat")
        client.close()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout


def fresh_clone(tmp_path: Path) -> Path:
    """A clone of this repository with the README's `.venv`: in place of its `pip install -r requirements.txt`
    (no downloads here), the packages this test runs with are made visible to it."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(clone / ".venv")], check=True, timeout=120)
    site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "workbench-test-deps.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")))
    return clone


def readme_commands(section: str) -> list[str]:
    """The shell lines of the first code block under the README heading that starts with `section`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}", 1)[1]
    block = body.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_commands_use_the_virtual_environment() -> None:
    """After the first command, bare `python` is not the venv's (stock Debian has none, or a system one without
    the packages): every command the README shows runs `.venv/bin/python`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```")[1::2]
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    bare = [line for line in lines if line.startswith(("python ", "python3 app.py", "python3 tests/", "pip "))]
    assert bare == []
    assert any(line.startswith(".venv/bin/python app.py train") for line in lines)  # the synopsis lists train


@pytest.mark.full
def test_the_offline_section_works_as_written_in_a_fresh_clone(tmp_path: Path) -> None:
    """The README's "Run it offline" commands, copied as written and run in order in a fresh clone without
    activating anything: the tiny models build, the app serves them (the port comes from GRADIO_SERVER_PORT,
    so the command line stays as written) and tiny-chat answers; the clone stays clean."""
    from gradio_client import Client

    build, serve = readme_commands("Run it offline")
    assert build.startswith(".venv/bin/python tests/tiny_models.py ") and serve.startswith(".venv/bin/python app.py")
    clone = fresh_clone(tmp_path)
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", GRADIO_SERVER_PORT=str(port),
               WORKBENCH_RUNS_DIR=str(tmp_path / "runs"), HF_HOME=str(tmp_path / "hf-home"))
    built = subprocess.run(build, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    log = tmp_path / "app.log"
    with log.open("w") as out:
        app = subprocess.Popen(serve, shell=True, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        assert wait_until(lambda: app.poll() is not None or _serves(f"http://127.0.0.1:{port}/"), timeout=180)
        assert app.poll() is None and "8 model(s)" in log.read_text(), log.read_text()[-3000:]
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        reply = client.predict(message="Hello", model="tiny-chat", api_name="/chat")
        client.close()
        assert isinstance(reply, str) and reply
    finally:
        os.killpg(app.pid, 15)
        app.wait(timeout=30)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout


def _serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
