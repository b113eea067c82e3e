"""The Data tab's saved datasets (listed for Train and Evaluate, downloadable as a zip) and the datasets built
from chat ratings, arena votes (Compare) or exported conversations. Everything is per user (gr.Request.username)."""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import pandas as pd

from backend.data import feedback, store, votes
from backend.core.error_codes import refuse
from ui.common.components import handle_errors, ui_event
from ui.i18n.core import headed, say, t, text


def build_saved_section() -> tuple[gr.Dataframe, gr.Dropdown]:
    """The saved datasets (download any of them) and building a dataset from chat ratings."""
    gr.Markdown(t("data_saved_intro"))
    with gr.Row():
        kind = gr.Radio([(text("data_kind_sft"), "sft"), (text("data_kind_preference"), "preference"),
                         (text("data_kind_arena"), "arena")],
                        value="sft", label=t("data_from_ratings"), elem_id="data-feedback-kind", scale=2)
        feedback_name = gr.Textbox(label=t("data_feedback_name"), value="chat-feedback",
                                   elem_id="data-feedback-name", scale=1)
        build = gr.Button(t("data_build"), elem_id="data-feedback-build", scale=1)
    with gr.Row():
        chats = gr.File(label=t("data_chats"), file_types=[".json"], file_count="multiple",
                        type="filepath", elem_id="data-chat-files", scale=2)
        # Its own name: sharing the ratings' box saved both under one name without saying so.
        chats_name = gr.Textbox(label=t("data_chats_name"), value="chat-conversations", elem_id="data-chat-name",
                                scale=1)
        chats_build = gr.Button(t("data_chats_build"), elem_id="data-chat-build", scale=1)
    feedback_status = gr.Markdown("", elem_id="data-feedback-status")
    with gr.Row():
        refresh = gr.Button(t("refresh"), size="sm", elem_id="data-saved-refresh")
        pick = gr.Dropdown(label=t("data_saved_pick"), choices=[], elem_id="data-saved-pick")
    saved = gr.Dataframe(interactive=False, elem_id="data-saved", label=t("data_saved"))
    saved_download = gr.DownloadButton(t("download_zip"), visible=False, elem_id="data-saved-download")
    refresh.click(saved_rows, outputs=[saved, pick], **ui_event(saved))
    gr.on(None, saved_rows, outputs=[saved, pick], **ui_event(saved))  # no triggers, no inputs: on page load
    build.click(build_feedback, inputs=[kind, feedback_name], outputs=[feedback_status, saved, pick],
                **ui_event(feedback_status))
    chats_build.click(build_from_conversations, inputs=[chats, chats_name], outputs=[feedback_status, saved, pick],
                      **ui_event(feedback_status))
    pick.input(zip_saved, inputs=pick, outputs=saved_download, **ui_event(saved_download))
    return saved, pick


@handle_errors
def saved_rows(request: gr.Request) -> tuple[pd.DataFrame, Any]:
    infos = store.list_datasets(getattr(request, "username", None))
    rows = [{"name": i.name, "kind": i.kind, "rows": ", ".join(f"{k} {v:,}" for k, v in i.rows.items()),
             "created": i.created} for i in infos]
    return headed(pd.DataFrame(rows, columns=["name", "kind", "rows", "created"]), request=request), \
        gr.Dropdown(choices=[i.name for i in infos], value=None)


@handle_errors
def build_feedback(kind: str, name: str, request: gr.Request) -> tuple[str, pd.DataFrame, Any]:
    username = getattr(request, "username", None)
    if kind == "arena":  # chosen / rejected pairs from the Compare arena's votes (backend/data/votes.py)
        info = votes.save_votes_dataset(username, name)
    else:
        info = feedback.save_feedback_dataset(username, name, kind)
    saved, pick = saved_rows(request)
    rows = ", ".join(f"{k} {v:,}" for k, v in info.rows.items())
    return html.escape(say("data_built", name=info.name, kind=info.kind, rows=rows), quote=False), saved, pick


@handle_errors
def build_from_conversations(paths: Optional[list[str]], name: str, request: gr.Request) -> tuple[str, Any, Any]:
    info = feedback.save_conversations_dataset(getattr(request, "username", None), name, paths or [])
    saved, pick = saved_rows(request)
    said = say("data_built_chats", name=info.name, count=info.rows["train"])
    return html.escape(said, quote=False), saved, pick


@handle_errors
def zip_saved(name: Optional[str], request: gr.Request) -> Any:
    if not name:
        return gr.DownloadButton(visible=False)
    info = next((i for i in store.list_datasets(getattr(request, "username", None)) if i.name == name), None)
    if info is None:
        raise refuse("no_saved_dataset", "name", name=name)
    return gr.DownloadButton(value=zip_folder(info.folder), visible=True)


def zip_folder(folder: Path) -> str:
    """A zip of a dataset folder (its splits and card.json) in a fresh temp folder, for the download button."""
    out = Path(tempfile.mkdtemp(prefix="workbench-dataset-")) / folder.name
    return shutil.make_archive(str(out), "zip", root_dir=folder)
