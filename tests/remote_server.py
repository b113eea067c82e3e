"""Servers for the remote-engine tests: a real `transformers serve` process, and a scripted fake for failures.

`ServeProcess` runs `transformers serve MODEL_DIR` on 127.0.0.1 as a child process, offline, with its own HOME /
HF_HOME. With `hub_cache=False` its hub cache folder does not exist, as on a machine that never downloaded
anything: `GET /v1/models` then answers 500 (and serve drops that connection), which the remote engine's
reachability check must survive. It can be killed mid-test and started again on the same port.

`FakeServer` is a tiny threaded HTTP server that answers each request with a scripted behaviour (good SSE
chunks, malformed data, an HTTP error, a stall, a broken connection) and records what it received, so every
failure path of the remote engine is exercised without a model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import httpx

from tests.conftest import free_port
from tests.tiers import refuse_in_fast_tier

SERVE_START_TIMEOUT_S = 180.0  # importing torch + transformers on a busy 2-core machine can take a while


def sampling_copy(model_dir: Path, dest: Path) -> Path:
    """A copy of a model folder (weights symlinked) whose generation_config has `do_sample: true`.

    Why: `transformers serve` turns sampling *off* for temperature 0 but never turns it *on*; it samples only when
    the model's generation_config says `do_sample: true` (as chat checkpoints on the Hub usually do). The tiny test
    model's config has no `do_sample`, so without this copy every request would be greedy and seeds would not matter.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        target = dest / item.name
        if item.name == "generation_config.json" or target.exists():
            continue
        target.symlink_to(item.resolve())
    config_file = model_dir / "generation_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    config["do_sample"] = True
    (dest / "generation_config.json").write_text(json.dumps(config, indent=2))
    return dest


class ServeProcess:
    """`transformers serve MODEL_DIR --host 127.0.0.1 --port P --device cpu` as a child process."""

    def __init__(self, model_dir: Path, workdir: Path, port: Optional[int] = None, hub_cache: bool = True) -> None:
        self.model_dir = Path(model_dir)
        self.hub_cache = hub_cache
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.process: Optional[subprocess.Popen] = None
        self.log_path = self.workdir / "transformers-serve.log"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def model(self) -> str:
        """The model name requests must use: `serve` pins the model given on its command line."""
        return str(self.model_dir)

    def env(self) -> dict[str, str]:
        home = self.workdir / "home"
        hf_home = home / ".cache" / "huggingface"
        if self.hub_cache:
            (hf_home / "hub").mkdir(parents=True, exist_ok=True)  # GET /v1/models scans it, fails if it is absent
        else:
            home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "HOME": str(home),
            "HF_HOME": str(hf_home),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",  # the CLI would otherwise ask PyPI for a newer version
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",  # a tiny model is faster on one thread, and the test process needs the other core
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def start(self) -> "ServeProcess":
        refuse_in_fast_tier("starts `transformers serve`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "transformers.cli.transformers", "serve", str(self.model_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--log-level", "warning",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed when the process ends (the child owns a copy)
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                            cwd=self.workdir, start_new_session=True)
        finally:
            log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = SERVE_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited (code {self.process and self.process.returncode}) "
                                   f"before answering /health:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.root_url}/health", timeout=2.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health within {timeout_s:g}s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> "ServeProcess":
        """Starts the server again (same port) if a test killed it."""
        if not self.running:
            self.start()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no goodbye to open connections."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.process.wait(timeout=10)  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.running:
            self.process.terminate()  # type: ignore[union-attr]
            try:
                self.process.wait(timeout=10)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ------------------------------------------------------------------------------------------ fake server


def chat_chunk(text: Optional[str] = None, finish: Optional[str] = None, usage: Optional[dict] = None) -> dict:
    delta = {"content": text} if text is not None else {}
    return {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage}


def completion_chunk(text: str = "", finish: Optional[str] = None, usage: Optional[dict] = None) -> dict:
    return {"id": "x", "object": "text_completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage}


class Exchange:
    """The handler's view of one request: what came in, and helpers to answer."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        self.handler = handler
        self.path = handler.path
        self.headers = dict(handler.headers.items())
        self.body = body

    def json(self, status: int, payload: Any, headers: Optional[dict[str, str]] = None) -> None:
        data = json.dumps(payload).encode()
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", "application/json")
        self.handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        self.handler.end_headers()
        self.handler.wfile.write(data)

    def start_stream(self) -> None:
        self.handler.send_response(200)
        self.handler.send_header("Content-Type", "text/event-stream")
        self.handler.send_header("Transfer-Encoding", "chunked")
        self.handler.end_headers()

    def send_raw(self, text: str) -> None:
        """One HTTP chunk carrying `text` (already SSE-formatted)."""
        data = text.encode()
        self.handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.handler.wfile.flush()

    def send_event(self, payload: Any) -> None:
        self.send_raw(f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n")

    def end_stream(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def break_connection(self) -> None:
        """Closes the socket mid-body, as a crashed server does (the client sees an incomplete chunked body)."""
        self.handler.close_connection = True
        try:
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


Behaviour = Callable[[Exchange], None]


def stream_of(chunks: list[Any], done: bool = True) -> Behaviour:
    """Streams the given chunks (dicts, or raw strings sent as `data:` as-is), then [DONE]."""

    def behave(exchange: Exchange) -> None:
        exchange.start_stream()
        for chunk in chunks:
            exchange.send_event(chunk)
        if done:
            exchange.send_event("[DONE]")
        exchange.end_stream()

    return behave


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up (some tests do on purpose)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeServer:
    """An OpenAI-ish server on 127.0.0.1 whose answers the test scripts: `server.script = [behaviour, ...]`.

    Each POST takes the next behaviour from the script (the last one repeats); GET /v1/models and /health answer
    200 unless `models_status` / `health_status` say otherwise. Every request is recorded in `requests`.
    """

    def __init__(self) -> None:
        self.script: list[Behaviour] = []
        self.requests: list[Exchange] = []
        self.models_status = 200
        self.models: list[dict] = [{"id": "fake-model", "object": "model"}]
        self.health_status = 200
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                exchange = Exchange(self, None)
                fake._record(exchange)
                if self.path.endswith("/models"):
                    exchange.json(fake.models_status, {"object": "list", "data": fake.models}
                                  if fake.models_status == 200 else {"error": {"message": "models unavailable"}})
                elif self.path.endswith("/health"):
                    exchange.json(fake.health_status, {"status": "ok" if fake.health_status == 200 else "bad"})
                else:
                    exchange.json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                exchange = Exchange(self, body)
                fake._record(exchange)
                with fake._lock:
                    behaviour = fake.script.pop(0) if len(fake.script) > 1 else (fake.script[0] if fake.script
                                                                                  else None)
                if behaviour is None:
                    exchange.json(500, {"error": {"message": "no behaviour scripted"}})
                    return
                try:
                    behaviour(exchange)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: that is what some tests do

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-openai-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.requests.append(exchange)

    def posts(self) -> list[Exchange]:
        with self._lock:
            return [r for r in self.requests if r.body is not None]

    def reset(self, *script: Behaviour) -> None:
        with self._lock:
            self.script = list(script)
            self.requests = []
            self.models_status = 200
            self.health_status = 200

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
