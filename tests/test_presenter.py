"""Presenter mode: the `presenter:` block of models.yaml, the screen built from it, its API, and how the app
chooses it.

The browser side (examples, streaming, reset, screenshot) is in tests/browser/test_presenter_browser.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.app_process import AppProcess
from tests.conftest import ROOT, free_port
from tests.tiny_models import CHAT_ID, CLASSIFIER_ID

TITLE = "Acme Support Assistant"
DESCRIPTION = ("Ask about orders, returns and delivery. Every answer is written live by a small language model "
               "running on this machine.")
EXAMPLES = ["Where is my order?", "How do I return a jacket?", "When do you open on Sunday?"]

# A small, self-contained logo (an SVG file next to models.yaml, as a user would ship one).
LOGO_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 96" width="96" height="96">
  <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
    <stop offset="0" stop-color="#6366f1"/><stop offset="1" stop-color="#a855f7"/></linearGradient></defs>
  <rect x="4" y="4" width="88" height="88" rx="22" fill="url(#g)"/>
  <path d="M28 66 L48 26 L68 66 M36 52 H60" stroke="#fff" stroke-width="8" fill="none"
        stroke-linecap="round" stroke-linejoin="round"/>
</svg>
"""


def write_presenter_yaml(base_yaml: Path, out_dir: Path, **overrides: Any) -> Path:
    """`base_yaml` (the tiny models) plus a presenter block with a logo file; `overrides` change the block."""
    config = yaml.safe_load(base_yaml.read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logo.svg").write_text(LOGO_SVG, encoding="utf-8")
    config["presenter"] = {
        "title": TITLE,
        "description": DESCRIPTION,
        "logo": "logo.svg",
        "model": CHAT_ID,
        "system_prompt": "You are a friendly support assistant.",
        "generation": {"max_new_tokens": 40, "temperature": 0.0},
        "examples": EXAMPLES,
        **overrides,
    }
    path = out_dir / "models.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def presenter_yaml(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_presenter_yaml(tiny_models_yaml, tmp_path_factory.mktemp("presenter"))


def registry_for(path: Path):
    from backend.core.config import load_config
    from backend.core.registry import Registry
    from backend.engines import create_engine

    return Registry(load_config(path), create_engine)


# ------------------------------------------------------------------------------------------ the config


def config_error(tiny_models_yaml: Path, tmp_path: Path, **block: Any) -> str:
    from backend.core.config import load_config
    from backend.core.types import ConfigError

    path = write_presenter_yaml(tiny_models_yaml, tmp_path, **block)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return str(raised.value)


@pytest.mark.parametrize(("block", "expected"), [
    ({"model": "nope"}, "field 'presenter.model': no entry has id 'nope'"),
    ({"model": CLASSIFIER_ID}, f"field 'presenter.model': '{CLASSIFIER_ID}' does not do 'chat'"),
    ({"logo": "missing.png"}, "field 'presenter.logo':"),
    ({"logo": "models.yaml"}, "field 'presenter.logo': models.yaml is not an image"),
    ({"generation": {"temperature": 9}}, "field 'presenter.generation': temperature"),
    ({"titel": "typo"}, "field 'presenter.titel': unknown field"),
])
def test_presenter_block_errors_name_the_file_and_field(tiny_models_yaml: Path, tmp_path: Path,
                                                         block: dict, expected: str) -> None:
    message = config_error(tiny_models_yaml, tmp_path, **block)
    assert str(tmp_path / "models.yaml") in message
    assert expected in message


def test_gpu_duration_is_a_per_model_field(tiny_models_yaml: Path, tmp_path: Path) -> None:
    from backend.core.config import load_config, parse_config
    from backend.core.types import ConfigError

    assert load_config(tiny_models_yaml).spec(CHAT_ID).gpu_duration_s == 60  # ZeroGPU's own default
    raw = yaml.safe_load(tiny_models_yaml.read_text(encoding="utf-8"))
    raw["models"][0]["gpu_duration_s"] = 0
    with pytest.raises(ConfigError, match=rf"entry '{CHAT_ID}' \(models\[0\]\), field 'gpu_duration_s'"):
        parse_config(raw, tmp_path / "models.yaml")
    remote = {"models": [{"id": "r", "tasks": ["chat"], "backend": "openai", "base_url": "http://x/v1",
                          "gpu_duration_s": 30}]}
    with pytest.raises(ConfigError, match="field 'gpu_duration_s': only for backend transformers"):
        parse_config(remote, tmp_path / "models.yaml")


# ------------------------------------------------------------------------------------ what it shows


def test_view_takes_the_config_and_falls_back_to_the_model(presenter_yaml: Path, tiny_models_yaml: Path) -> None:
    from ui.chat.presenter import PresenterView

    registry = registry_for(presenter_yaml)
    view = PresenterView.resolve(registry, registry.config.presenter)
    assert (view.title, view.description, view.examples) == (TITLE, DESCRIPTION, tuple(EXAMPLES))
    assert view.spec.id == CHAT_ID and view.system_prompt.startswith("You are")
    # Locked settings: the block's values over the model's own defaults from models.yaml.
    defaults = view.spec.default_params()
    assert (view.params.max_new_tokens, view.params.temperature) == (40, 0.0)
    assert (view.params.top_p, view.params.top_k) == (defaults.top_p, defaults.top_k)
    assert view.logo_src.startswith("data:image/svg+xml;base64,")  # embedded: no file path is served

    # `--presenter` without a block: the first chat model, its name, description and examples.
    plain = registry_for(tiny_models_yaml)
    view = PresenterView.resolve(plain, plain.config.presenter)
    spec = plain.spec(CHAT_ID)
    assert (view.title, view.description, view.examples) == (spec.display_name, spec.description, spec.examples)
    assert view.params == spec.default_params() and view.logo_src is None


def test_header_escapes_config_text_and_passes_urls(tiny_models_yaml: Path, tmp_path: Path) -> None:
    from ui.chat.presenter import PresenterView, header_html

    path = write_presenter_yaml(tiny_models_yaml, tmp_path, title="<script>alert(1)</script> & Co",
                                logo="https://example.com/logo.png?a=1&b=\"2\"")
    registry = registry_for(path)
    html = header_html(PresenterView.resolve(registry, registry.config.presenter))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert 'src="https://example.com/logo.png?a=1&amp;b=&quot;2&quot;"' in html


def test_header_says_the_model_name_once_without_a_title_of_its_own(tiny_models_yaml: Path,
                                                                     presenter_yaml: Path) -> None:
    """`--presenter` without a `presenter:` block: the model's name is the title, and no "Powered by <the same
    name>" repeats it under it; a configured title keeps the byline naming the model."""
    from ui.chat.presenter import PresenterView, header_html

    plain = registry_for(tiny_models_yaml)
    name = plain.spec(CHAT_ID).display_name
    html = header_html(PresenterView.resolve(plain, plain.config.presenter))
    assert html.count(name) == 1 and "presenter-byline" not in html
    titled = registry_for(presenter_yaml)
    html = header_html(PresenterView.resolve(titled, titled.config.presenter))
    assert TITLE in html and "presenter-byline" in html and name in html


def component_types(demo) -> list[str]:  # noqa: ANN001 - gr.Blocks
    return [type(block).__name__ for block in demo.blocks.values()]


def test_presenter_screen_has_no_picker_parameters_or_tabs(presenter_yaml: Path) -> None:
    import ui
    from ui.chat.presenter import PRESENTER_CSS

    registry = registry_for(presenter_yaml)
    demo = ui.build_app(registry, presenter=True)
    types = component_types(demo)
    for absent in ("Tabs", "Tab", "Dropdown", "Slider", "Radio", "Accordion", "Number", "UploadButton"):
        assert absent not in types, f"presenter screen shows a {absent}"
    assert {"Chatbot", "Textbox", "Dataset", "HTML", "Markdown"} <= set(types)
    elem_ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"chat-history", "chat-input", "chat-send", "chat-stop-btn", "presenter-reset",
            "presenter-examples"} <= elem_ids
    states = [block.value for block in demo.blocks.values() if type(block).__name__ == "State"]
    assert CHAT_ID in states  # the model is a server-side value, never a widget
    assert demo.workbench_css == PRESENTER_CSS and "api" not in demo.workbench_footer_links
    # The full workbench is unchanged.
    full = component_types(ui.build_app(registry))
    assert "Tabs" in full and "Dropdown" in full


