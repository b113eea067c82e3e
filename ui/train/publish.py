"""The Train tab's Publish panel for a finished run: merge a LoRA adapter into a full model (registered, so it is in
every picker), download the model as a zip, push it to the Hugging Face Hub.

Everything goes through backend.training.publish and the training service (the same path as `python app.py
publish`). Only the run folders the user owns are reachable (the tab's own run lookup); the Hub token is the
server's HF_TOKEN, so pushing is for the users who may train.
"""

from __future__ import annotations

import hashlib
import html
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr

from backend.training import publish
from backend.training.service import TrainingService
from ui.common.components import handle_errors, ui_event
from ui.i18n.core import say, t

# One zip per run and folder (rewritten on each click), so repeated downloads do not fill the disk.
EXPORT_DIR = Path(tempfile.gettempdir()) / "workbench-model-exports"
RunFolder = Callable[[Optional[str], Optional[gr.Request]], Path]  # the tab's owned-run lookup
Guard = Callable[[Optional[gr.Request]], None]  # raises for a user who may not train


@dataclass(frozen=True)
class PublishPanel:
    service: TrainingService
    run_folder: RunFolder
    may_start: Guard
    # "Compare with base": one click to the Evaluate tab (wired in ui/__init__.py, ui/evaluate/prefill.py)
    compare: Optional[gr.Button] = None

    @classmethod
    def build(cls, service: TrainingService, run_id: gr.State, run_folder: RunFolder,
              may_start: Guard) -> "PublishPanel":
        with gr.Row(equal_height=True):
            compare = gr.Button(t("train_compare_base"), elem_id="train-compare-base", scale=1)
            gr.Markdown(t("train_compare_base_info"), elem_id="train-compare-base-info")
        panel = cls(service, run_folder, may_start, compare)
        with gr.Accordion(t("train_publish"), open=False, elem_id="train-publish"):
            gr.Markdown(t("train_publish_intro"))
            with gr.Row(equal_height=True):
                merge = gr.Button(t("train_merge"), elem_id="train-merge", scale=2)
                merged = gr.Checkbox(label=t("train_publish_merged"), info=t("train_publish_merged_info"),
                                     value=False, elem_id="train-publish-merged", scale=2)
                make_zip = gr.Button(t("train_zip"), elem_id="train-zip", scale=1)
                download = gr.DownloadButton(t("download_zip"), visible=False, elem_id="train-download", scale=1)
            with gr.Row(equal_height=True):
                repo = gr.Textbox(label=t("train_push_repo"), placeholder=t("train_push_repo_placeholder"),
                                  elem_id="train-push-repo", info=t("train_push_repo_info"), scale=3)
                private = gr.Checkbox(label=t("train_push_private"), value=True, elem_id="train-push-private",
                                      scale=1)
                push = gr.Button(t("train_push"), elem_id="train-push", scale=1)
            status = gr.Markdown("", elem_id="train-publish-status")
        merge.click(panel.merge, inputs=run_id, outputs=[status, merged], **ui_event(status, progress=True))
        make_zip.click(panel.zip, inputs=[run_id, merged], outputs=[download, status],
                       **ui_event(status, progress=True))
        push.click(panel.push, inputs=[run_id, merged, repo, private], outputs=status,
                   **ui_event(status, progress=True))
        # Another run opened (or started): the last run's download and message no longer apply.
        run_id.change(lambda _: (gr.DownloadButton(visible=False), ""), inputs=run_id, outputs=[download, status],
                      **ui_event(status, queue=False))
        return panel

    @handle_errors
    def merge(self, run_id: Optional[str], request: gr.Request) -> tuple[str, Any]:
        self.may_start(request)
        run_dir = self.run_folder(run_id, request)
        folder, model_id = self.service.merge_and_register(run_dir)
        return html.escape(say("train_merged_registered", model=model_id, folder=folder.name)), gr.update(value=True)

    @handle_errors
    def zip(self, run_id: Optional[str], merged: bool, request: gr.Request) -> tuple[Any, str]:
        run_dir = self.run_folder(run_id, request)
        exported = publish.export(run_dir, merged=bool(merged))
        out = zip_path(run_dir, exported.folder.name)
        publish.write_zip(exported, out)
        said = say("train_zip_ready", name=out.name, files=len(exported.files),
                   size=publish.size_text(out.stat().st_size))
        return gr.DownloadButton(value=str(out), visible=True), html.escape(said)

    @handle_errors
    def push(self, run_id: Optional[str], merged: bool, repo: str, private: bool, request: gr.Request) -> str:
        self.may_start(request)
        run_dir = self.run_folder(run_id, request)
        exported = publish.export(run_dir, merged=bool(merged))
        url = publish.push(exported, repo, private=bool(private))
        return html.escape(say("train_pushed", repo=repo.strip(), url=url, files=len(exported.files),
                               size=publish.size_text(exported.size_bytes)))


def zip_path(run_dir: Path, folder: str) -> Path:
    """Where the zip of a run's folder is written: a folder per run (named by a digest of its path, so two users'
    runs never share one), the file named after the run."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode("utf-8")).hexdigest()[:16]
    return EXPORT_DIR / digest / f"{run_dir.name}-{folder}.zip"
