"""Session fixtures: tiny real models built once, registries over them, and a launched app.

The tiny models are real transformers checkpoints (random weights, locally trained tokenizers) built offline by
tests/tiny_models.py; they go through exactly the loading code users hit.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests import tiers  # noqa: E402
from tests.tiny_models import build_tiny_models  # noqa: E402


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Marks the full tier's tests `full` (tests/tiers.py) before anything selects on markers (`-m`), and with
    WORKBENCH_TIER_REPORT set writes what was collected and what was selected there (tests/test_tiers.py)."""
    tiers.mark_tiers(items)
    collected = list(items)
    yield
    tiers.write_report(collected, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """While a fast-tier test runs, what only the full tier may do (start the app, a server...) fails it."""
    tiers.running(item)
    try:
        return (yield)
    finally:
        tiers.running(None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freezes what the imports made (gc.freeze) once the tests are collected.

    Why: every model unload runs a full gc.collect() (backend/engines/loading.py release_memory), which walks
    every object in the process. In this long-lived test process that is ~0.5 million objects of torch,
    transformers and gradio that are never garbage, ~0.3-1 s per unload (measured: 21 s of 34 s in four test
    files). Frozen objects are skipped; everything the tests make afterwards, models included, is collected as
    before, so the memory checks measure the same thing.
    """
    import gc

    import gradio  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    gc.collect()
    gc.freeze()
    tiers.install_guards()


@pytest.fixture(scope="session")
def tiny_models_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models.yaml for tiny-chat, tiny-classifier and tiny-nli (built once per test run)."""
    return Path(build_tiny_models(tmp_path_factory.mktemp("tiny-models")))


@pytest.fixture(scope="session")
def tiny_config(tiny_models_yaml: Path):
    from backend.core.config import load_config

    return load_config(tiny_models_yaml)


@pytest.fixture
def registry(tiny_config) -> Iterator["Registry"]:  # noqa: F821
    """A fresh registry per test (models load on first use, unloaded at the end)."""
    from backend.core.registry import Registry
    from backend.engines import create_engine

    reg = Registry(tiny_config, create_engine)
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def shared_registry(tiny_config) -> Iterator["Registry"]:  # noqa: F821
    """One registry for the whole session, for tests that only read from loaded models."""
    from backend.core.registry import Registry
    from backend.engines import create_engine

    reg = Registry(tiny_config, create_engine)
    yield reg
    reg.close()


def free_port() -> int:
    """A loopback port free now (the caller's server binds it later, often seconds later, once it has started).

    Under pytest-xdist (scripts/run-tests.sh) each worker keeps to its own share of the ports, (port // 2) % workers
    == its number (Linux hands out odd ports to bind(0), so not port % workers), so that two workers never pick the
    same port in those seconds."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if (port // 2) % workers == worker:
            return port


@pytest.fixture(scope="module")
def chat_tab(tiny_config) -> Iterator["ChatTab"]:  # noqa: F821
    """The Chat tab built over a registry of its own (one per module), for handler tests without a server."""
    import gradio as gr

    from backend.core.registry import Registry
    from backend.engines import create_engine
    from ui.chat.tab import ChatTab

    reg = Registry(tiny_config, create_engine)
    with gr.Blocks():
        chat = ChatTab.build(reg)
    yield chat
    reg.close()


@pytest.fixture(scope="module")
@tiers.full_tier
def gradio_api_app(tiny_config) -> Iterator["SimpleNamespace"]:  # noqa: F821
    """The whole app launched in this process (one per module), with a gradio_client `client` on it and its
    `registry`."""
    from types import SimpleNamespace

    from gradio_client import Client

    import ui
    from backend.core.registry import Registry
    from backend.engines import create_engine

    reg = Registry(tiny_config, create_engine)
    demo = ui.build_app(reg)
    port = free_port()
    ui.launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        yield SimpleNamespace(client=client, registry=reg)
    finally:
        client.close()
        demo.close()
        reg.close()
