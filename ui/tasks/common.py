"""What the task views share: the whole-file run (upload, column, batches, progress, Cancel, download) and small
formatting helpers. No torch here (the boundary test imports ui in a fresh interpreter)."""

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import pandas as pd
from gradio.context import Context

from backend.data import files as datafiles
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.tasks.files import TaskTableResult, run_table
from backend.tasks.table import task_spec
from backend.core.types import WorkbenchError
from ui.common.jobs import SessionJobs
from ui.common.components import handle_errors, ui_event
from ui.i18n.core import file_summary, headed, say, t
from ui.i18n.error_words import worded

PREVIEW_ROWS = 200
CONCURRENCY_ID = "tasks"
CONCURRENCY_LIMIT = 8


def escape(text: Any) -> str:
    return html.escape(str(text), quote=False)


def require_model(model_id: Optional[str], task: str) -> str:
    if not model_id:
        raise refuse("no_model_for_task", "model", task=task)
    return model_id


def inspect_upload(path: Optional[str], *, extra: int = 0) -> tuple:
    """(info line, column dropdown, and `extra` more column dropdowns) for an upload, or what is wrong with it."""
    empty = [gr.Dropdown(choices=[], value=None)] * (1 + extra)
    if not path:
        return ("", *empty)
    try:
        table = datafiles.read_table(path)
    except WorkbenchError as error:
        return (f"❌ {escape(worded(error))}", *empty)  # in the browser's language
    columns = [str(name) for name in table.columns]
    info = escape(file_summary(Path(path).name, len(table), columns))
    return (info, gr.Dropdown(choices=columns, value=datafiles.guess_text_column(table)),
            *[gr.Dropdown(choices=[""] + columns, value="") for _ in range(extra)])


@dataclass(frozen=True)
class FileRun:
    """The whole-file widgets of one task view."""

    upload: gr.File
    column: gr.Dropdown
    batch_size: gr.Slider
    status: gr.Markdown
    results: gr.Dataframe
    download: gr.DownloadButton


def file_section(registry: Registry, task: str, prefix: str, model: gr.Dropdown, inputs: set,
                 read_options: Callable[[dict], dict]) -> FileRun:
    """Renders 'Run over a file' for `task`; `read_options(data)` turns the view's widgets into run_table kwargs.
    The task's spec says whether rows carry a question (a question column) and which columns a run adds."""
    spec = task_spec(task)
    question_column = spec.asks_questions
    jobs = SessionJobs()
    with gr.Accordion(t("tasks_file_box"), open=False, elem_id=f"{prefix}-file-box"):
        upload = gr.File(label=t("file"), file_types=list(datafiles.SUPPORTED_EXTENSIONS), elem_id=f"{prefix}-file")
        info = gr.Markdown(elem_id=f"{prefix}-file-info")
        with gr.Row():
            column = gr.Dropdown(label=t("tasks_context_column") if question_column else t("text_column"), choices=[],
                                 interactive=True, elem_id=f"{prefix}-column")
            questions = gr.Dropdown(label=t("tasks_question_column"), choices=[],
                                    interactive=True, visible=question_column, elem_id=f"{prefix}-question-column")
            batch_size = gr.Slider(1, 64, value=16, step=1, label=t("batch_size"), info=t("tasks_batch_info"),
                                   elem_id=f"{prefix}-batch-size")
        with gr.Row():
            run = gr.Button(t("tasks_file_run"), variant="primary", elem_id=f"{prefix}-file-run")
            cancel = gr.Button(t("cancel"), variant="stop", elem_id=f"{prefix}-file-cancel")
        status = gr.Markdown(elem_id=f"{prefix}-file-status")
        results = gr.Dataframe(label=t("results"), interactive=False, wrap=True, max_height=360,
                               elem_id=f"{prefix}-results")
        download = gr.DownloadButton(t("download_results_csv"), visible=False, elem_id=f"{prefix}-download")
    upload.change(lambda path: inspect_upload(path, extra=1), inputs=upload, outputs=[info, column, questions],
                  **ui_event(info, progress=True))

    @handle_errors
    def run_file(data: dict, request: gr.Request, progress=gr.Progress()) -> tuple:
        path = data[upload]
        if not path:
            raise refuse("upload_file", "file")
        model_id = require_model(data[model], task)
        options = read_options(data)
        session = request.session_hash or ""
        with jobs.job(session) as flag:
            table = datafiles.read_table(path, display_name=Path(path).name)
            outcome = run_table(registry, model_id, task, table, data[column],
                                question_column=data[questions] or None, batch_size=int(data[batch_size]),
                                cancel=flag, progress=lambda fraction, text: progress(fraction, desc=text), **options)
        saved = _save(outcome.table, Path(path).stem, task)
        # The columns the run added are headed in the request's language; the file's own, and the CSV, keep theirs.
        shown = headed(outcome.table.head(PREVIEW_ROWS), names=spec.columns)
        return (_status(outcome), shown,
                gr.DownloadButton(value=str(saved), visible=True))

    # Clear the last run's results first: a stale table must never sit next to a new run's status.
    run.click(lambda: ("", None, gr.DownloadButton(visible=False)), outputs=[status, results, download],
              **ui_event(status, queue=False)).then(
        run_file, inputs=inputs | {model, upload, column, questions, batch_size}, outputs=[status, results, download],
        concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(status, progress=True))
    cancel.click(jobs.cancel_handler(), queue=False, api_visibility="private")
    root = Context.root_block
    if root is not None:
        root.unload(jobs.cancel_handler())
    return FileRun(upload, column, batch_size, status, results, download)


def _status(outcome: TaskTableResult) -> str:
    rate = outcome.completed / outcome.seconds if outcome.seconds > 0 else 0.0
    head = say("head_cancelled" if outcome.cancelled else "head_done")
    lines = [escape(say("tasks_file_status", head=head, completed=outcome.completed, total=outcome.total,
                        seconds=outcome.seconds, rate=rate, model=outcome.model_id))]
    if len(outcome.table) > PREVIEW_ROWS:
        lines.append(say("showing_first_rows", shown=PREVIEW_ROWS, total=len(outcome.table)))
    lines += [f"⚠️ **{escape(note)}**" for note in outcome.notices()]
    return "\n\n".join(lines)


def _save(table: pd.DataFrame, stem: str, task: str) -> Path:
    """A fresh folder per run, so two users' downloads never overwrite each other."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-tasks-"))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "results"
    return datafiles.write_csv(table, folder / f"{safe}-{task_spec(task).file_stem}.csv")
