"""Publishing a finished run's model: the files it is made of (with its model card), a zip of them to download,
and a push to the Hugging Face Hub. Merging an adapter into a full model is `backend/training/merge.py` (a
process of its own); this module only reads the run folder, so the server calls it without torch.

The Hub push takes its token from the environment only (HF_TOKEN): never from a form, never stored. With
HF_HUB_OFFLINE set, without a token, or with the Hub unreachable it refuses with a code that says which, before
anything is sent.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

from backend.core.error_codes import refuse
from backend.core.hub import PROBE_TIMEOUT_S, hub_endpoint, probe
from backend.training import runfiles
from backend.training.merge import MERGED

# owner/name, as the Hub spells repository ids (huggingface_hub's validate_repo_id checks the same, more finely).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# Weights do not shrink in a zip: stored as they are (fast); text files are compressed.
_STORED = (".safetensors", ".bin", ".pt", ".gguf", ".onnx")
FileSource = Union[Path, bytes]


@dataclass(frozen=True)
class Export:
    """What is published of a run: one folder's files, named as they go into the zip or the repository."""

    run_dir: Path
    folder: Path  # RUN/model (a full model or an adapter) or RUN/merged
    kind: str  # "adapter" or "full"
    files: tuple[tuple[str, FileSource], ...]  # (name in the zip / repository, its file or its bytes)

    @property
    def size_bytes(self) -> int:
        return sum(source.stat().st_size if isinstance(source, Path) else len(source) for _, source in self.files)


def finished(run_dir: Path) -> runfiles.RunMetrics:
    """The run's metrics.json, when it finished with a model; refuses otherwise."""
    metrics = runfiles.read_metrics(run_dir)
    if metrics.get("status") != "completed" or not (run_dir / runfiles.MODEL).is_dir():
        raise refuse("run_not_finished", "run", run=run_dir.name, status=metrics.get("status") or "not started")
    return metrics


def export(run_dir: Path, merged: bool = False) -> Export:
    """The files of the run's model (`merged`: of its merged full model) plus its model card as README.md."""
    metrics = finished(run_dir)
    folder = run_dir / (MERGED if merged else runfiles.MODEL)
    if merged and not (folder / "config.json").is_file():
        raise refuse("not_merged", "merged", run=run_dir.name)
    kind = "full" if merged else str(metrics.get("model_kind") or "full")
    files: list[tuple[str, FileSource]] = [
        (path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != runfiles.CARD]
    files.append((runfiles.CARD, _card(run_dir, metrics, kind, merged)))
    return Export(run_dir=run_dir, folder=folder, kind=kind, files=tuple(files))


def _card(run_dir: Path, metrics: runfiles.RunMetrics, kind: str, merged: bool) -> FileSource:
    """The run's model card; for the merged model one written for a full model (library transformers)."""
    if not merged and (run_dir / runfiles.CARD).is_file():
        return run_dir / runfiles.CARD
    from backend.training.card import model_card
    from backend.training.config import load_train_config

    command = runfiles.tail(run_dir / runfiles.COMMAND).strip()
    return model_card(load_train_config(run_dir / runfiles.CONFIG), metrics, kind, command).encode("utf-8")


def write_zip(exported: Export, out: Optional[Path] = None) -> Path:
    """The export as a zip: `out`, or a new file in a fresh temporary folder (for a download). Written aside
    and renamed, so a reader never sees half a zip."""
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="workbench-model-")) / f"{exported.run_dir.name}-{exported.folder.name}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(temporary, "w", allowZip64=True) as archive:
        for name, source in exported.files:
            method = zipfile.ZIP_STORED if name.endswith(_STORED) else zipfile.ZIP_DEFLATED
            if isinstance(source, Path):
                archive.write(source, name, compress_type=method)
            else:
                archive.writestr(name, source, compress_type=method)
    os.replace(temporary, out)
    return out


def check_repo_id(repo_id: str) -> str:
    repo_id = (repo_id or "").strip()
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise refuse("hub_repo_id", "repo", repo=repo_id[:100])
    return repo_id


def hub_token(environ: Optional[Mapping[str, str]] = None) -> str:
    """HF_TOKEN from the environment; refuses offline (HF_HUB_OFFLINE) or without one. Never read elsewhere."""
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise refuse("hub_push_offline", "push")
    token = (env.get("HF_TOKEN") or "").strip()
    if not token:
        raise refuse("hub_push_no_token", "push")
    return token


def push(exported: Export, repo_id: str, private: bool = True, message: Optional[str] = None) -> str:
    """Creates the repository (if new) and uploads the export in one commit; returns the commit's URL."""
    repo_id = check_repo_id(repo_id)
    token = hub_token()
    endpoint = hub_endpoint()
    # huggingface_hub retries an unreachable Hub for about a minute: one short probe says "offline" at once.
    reachable, why = probe(endpoint, PROBE_TIMEOUT_S)
    if not reachable:
        raise refuse("hub_push_unreachable", "push", endpoint=endpoint, why=why)
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=endpoint, token=token)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(source) if isinstance(source, Path)
                                     else source) for name, source in exported.files]
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(repo_id, operations, commit_message=message or
                                   f"Upload {exported.folder.name} of run {exported.run_dir.name} (LLM Workbench)")
    except OfflineModeIsEnabled:  # HF_HUB_OFFLINE was set when huggingface_hub was first imported here
        raise refuse("hub_push_offline", "push") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        said = (getattr(error, "server_message", None) or "").strip().splitlines()
        why = f"HTTP {status}" + (f": {said[0][:200]}" if said else "")
        raise refuse("hub_push_failed", "push", repo=repo_id, why=why) from None
    return str(getattr(commit, "commit_url", commit))


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
