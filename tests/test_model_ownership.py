"""With logins on, a fine-tuned model is its owner's: through the real server with two logins (and an admin), the
other user neither sees it (Gradio API, OpenAI-compatible API) nor uses it; a shared one is everyone's; an admin
sees all; a model registered while the app runs reaches its owner only. The registry entry a run makes records
its owner (the run's user folder) and the Share choice."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from gradio_client import Client

from backend.core.config import load_config
from backend.training import overlay
from backend.training.config import TrainConfig
from tests.app_process import AppProcess, wait_until

# Launches the app, a server, a training process or real weights: the full tier (tests/tiers.py).
pytestmark = pytest.mark.full

ALICE = ("alice", "wonderland-4242")
BOB = ("bob", "builder-4242-x")
CAROL = ("carol", "admin-carol-4242")  # in WORKBENCH_ADMINS


def entry_over_tiny_chat(tiny_models_yaml: Path, model_id: str, **extra: Any) -> dict[str, Any]:
    chat = next(spec for spec in load_config(tiny_models_yaml).models if spec.id == "tiny-chat")
    return {**chat.model_dump(mode="json", exclude={"base_dir"}), "id": model_id, "name": model_id,
            "source": str(chat.local_path()), **extra}


@pytest.fixture(scope="module")
def owned_app(tiny_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppProcess, Path]]:
    runs = tmp_path_factory.mktemp("owned-runs")
    overlay.add_entry(entry_over_tiny_chat(tiny_models_yaml, "alice-chat", owner="alice"), runs)
    overlay.add_entry(entry_over_tiny_chat(tiny_models_yaml, "bob-shared", owner="bob", shared=True), runs)
    env = {"WORKBENCH_AUTH": ",".join(f"{user}:{password}" for user, password in (ALICE, BOB, CAROL)),
           "WORKBENCH_ADMINS": CAROL[0], "WORKBENCH_RUNS_DIR": str(runs)}
    app = AppProcess(tiny_models_yaml, env=env).wait_ready()
    try:
        yield app, runs
    finally:
        app.stop()


def ui_ids(app: AppProcess, login: tuple[str, str]) -> set[str]:
    """The ids the Gradio API's /models lists for this login (what the Models tab shows)."""
    return {status["id"] for status in Client(app.url, auth=login, verbose=False).predict(api_name="/models")}


def api_ids(app: AppProcess, login: tuple[str, str]) -> set[str]:
    """GET /v1/models with HTTP basic auth (an empty set until the app has added its API routes)."""
    header = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
    response = httpx.get(app.url + "v1/models", headers={"Authorization": header}, timeout=10)
    return {model["id"] for model in response.json()["data"]} if response.status_code == 200 else set()


def test_a_model_is_its_owners_unless_shared(owned_app: tuple[AppProcess, Path], tiny_models_yaml: Path) -> None:
    app, runs = owned_app
    assert wait_until(lambda: bool(api_ids(app, ALICE)), timeout=30)
    assert {"tiny-chat", "alice-chat", "bob-shared"} <= ui_ids(app, ALICE)
    bob_sees = ui_ids(app, BOB)
    assert "bob-shared" in bob_sees and "tiny-chat" in bob_sees and "alice-chat" not in bob_sees
    assert {"alice-chat", "bob-shared"} <= ui_ids(app, CAROL)  # the admin sees every model
    assert "alice-chat" in api_ids(app, ALICE) and "alice-chat" not in api_ids(app, BOB)

    # Bob cannot use Alice's model: to him it is an unknown id, through the UI's API and the OpenAI API.
    bob = Client(app.url, auth=BOB, verbose=False)
    with pytest.raises(Exception, match="unknown model 'alice-chat'"):
        bob.predict(prompt="hello", model="alice-chat", max_new_tokens=4, api_name="/generate")
    header = "Basic " + base64.b64encode(f"{BOB[0]}:{BOB[1]}".encode()).decode()
    refused = httpx.post(app.url + "v1/completions", headers={"Authorization": header}, timeout=60,
                         json={"model": "alice-chat", "prompt": "hello", "max_tokens": 4})
    assert refused.status_code == 404 and "alice-chat" in refused.text
    assert "alice-chat" not in json.dumps(refused.json()["error"]).split("models in this registry")[-1]
    # Alice can.
    alice = Client(app.url, auth=ALICE, verbose=False)
    text = alice.predict(prompt="hello", model="alice-chat", max_new_tokens=4, temperature=0, api_name="/generate")
    assert isinstance(text, str) and text

    # Registered while the app runs (another process's run): its owner sees it within seconds, the other not.
    overlay.add_entry(entry_over_tiny_chat(tiny_models_yaml, "bob-private", owner="bob"), runs)
    assert wait_until(lambda: "bob-private" in ui_ids(app, BOB), timeout=30)
    assert "bob-private" not in ui_ids(app, ALICE)


def test_a_runs_entry_records_its_owner_and_the_share_choice(tmp_path: Path) -> None:
    config = TrainConfig(task="classification", base=str(tmp_path), data="x.csv", text_column="t",
                         label_column="l", share=True)
    model_dir = tmp_path / "runs" / "users" / "alice" / "train" / "run-1" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    entry = overlay.entry_for_run(model_dir.parent, config, {"status": "completed"}, "m")
    assert (entry["owner"], entry["shared"]) == ("alice", True)
    private = overlay.entry_for_run(model_dir.parent, config.model_copy(update={"share": False}),
                                    {"status": "completed"}, "m")
    assert (private["owner"], private["shared"]) == ("alice", False)
    elsewhere = tmp_path / "out"  # `app.py train --out DIR`: the operator's run, everyone's model
    (elsewhere / "model").mkdir(parents=True)
    (elsewhere / "model" / "config.json").write_text("{}")
    assert "owner" not in overlay.entry_for_run(elsewhere, config, {"status": "completed"}, "m")