# ---------------------------------------------------------------------------- how the app chooses it


def test_presenter_flag_and_environment() -> None:
    import app

    assert app.parse_args([]).presenter is None  # decided by models.yaml
    assert app.parse_args(["--presenter"]).presenter is True
    assert app.parse_args(["serve", "--no-presenter"]).presenter is False


def served_elem_ids(url: str) -> set[str]:
    config = httpx.get(f"{url}config", timeout=30).json()
    return {component.get("props", {}).get("elem_id") for component in config["components"]}


@pytest.mark.full
@pytest.mark.parametrize(("args", "env", "presenting"), [
    ([], {}, True),  # the block is there: presenter mode without a flag
    (["--no-presenter"], {}, False),
    ([], {"WORKBENCH_PRESENTER": "0"}, False),  # a Space variable can switch it off without editing files
])
def test_the_presenter_block_turns_the_mode_on(presenter_yaml: Path, args: list[str], env: dict[str, str],
                                               presenting: bool) -> None:
    with AppProcess(presenter_yaml, env=env, args=args, unset=["WORKBENCH_PRESENTER"]) as app:
        elem_ids = served_elem_ids(app.url)
    assert ("presenter-reset" in elem_ids) is presenting
    assert ("tab-compare" in elem_ids) is not presenting


