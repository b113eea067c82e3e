"""Issue 15 through the real server (gradio_client): the Hub-dataset field reads no server files, evaluation
data is bounded, and runs are private to the user who made them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from gradio_client.exceptions import AppError

from tests.conftest import ROOT
from tests.eval_server import EvalServer


@pytest.fixture(scope="module")
def open_server(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalServer]:
    from backend.registry import Registry

    registry = Registry(tiny_config)
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
