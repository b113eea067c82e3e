"""The real `python app.py` process: it serves quickly with nothing loaded, and loads on the first chat."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.app_process import AppProcess
from tests.tiers import full_tier

STARTUP_GUARD_S = 90  # a hang guard only; the measured start-up time is printed and recorded in docs


FIRST_ANSWERS_S = 1.0  # how long /v1/models is asked, as fast as it answers, from the moment the port opens
FIRST_ANSWERS: list[int] = []  # the statuses it gave, in order (read by the test below)


@pytest.fixture(scope="module")
@full_tier
def app_process(tiny_models_yaml: Path) -> Iterator[tuple[str, float]]:
    app = AppProcess(tiny_models_yaml)
    try:
        FIRST_ANSWERS[:] = first_answers(app, "v1/models")
        app.wait_ready(STARTUP_GUARD_S)
        assert app.startup_s is not None
        print(f"\nstart-up to open port: {app.startup_s:.2f} s")
        yield app.url, app.startup_s
    finally:
        app.stop()


def first_answers(app: AppProcess, path: str) -> list[int]:
    """Waits (polling every few ms) until the app's port accepts a connection, then asks GET `path` again and
    again for FIRST_ANSWERS_S: the HTTP statuses in order (0: the connection failed)."""
    deadline = time.monotonic() + STARTUP_GUARD_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", app.port)) == 0:
                break
        assert app.popen.poll() is None, app.output()[-4000:]
        time.sleep(0.005)
    statuses = []
    until = time.monotonic() + FIRST_ANSWERS_S
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < until:
            try:
                statuses.append(client.get(f"{app.url}{path}").status_code)
            except httpx.TransportError:
                statuses.append(0)
    return statuses


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


def test_every_route_answers_from_the_moment_the_port_opens(app_process) -> None:
    """The API's routes are mounted before the server listens: /v1/models never answered 404 (it did for about
    0.2 s after the port opened, while they were added to the running server)."""
    assert FIRST_ANSWERS, "no answer at all"
    assert 404 not in FIRST_ANSWERS, f"statuses right after the port opened: {FIRST_ANSWERS[:40]}"
    assert set(FIRST_ANSWERS) == {200}, FIRST_ANSWERS[:40]