# ------------------------------------------------------------------------------------------- its API

DEMO_ID = "tiny-chat-demo"  # a second chat entry, locked by the presenter block: not the registry's first chat model
PRESENTER_API = {"/chat", "/generate", "/generate_with_probs", "/count_tokens", "/models"}


@pytest.mark.full
def test_presenter_api_streams_from_the_locked_model_and_cannot_unload_it(tiny_models_yaml: Path,
                                                                            tmp_path: Path) -> None:
    from gradio_client import Client

    from tests.app_process import models_yaml_variant

    def add_demo_entry(config: dict[str, Any]) -> None:
        chat = next(entry for entry in config["models"] if entry["id"] == CHAT_ID)
        config["models"].append({**chat, "id": DEMO_ID, "name": "Demo chat"})

    path = write_presenter_yaml(tiny_models_yaml, tmp_path, model=DEMO_ID)
    models_yaml_variant(path, path, add_demo_entry)
    with AppProcess(path, args=["--presenter"]) as app:
        client = Client(app.url, verbose=False)
        try:
            named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
            assert set(named) == PRESENTER_API  # no /load_model, /unload_model, /compare; UI events stay private

            # No model given: the presenter's locked model answers, streaming.
            job = client.submit(message="Where is my order?", max_new_tokens=24, temperature=0, api_name="/chat")
            reply = job.result(timeout=120)
            outputs = job.outputs()
            assert reply and reply == outputs[-1] and len(outputs) >= 2
            assert all(later.startswith(earlier) for earlier, later in zip(outputs, outputs[1:]))  # it grows
            def status(model: str) -> dict[str, Any]:
                return next(entry for entry in client.predict(api_name="/models") if entry["id"] == model)

            assert status(DEMO_ID)["state"] == "loaded" and status(DEMO_ID)["generated_tokens_total"] == 24
            assert status(CHAT_ID)["state"] == "unloaded"  # the registry's first chat model was not used

            # /generate without a model: the locked model too (it does 'generate').
            assert client.predict(prompt="Once upon a time", max_new_tokens=8, temperature=0, api_name="/generate")
            assert status(DEMO_ID)["generated_tokens_total"] == 32
            counted = client.predict(text="Hello there", api_name="/count_tokens")
            assert counted["tokens"] > 0 and counted["max_context"] == 512

            # Nobody can pull the demo model away through the API.
            for endpoint in ("/unload_model", "/load_model"):
                with pytest.raises(ValueError, match=f"Cannot find a function with `api_name`: {endpoint}"):
                    client.predict(DEMO_ID, api_name=endpoint)
            assert status(DEMO_ID)["state"] == "loaded"
        finally:
            client.close()


@pytest.mark.full
def test_presenter_flag_without_a_chat_model_is_a_clear_error(tiny_models_yaml: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(tiny_models_yaml.read_text(encoding="utf-8"))
    config["models"] = [entry for entry in config["models"] if entry["id"] != CHAT_ID]
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run([sys.executable, "app.py", "--presenter", "--models", str(path), "--port",
                             str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "presenter mode needs a model with the 'chat' task" in result.stderr
