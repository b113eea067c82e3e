"""The real `python app.py` process: it serves quickly with nothing loaded, and loads on the first chat."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, free_port
from tests.tiers import full_tier

STARTUP_GUARD_S = 90  # a hang guard only; the measured start-up time is printed and recorded in docs


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise AssertionError(f"app exited with {process.returncode}: {process.stderr.read()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return time.perf_counter() - started
        time.sleep(0.05)
    raise AssertionError(f"app did not open port {port} within {timeout} s")


@pytest.fixture(scope="module")
@full_tier
def app_process(tiny_models_yaml: Path) -> Iterator[tuple[str, float]]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "app.py", "--models", str(tiny_models_yaml), "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        startup_s = wait_for_port(port, process, STARTUP_GUARD_S)
        print(f"\nstart-up to open port: {startup_s:.2f} s")
        yield f"http://127.0.0.1:{port}/", startup_s
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def model_states(client) -> dict[str, str]:
    return {status["id"]: status["state"] for status in client.predict(api_name="/models")}


def test_app_serves_with_nothing_loaded_then_loads_on_first_chat(app_process) -> None:
    from gradio_client import Client

    url, _ = app_process
    client = Client(url, verbose=False)
    states = model_states(client)
    assert {"tiny-chat", "tiny-classifier", "tiny-nli"} <= set(states)  # and the pipeline-task models
    assert set(states.values()) == {"unloaded"}, states

    job = client.submit(message="Hello there", model="tiny-chat", max_new_tokens=48, temperature=0,
                        api_name="/chat")
    final = job.result(timeout=120)
    partials = [text for text in job.outputs() if text]
    assert len(partials) >= 2, f"expected a streamed reply, got {len(partials)} update(s)"
    assert partials[-1] == final and len(final) > len(partials[0])
    assert model_states(client)["tiny-chat"] == "loaded"
    assert model_states(client)["tiny-classifier"] == "unloaded"
    client.close()



def test_app_serves_the_openai_api_on_the_same_port(app_process) -> None:
    from openai import OpenAI

    url, _ = app_process
    client = OpenAI(base_url=f"{url}v1", api_key="unused")
    assert "tiny-chat" in [model.id for model in client.models.list()]
    stream = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "Hi"}],
                                            max_tokens=12, temperature=0, stream=True)
    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) >= 2
