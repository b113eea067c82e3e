"""Issue 15 through the real server (gradio_client): the Hub-dataset field reads no server files, evaluation
data is bounded, and runs are private to the user who made them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from gradio_client.exceptions import AppError

from backend.core.types import InvalidInputError
from tests.conftest import ROOT
from tests.eval_server import EvalServer
from tests.tiers import full_tier


@pytest.fixture(scope="module")
@full_tier
def open_server(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalServer]:
    from backend.core.registry import Registry
    from backend.engines import create_engine

    registry = Registry(tiny_config, create_engine)
    server = EvalServer(registry, tmp_path_factory.mktemp("runs"))
    yield server
    server.close()
    registry.close()


@pytest.fixture
def load_dataset_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every `datasets.load_dataset` call the server makes (the real function still runs)."""
    import datasets

    calls: list = []
    real = datasets.load_dataset

    def recording(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", recording)
    return calls


def test_the_hub_field_never_reads_server_folders_or_builders(open_server: EvalServer, tmp_path: Path,
                                                              load_dataset_calls: list) -> None:
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "data.csv").write_text("text,label\nthe server's own file,secret\n")
    (secret / "notes.txt").write_text("a text file of the server\n")
    client = open_server.client()
    refused = [str(secret), "../..", "..", "./private", "text", "csv", "parquet", "/etc", "~/data",
               "owner/../../etc", "http://example.com/x.csv", "backend/evaluation"]
    for dataset_id in refused:
        with pytest.raises(AppError) as error:
            open_server.call(client, "on_hub", dataset_id, "", "test", "classification")
        message = str(error.value)
        assert "is not a Hub dataset id" in message or "names a folder on the server" in message, (dataset_id,
                                                                                                   message)
        assert "the server's own file" not in message
    with pytest.raises(AppError, match="is not a valid split name"):
        open_server.call(client, "on_hub", "someone/reviews", "", "../../etc", "classification")
    assert load_dataset_calls == []  # refused before `datasets` saw any of them
    assert (ROOT / "backend" / "evaluation").is_dir()  # the owner/name-shaped local folder above is real


USERS = (("alice", "alice-password-1"), ("bob", "bob-password-22"), ("carol", "carol-password-3"))


@pytest.fixture(scope="module")
@full_tier
def login_server(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalServer]:
    from backend.core.registry import Registry
    from backend.engines import create_engine

    registry = Registry(tiny_config, create_engine)
    server = EvalServer(registry, tmp_path_factory.mktemp("runs"), users=USERS)
    yield server
    server.close()
    registry.close()


def listed(answer: tuple) -> list[str]:
    """The run ids of a runs_updates answer (the runs table's first column)."""
    table = answer[0]
    return [row[0] for row in table["data"]] if table and table.get("data") else []


def test_runs_belong_to_the_user_who_made_them(login_server: EvalServer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio_client import handle_file

    monkeypatch.setenv("WORKBENCH_ADMINS", "carol")
    path = tmp_path / "alice-data.csv"
    path.write_text("text,label,pred\nalice's private review,pos,pos\nanother one,neg,pos\n")
    alice = login_server.client("alice")
    login_server.call(alice, "on_upload", handle_file(str(path)), "classification")
    login_server.call_form(alice, "on_run", {
        "eval-task": "classification", "eval-input-col": "text", "eval-reference-col": "label",
        "eval-predictions-col": "pred", "eval-score-file": True, "eval-models": [], "eval-prompt": "",
        "eval-max-new-tokens": 8, "eval-batch-size": 4, "eval-limit": 0, "eval-seed": -1, "eval-bootstrap": 10,
        "eval-rouge-stemmer": False,
        "eval-passage-col": None, "eval-source-lang": None, "eval-target-lang": None,
        "eval-conversation-col": None, "eval-judge": None, "eval-judge-rubric": None, "eval-with-base": False})
    [run_id] = listed(login_server.call(alice, "runs_updates"))
    assert (login_server.ctl.runs_dir / "users" / "alice" / "eval" / run_id / "results.json").is_file()
    opened = login_server.call(alice, "on_open", run_id)
    assert any("alice-data.csv" in str(value) for value in opened)

    bob = login_server.client("bob")
    assert run_id not in listed(login_server.call(bob, "runs_updates"))
    # Bob's run pickers only offer his runs (Gradio refuses another value), and behind them the controller
    # answers "not found" for a run of someone else.
    for name, args in (("on_open", (run_id,)), ("on_compare", (run_id, run_id)),
                       ("on_open", (f"../alice/eval/{run_id}",))):
        with pytest.raises(AppError,
                           match="not in the list of choices|is not one of the choices|no saved run") as error:
            login_server.call(bob, name, *args)
        assert "alice-data" not in str(error.value) and "private review" not in str(error.value)
    with pytest.raises(InvalidInputError, match=f"there is no saved run '{run_id}' of yours"):
        login_server.ctl.open_run(run_id, "bob")

    carol = login_server.client("carol")  # an admin (WORKBENCH_ADMINS) sees every user's runs
    assert run_id in listed(login_server.call(carol, "runs_updates"))
    assert any("alice-data.csv" in str(value) for value in login_server.call(carol, "on_open", run_id))
