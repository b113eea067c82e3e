"""Browser-test fixtures: the real app served as a subprocess, one headless Chromium, a fresh page per test.

The app runs exactly as a user starts it (`python app.py --models ... --host ... --port ...`) over the tiny
test models (tiny-chat's declared context raised, see browser_models_yaml), so these tests cover the CLI, the
registry, the engines and the Gradio UI end to end. WORKBENCH_BROWSER_URL points them at an app you started.
Chromium is the Debian package (Playwright cannot download browsers on these machines); when it is missing the
tests fail with a clear message instead of skipping, because CI installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.app_process import AppProcess, models_yaml_variant
from tests.browser.helpers import VIEWPORT, screenshot  # noqa: F401  (screenshot: re-exported for tests)
from tests.tiny_models import CHAT_ID

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LONG_CONTEXT = 4096


def pytest_configure(config: pytest.Config) -> None:
    from playwright.sync_api import expect

    # expect() has its own 5 s default: replies on 2 shared CPU cores need more.
    expect.set_options(timeout=30_000)
    config.addinivalue_line("markers", "browser: end-to-end test driving the real app in headless Chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/browser is a browser test (selectable with `-m browser` / `-m "not browser"`)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# ------------------------------------------------------------------------------------------- the app


@pytest.fixture(scope="session")
def browser_models_yaml(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models' models.yaml with tiny-chat's context raised to LONG_CONTEXT tokens.

    Why: tiny-chat decodes ~500 tokens/s, so within its 512-token context a reply is over in about a second,
    too soon for a click on Stop to land mid-stream reliably. Its Llama (RoPE) weights run at any length, so a
    longer declared context lets the Stop test ask for thousands of tokens. Nothing else changes.
    """
    def raise_context(config: dict) -> None:
        for entry in config["models"]:
            if entry["id"] == CHAT_ID:
                entry["max_context"] = LONG_CONTEXT

    return models_yaml_variant(tiny_models_yaml, tmp_path_factory.mktemp("browser-models") / "models.yaml",
                               raise_context)


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runs folder (WORKBENCH_RUNS_DIR: what users store, the registry overlay) of the shared app, so a test
    can read what the app stored and the tree stays clean. With WORKBENCH_BROWSER_URL, set WORKBENCH_RUNS_DIR to
    that app's folder."""
    given = os.environ.get("WORKBENCH_RUNS_DIR") if os.environ.get("WORKBENCH_BROWSER_URL") else None
    return Path(given) if given else tmp_path_factory.mktemp("shared-app-runs")


@pytest.fixture(scope="session")
def app_url(browser_models_yaml: Path, app_runs: Path) -> Iterator[str]:
    """Starts `python app.py` over the tiny models on a free port; yields its URL; stops it at the end.

    WORKBENCH_BROWSER_URL=http://... reuses an app you started yourself (same models.yaml shape) instead,
    which makes iterating on one test quick.
    """
    if os.environ.get("WORKBENCH_BROWSER_URL"):
        yield os.environ["WORKBENCH_BROWSER_URL"]
        return
    with running_app("--models", str(browser_models_yaml), env={"WORKBENCH_RUNS_DIR": str(app_runs)}) as url:
        yield url


@contextmanager
def running_app(*args: str, env: Optional[dict[str, str]] = None) -> Iterator[str]:
    """`python app.py ARGS` on a free loopback port (tests.app_process), with `env` added to the environment:
    yields its URL once it listens, stops it afterwards."""
    with AppProcess(args=args, env=env) as app:  # waits up to START_TIMEOUT_S, the hang guard of every app start
        yield app.url


@pytest.fixture(scope="session")
def api(app_url: str):
    """A gradio_client for the running app (the same server the browser talks to)."""
    from gradio_client import Client

    return Client(app_url, verbose=False)


# --------------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install the Debian packages `chromium` and `chromium-driver` "
            "(apt-get update && apt-get install -y chromium chromium-driver), or set WORKBENCH_CHROMIUM",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (its own cookies and storage: a separate user) per test."""
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
