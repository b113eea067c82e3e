"""Publishing a finished run without training one: the exported files and their zip, the Hub push (what a Hub
would receive, recorded by a stand-in server on 127.0.0.1, and every refusal: offline, no token, unreachable, a
bad repository id, a refused upload), the merged model's registry entry, the lineage in the model card, the
Publish panel's handlers, and the training-loss points of a short run."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from backend.core.types import WorkbenchError
from backend.training import overlay, publish, runfiles
from backend.training.card import lineage, model_card
from backend.training.config import parse_train_config, save_train_config
from backend.training.service import TrainingService
from tests.fake_hub import FakeHub
from tests.training_data import write_chat_jsonl

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = bytes(range(256)) * 40  # stands in for an adapter's weights


def make_run(folder: Path, base: str, data: Path, registered_as: str, adapter: Path | None = None,
             base_id: str = "tiny-chat", kind: str = "adapter", status: str = "completed") -> Path:
    """A run folder as the training process leaves it (config, metrics, model/, model card), without training."""
    folder.mkdir(parents=True)
    config = parse_train_config({"task": "sft", "base": base, "base_id": base_id, "data": str(data),
                                 "messages_column": "messages", "adapter": str(adapter) if adapter else None})
    save_train_config(config, folder / runfiles.CONFIG)
    (folder / runfiles.COMMAND).write_text("python -m backend.training.worker --config config.yaml\n")
    model = folder / runfiles.MODEL
    (model / "sub").mkdir(parents=True)
    (model / ("adapter_config.json" if kind == "adapter" else "config.json")).write_text('{"r": 8}')
    (model / "adapter_model.safetensors").write_bytes(WEIGHTS)
    (model / "sub" / "tokenizer.json").write_text('{"tokens": []}')
    metrics = {"status": status, "model_kind": kind, "registered_as": registered_as, "final": {"loss": 0.5}}
    runfiles.write_json_atomic(folder / runfiles.METRICS, metrics)
    (folder / runfiles.CARD).write_text(model_card(config, metrics, kind, "python -m backend.training.worker"))
    return folder


@pytest.fixture
def run(tmp_path: Path) -> Path:
    data = write_chat_jsonl(tmp_path / "chat.jsonl", copies=1)
    return make_run(tmp_path / "runs" / "20261207-sft-aaaaaa", str(tmp_path / "base"), data, "tiny-chat-ft")


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_the_export_is_the_model_folder_and_its_card_and_zips_whole(run: Path, tmp_path: Path) -> None:
    exported = publish.export(run)
    names = [name for name, _ in exported.files]
    assert names == ["adapter_config.json", "adapter_model.safetensors", "sub/tokenizer.json", "README.md"]
    assert exported.kind == "adapter" and exported.size_bytes > len(WEIGHTS)
    out = publish.write_zip(exported, tmp_path / "out" / "model.zip")
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == names
        assert archive.read("adapter_model.safetensors") == WEIGHTS
        assert archive.getinfo("adapter_model.safetensors").compress_type == zipfile.ZIP_STORED  # weights as they are
        assert archive.getinfo("README.md").compress_type == zipfile.ZIP_DEFLATED
        assert "library_name: peft" in archive.read("README.md").decode()
    assert [path.name for path in out.parent.iterdir()] == ["model.zip"]  # nothing half-written left beside it


def test_only_a_finished_run_is_published_and_merged_only_once_merged(run: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError) as refused:
        publish.export(run, merged=True)
    assert (refused.value.code, refused.value.params["run"]) == ("not_merged", run.name)
    runfiles.write_json_atomic(run / runfiles.METRICS, {"status": "running"})
    with pytest.raises(WorkbenchError) as refused:
        publish.export(run)
    assert refused.value.code == "run_not_finished" and refused.value.params["status"] == "running"
    # A full model needs no merge: refused before any merge process starts.
    full = make_run(tmp_path / "full", str(tmp_path / "base"), Path(tmp_path / "chat.jsonl"), "full-ft", kind="full")
    with pytest.raises(WorkbenchError) as refused:
        TrainingService(None, root=tmp_path).merge(full)
    assert refused.value.code == "merge_not_adapter"


def test_a_merged_model_is_published_with_a_card_of_its_own(run: Path) -> None:
    merged = run / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    (merged / "model.safetensors").write_bytes(WEIGHTS)
    exported = publish.export(run, merged=True)
    files = dict(exported.files)
    assert set(files) == {"config.json", "model.safetensors", "README.md"} and exported.kind == "full"
    card = files["README.md"]
    assert isinstance(card, bytes) and b"library_name: transformers" in card


def test_the_merged_model_is_registered_as_a_full_model(run: Path) -> None:
    from backend.training.config import load_train_config

    (run / "merged").mkdir()
    (run / "merged" / "config.json").write_text("{}")
    config = load_train_config(run / runfiles.CONFIG)
    metrics = runfiles.read_metrics(run)
    entry = overlay.entry_for_run(run, config, metrics, "tiny-chat-ft-merged", model_dir=run / "merged")
    assert entry["source"] == str((run / "merged").resolve()) and "adapter" not in entry
    assert "merged" in entry["description"]
    assert overlay.entry_for_run(run, config, metrics, "tiny-chat-ft")["adapter"] == str((run / "model").resolve())


def test_push_refuses_offline_without_a_token_unreachable_or_a_bad_repo(run: Path, hub_env: None,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    exported = publish.export(run)

    def refusal(repo: str = "alice/tiny-chat-ft") -> WorkbenchError:
        with pytest.raises(WorkbenchError) as refused:
            publish.push(exported, repo)
        return refused.value

    assert refusal().code == "hub_push_no_token"
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = refusal()
    assert offline.code == "hub_push_offline" and "HF_HUB_OFFLINE is set" in str(offline)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for bad in ("no-owner", "a/b/c", "../x", "alice/", "alice/name.git", ""):
        assert refusal(bad).code == "hub_repo_id", bad
    with FakeHub() as hub:  # a port that was listening and no longer is: nothing answers there
        closed = hub.url
    monkeypatch.setenv("HF_ENDPOINT", closed)
    unreachable = refusal()
    assert unreachable.code == "hub_push_unreachable" and unreachable.params["endpoint"] == closed
    assert "offline" in str(unreachable)


def test_push_creates_the_repo_and_uploads_the_export_in_one_commit(run: Path, hub_env: None,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    exported = publish.export(run)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        url = publish.push(exported, " alice/tiny-chat-ft ")
        assert url.startswith(hub.url) and "alice/tiny-chat-ft" in url
        created = hub.requests("/api/repos/create")
        assert [request.json() for request in created] == [
            {"name": "tiny-chat-ft", "organization": "alice", "visibility": "private"}]
        api = [request for request in hub.log if request.path.startswith("/api/")]
        assert api and all(request.headers.get("authorization") == "Bearer hf_secret_token" for request in api)
        assert [request.method for request in hub.log if request not in api] == ["HEAD"]  # the probe, no token
        assert "authorization" not in hub.log[0].headers
        commits = hub.requests("/api/models/alice/tiny-chat-ft/commit/main")
        assert len(commits) == 1
        uploaded = commits[0].commit_files()
        assert list(uploaded) == [name for name, _ in exported.files]
        assert uploaded["adapter_model.safetensors"] == WEIGHTS
        assert uploaded["README.md"] == (run / "README.md").read_bytes()

        hub.refuse_create = 403
        with pytest.raises(WorkbenchError) as refused:
            publish.push(exported, "bob/other")
        assert refused.value.code == "hub_push_failed" and "HTTP 403" in refused.value.params["why"]


def test_the_publish_panel_zips_only_a_run_it_is_given_and_words_refusals(run: Path, hub_env: None) -> None:
    from ui.train.publish import PublishPanel, zip_path

    allowed: list[str] = []

    def run_folder(run_id, request):  # the tab's owned-run lookup
        allowed.append(run_id)
        return run

    panel = PublishPanel(TrainingService(None), run_folder, lambda request: None)
    download, said = panel.zip(run.name, False, gr.Request())
    assert allowed == [run.name] and download.value is not None
    zipped = Path(zip_path(run, "model"))
    assert zipped.is_file() and zipfile.ZipFile(zipped).namelist()[-1] == "README.md"
    assert zipped.name in said and "4 files" in said
    with pytest.raises(gr.Error, match="HF_TOKEN"):
        panel.push(run.name, False, "alice/model", True, gr.Request())


def test_lineage_follows_continued_runs_back_to_the_first_base(tmp_path: Path) -> None:
    data = write_chat_jsonl(tmp_path / "chat.jsonl", copies=1)
    first = make_run(tmp_path / "runs" / "r1", str(tmp_path / "base"), data, "chat-a")
    second = make_run(tmp_path / "runs" / "r2", str(tmp_path / "base"), data, "chat-b",
                      adapter=first / "model", base_id="chat-a")
    third = parse_train_config({"task": "dpo", "base": str(tmp_path / "base"), "base_id": "chat-b",
                                "data": str(data), "chosen_column": "c", "rejected_column": "r",
                                "adapter": str(second / "model")})
    assert lineage(third) == ["tiny-chat", "chat-a", "chat-b"]
    assert "`tiny-chat` → `chat-a` → `chat-b` → this model" in model_card(third, {}, "adapter", "cmd")
    plain = parse_train_config({"task": "sft", "base": str(tmp_path / "base"), "data": str(data),
                                "messages_column": "messages"})
    assert lineage(plain) == ["base"]  # a folder that is no run's: named by the folder
    runfiles.write_json_atomic(first / runfiles.METRICS, {"status": "completed"})  # never registered
    assert lineage(third) == ["tiny-chat", "r1", "chat-b"]


def test_a_short_run_logs_its_training_loss_at_every_step() -> None:
    from backend.training.worker import total_steps

    config = parse_train_config({"task": "sft", "base": "b", "data": "d.jsonl", "messages_column": "m",
                                 "max_steps": 10})
    assert config.logging_steps_for(total_steps(config, 40, 1)) == 1
    assert config.logging_steps_for(1000) == 10 and config.logging_steps_for(3) == 1
    epochs = parse_train_config({"task": "sft", "base": "b", "data": "d.jsonl", "messages_column": "m",
                                 "epochs": 1, "batch_size": 4})
    assert config.logging_steps_for(total_steps(epochs, 40, 1)) == 1  # 10 steps of 4 examples


@pytest.mark.full
def test_publish_command_zips_and_pushes(run: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_TOKEN": "hf_cli_token"}
    env.pop("HF_HUB_OFFLINE", None)
    with FakeHub() as hub:
        env["HF_ENDPOINT"] = hub.url
        result = subprocess.run([sys.executable, "app.py", "publish", "--run", str(run), "--zip",
                                 str(tmp_path / "m.zip"), "--push", "alice/cli-model", "--public"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert [request.json() for request in hub.requests("/api/repos/create")] == [
            {"name": "cli-model", "organization": "alice", "visibility": "public"}]
        assert "README.md" in hub.requests("/api/models/alice/cli-model/commit/main")[0].commit_files()
    assert f"zip: {tmp_path / 'm.zip'}" in result.stdout and "pushed: " in result.stdout
    assert zipfile.ZipFile(tmp_path / "m.zip").namelist()[-1] == "README.md"
    env["HF_HUB_OFFLINE"] = "1"
    offline = subprocess.run([sys.executable, "app.py", "publish", "--run", str(run), "--merge", "--push",
                              "alice/cli-model"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert offline.returncode == 2 and offline.stderr.startswith("error: push: HF_HUB_OFFLINE is set")
    assert not (run / "merged").exists()  # refused before the merge
