"""Issue 15, last bullet, through the real server with logins on (gradio_client, as the browser calls the tabs):
what the Data tab saves and the Train tab's runs belong to the user who made them; another user neither sees
nor opens them, an admin (WORKBENCH_ADMINS) sees them all, and only allowed users may start training. And
(issue 17) the Train and Evaluate tabs offer their user's saved datasets and use their splits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from backend.core.types import InvalidInputError
from tests.eval_server import EvalServer
from tests.training_data import sentiment_rows, write_csv
from tests.tiers import full_tier

USERS = (("alice", "alice-password-1"), ("bob", "bob-password-22"), ("carol", "carol-password-3"))
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's runs folder, and logins on for the rules that read the environment (who may train)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(root))
    monkeypatch.setenv("WORKBENCH_AUTH", ",".join(f"{user}:{password}" for user, password in USERS))
    monkeypatch.setenv("WORKBENCH_ADMINS", "carol")
    return root


def names(answer: tuple) -> list[str]:
    """The first column of a table answer (a Dataframe's value as gradio_client returns it)."""
    table = answer[0] if isinstance(answer, (tuple, list)) else answer
    return [row[0] for row in table["data"]] if table and table.get("data") else []


@pytest.fixture
@full_tier
def data_server(registry, runs: Path) -> Iterator[EvalServer]:
    from ui.data.tab import DataTab

    server = EvalServer(registry, runs, users=USERS, build=lambda: DataTab.build(registry))
    yield server
    server.close()


def test_saved_datasets_belong_to_their_user(data_server: EvalServer, runs: Path, tmp_path: Path) -> None:
    export = tmp_path / "alice-chat.json"
    export.write_text(json.dumps({"format": "llm-workbench-chat", "model": "tiny-chat", "messages": [
        {"role": "user", "content": "alice's private question"}, {"role": "assistant", "content": "an answer"}]}))
    alice = data_server.client("alice")
    status, saved, _ = data_server.call(alice, "build_from_conversations", [handle_file(str(export))], "alice-sft")
    assert "Saved 'alice-sft'" in status and names(saved) == ["alice-sft"]
    assert (runs / "users" / "alice" / "datasets" / "alice-sft" / "card.json").is_file()
    assert names(data_server.call(alice, "saved_rows")) == ["alice-sft"]
    assert data_server.call(alice, "zip_saved", "alice-sft")["value"] is not None  # alice can download hers

    bob = data_server.client("bob")
    assert names(data_server.call(bob, "saved_rows")) == []
    with pytest.raises(AppError, match="not in the list of choices|is not one of the choices") as error:
        data_server.call(bob, "zip_saved", "alice-sft")  # his picker does not offer it
    assert "private question" not in str(error.value)
    # Behind the picker, the same lookups Train and Evaluate use answer "not found" for bob.
    from backend.data import store

    with pytest.raises(InvalidInputError, match="there is no saved dataset named 'alice-sft'"):
        store.dataset_path("bob", "alice-sft")
    # Bob saving the same name makes his own dataset; alice's stays hers.
    status, saved, _ = data_server.call(bob, "build_from_conversations", [handle_file(str(export))], "alice-sft")
    assert names(saved) == ["alice-sft"] and (runs / "users" / "bob" / "datasets" / "alice-sft").is_dir()
    assert [info.owner for info in store.list_datasets("alice")] == ["alice"]

    carol = data_server.client("carol")  # an admin sees every user's
    assert sorted(names(data_server.call(carol, "saved_rows"))) == ["alice-sft", "alice-sft"]


@pytest.fixture
@full_tier
def train_server(registry, runs: Path) -> Iterator[EvalServer]:
    from backend.training.service import TrainingService
    from ui.train.tab import TrainTab

    service = TrainingService(registry, env=OFFLINE)  # root: $WORKBENCH_RUNS_DIR, as in the app
    server = EvalServer(registry, runs, users=USERS, build=lambda: TrainTab.build(registry, service))
    yield server
    server.close()
    service.close()


def test_training_runs_belong_to_their_user(train_server: EvalServer, runs: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ui.train.tab import HYPERPARAMETERS

    monkeypatch.setenv("WORKBENCH_TRAIN_USERS", "alice,carol")
    data = write_csv(tmp_path / "train.csv", sentiment_rows(40, seed=0))
    form = {f"train-{name}": default for name, _, default, _ in HYPERPARAMETERS}
    form.update({"train-task": "classification", "train-base": "tiny-classifier",
                 "train-data": handle_file(str(data)), "train-validation": None, "train-saved": None,
                 "train-text-column": "text", "train-label-column": "label", "train-messages-column": None,
                 "train-prompt-column": None, "train-response-column": None, "train-chosen-column": None,
                 "train-rejected-column": None,
                 "train-method": "full", "train-register-as": "", "train-share": False, "train-max_steps": 2,
                 "train-max_length": 16, "train-eval_steps": 1})

    def session(user: str):
        client = train_server.client(user)
        train_server.call(client, "on_data", "classification", handle_file(str(data)))  # fills the column pickers
        return client

    bob = session("bob")  # logins on: only WORKBENCH_TRAIN_USERS may start
    with pytest.raises(AppError, match="this account may not start training"):
        train_server.call_form(bob, "start", form)
    assert not (runs / "users" / "bob" / "train").exists() or not any((runs / "users" / "bob" / "train").iterdir())

    alice = session("alice")
    train_server.call_form(alice, "start", form)  # (the run id it answers is the session's State, not sent)
    [run_id] = names(train_server.call(alice, "table"))
    assert [path.name for path in (runs / "users" / "alice" / "train").iterdir()] == [run_id]
    opened = train_server.call(alice, "open_run", run_id)  # (status, curves, log, timer)
    assert f"users/alice/train/{run_id}/config.yaml" in opened[2]  # her run's log

    assert names(train_server.call(bob, "table")) == []
    for name in ("open_run",):
        with pytest.raises(AppError, match="not in the list of choices|is not one of the choices"):
            train_server.call(bob, name, run_id)  # his run picker does not offer it
    # Behind the picker (and for Stop / Resume / Merge, whose run id is the session's own State): not found.
    import gradio as gr

    for handler in (train_server.ctl.open_run, train_server.ctl.stop):
        with pytest.raises(gr.Error, match=f"there is no saved train item named '{run_id}'"):
            handler(run_id, gr.Request(username="bob"))

    carol = train_server.client("carol")  # an admin sees every user's runs
    assert run_id in names(train_server.call(carol, "table"))
    deadline = time.monotonic() + 120  # let the two steps finish, so nothing outlives the test
    while train_server.ctl.service.info(runs / "users" / "alice" / "train" / run_id).status in ("queued", "running"):
        assert time.monotonic() < deadline, "the two-step run did not finish"
        time.sleep(0.5)


def test_the_train_tab_uses_its_users_saved_datasets(train_server: EvalServer, runs: Path) -> None:
    import pandas as pd

    from backend.data import store
    from ui.train.tab import HYPERPARAMETERS

    rows = pd.DataFrame(sentiment_rows(40, seed=1))
    store.save_dataset({"train": rows[:30], "validation": rows[30:]}, {"kind": "text", "created": store.now()},
                       "alice-reviews", "alice")  # as the Data tab saves it, in alice's folder
    alice = train_server.client("alice")
    picker = train_server.call(alice, "saved_choices")
    assert [choice[0] for choice in picker["choices"]] == ["alice-reviews"]
    columns = train_server.call(alice, "on_saved", "classification", "alice-reviews")
    assert (columns[0]["value"], columns[1]["value"]) == ("text", "label")  # the pickers guessed its columns
    form = {f"train-{name}": default for name, _, default, _ in HYPERPARAMETERS}
    form.update({"train-task": "classification", "train-base": "tiny-classifier", "train-data": None,
                 "train-saved": "alice-reviews", "train-validation": None, "train-text-column": "text",
                 "train-label-column": "label", "train-messages-column": None, "train-prompt-column": None,
                 "train-response-column": None, "train-chosen-column": None, "train-rejected-column": None,
                 "train-method": "full", "train-register-as": "", "train-share": False,
                 "train-max_length": 16})
    plan, _ = train_server.call_form(alice, "check", form)
    assert plan.startswith("30 training and 10 validation examples")  # its train and validation splits

    bob = train_server.client("bob")
    assert train_server.call(bob, "saved_choices")["choices"] == []
    with pytest.raises(AppError, match="not in the list of choices|is not one of the choices"):
        train_server.call(bob, "on_saved", "classification", "alice-reviews")
    import gradio as gr

    with pytest.raises(gr.Error, match="there is no saved dataset named 'alice-reviews'"):
        train_server.ctl.on_saved("classification", "alice-reviews", gr.Request(username="bob"))


@pytest.mark.full
def test_the_evaluate_tab_uses_its_users_saved_datasets(registry, runs: Path) -> None:
    import gradio as gr
    import pandas as pd

    from backend.data import store

    rows = pd.DataFrame({"text": [f"review {i}" for i in range(12)], "label": ["pos", "neg"] * 6})
    store.save_dataset({"train": rows[:8], "test": rows[8:]}, {"kind": "text", "created": store.now()},
                       "alice-reviews", "alice")
    from ui.evaluate import EvaluateTab

    server = EvalServer(registry, runs, users=USERS, build=lambda: EvaluateTab.build(registry, runs_dir=runs))
    try:
        alice = server.client("alice")
        assert [choice[0] for choice in server.call(alice, "saved_choices")["choices"]] == ["alice-reviews"]
        info, preview, input_col, reference_col, *_ = server.call(alice, "on_saved", "alice-reviews",
                                                                  "classification")
        assert "4 rows" in info  # its test split
        assert [row[0] for row in preview["data"]] == ["review 8", "review 9", "review 10", "review 11"]
        assert (input_col["value"], reference_col["value"]) == ("text", "label")

        bob = server.client("bob")
        assert server.call(bob, "saved_choices")["choices"] == []
        with pytest.raises(AppError, match="not in the list of choices|is not one of the choices"):
            server.call(bob, "on_saved", "alice-reviews", "classification")
        with pytest.raises(gr.Error, match="no saved dataset named 'alice-reviews'"):
            server.ctl.on_saved("alice-reviews", "classification", gr.Request(username="bob"))
    finally:
        server.close()
