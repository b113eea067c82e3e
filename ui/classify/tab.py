"""The Classify tab: supervised labels, zero-shot NLI and LLM label scoring, for one text or a whole file.

Plus the `/classify` API endpoint. Everything model-related lives in backend.services.classification; this module only
turns widgets into one request and results into widgets (it never imports torch).

No `from __future__ import annotations` here: `gr.api` reads the endpoint's type hints at runtime.
"""

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import pandas as pd
from gradio.context import Context

from backend.services import classification as clf
from backend.data import files as datafiles
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.guard.table_limits import SHOWN_CELL_CHARS, release_memory
from backend.core.types import InvalidInputError, LabelScore, WorkbenchError
from ui.common.components import handle_errors, live_choices, ui_errors, ui_event
from ui.i18n.error_words import worded
from ui.common.jobs import SessionJobs
from ui.i18n.core import CHINESE, columns, file_summary, headed, language, say, t, text

MODE_CHOICES = [(text("classify_mode_supervised"), "supervised"), (text("classify_mode_zero_shot"), "zero_shot"),
                (text("classify_mode_llm"), "llm")]
PREVIEW_ROWS = 500  # rows of a file's results shown in the page; the download has them all
CONCURRENCY_ID = "classify"
CONCURRENCY_LIMIT = 8


@dataclass(frozen=True)
class ClassifyForm:
    """The settings every run shares; `read` turns their values into keyword arguments for the backend."""

    mode: gr.Radio
    model: gr.Dropdown
    labels: gr.Textbox
    multi_label: gr.Checkbox
    hypothesis_template: gr.Textbox
    prompt_template: gr.Textbox
    batch_size: gr.Slider

    @property
    def inputs(self) -> set:
        return {self.mode, self.model, self.labels, self.multi_label, self.hypothesis_template,
                self.prompt_template, self.batch_size}

    def read(self, data: dict) -> dict[str, Any]:
        mode = data[self.mode]
        model_id = data[self.model]
        if not model_id:
            raise refuse("no_model_for_mode", "model", mode=clf.MODE_NAMES.get(mode, mode))
        return {
            "model_id": model_id,
            "mode": mode,
            "labels": data[self.labels] if mode != "supervised" else None,
            "multi_label": bool(data[self.multi_label]) if mode == "zero_shot" else False,
            "hypothesis_template": data[self.hypothesis_template],
            "prompt_template": data[self.prompt_template],
            "batch_size": int(data[self.batch_size]),
        }


# ------------------------------------------------------------------------------------------------ tab


def build_classify_tab(registry: Registry) -> None:
    """Renders the Classify tab; call inside the app's `gr.Blocks` / `gr.Tabs`."""
    initial_mode = next((mode for mode in clf.MODES if clf.models_for(registry, mode)), "supervised")
    jobs = SessionJobs()
    with gr.Tab(t("tab_classify"), id="classify", elem_id="tab-classify"):
        with gr.Row():
            mode = gr.Radio(MODE_CHOICES, value=initial_mode, label=t("classify_mode"), info=t("classify_mode_info"),
                            elem_id="classify-mode",
                            scale=3)
            model = gr.Dropdown(**_model_choices(registry, initial_mode), label=t("model"), elem_id="classify-model",
                                interactive=True, scale=2)
            live_choices(model, lambda chosen: _model_choices(registry, chosen)["choices"], inputs=[mode])
            batch_size = gr.Slider(1, 128, value=clf.DEFAULT_BATCH_SIZE, step=1, label=t("batch_size"),
                                   info=t("classify_batch_info"), elem_id="classify-batch-size", scale=2)
        labels = gr.Textbox(label=t("classify_labels"), placeholder=t("classify_labels_placeholder"),
                            visible=initial_mode != "supervised", elem_id="classify-labels")
        with gr.Row():
            multi_label = gr.Checkbox(label=t("classify_multi_label"), value=False,
                                      visible=initial_mode == "zero_shot", elem_id="classify-multi-label")
            hypothesis = gr.Textbox(label=t("classify_hypothesis"),
                                    value=clf.DEFAULT_HYPOTHESIS_TEMPLATE, visible=initial_mode == "zero_shot",
                                    elem_id="classify-hypothesis")
            prompt = gr.Textbox(label=t("classify_prompt"),
                                value=clf.DEFAULT_PROMPT_TEMPLATE, lines=2, visible=initial_mode == "llm",
                                elem_id="classify-prompt-template")
        form = ClassifyForm(mode, model, labels, multi_label, hypothesis, prompt, batch_size)

        with gr.Tabs(elem_id="classify-inputs"):
            with gr.Tab(t("classify_single"), id="classify-single", elem_id="classify-single-tab"):
                text_box = gr.Textbox(label=t("text"), lines=4, elem_id="classify-text",
                                      placeholder=t("classify_text_placeholder"))
                run = gr.Button(t("classify_run"), variant="primary", elem_id="classify-run")
                with gr.Row():
                    ranked = gr.Label(label=t("classify_ranked"), elem_id="classify-label")
                    chart = gr.BarPlot(None, x="label", y="score", y_lim=[0, 1], sort="-y", label=t("classify_scores"),
                                       height=260, elem_id="classify-chart")
                notice = gr.Markdown(elem_id="classify-notice")
            with gr.Tab(t("classify_whole_file"), id="classify-file-tab", elem_id="classify-file-tab"):
                upload = gr.File(label=t("classify_upload"), file_types=list(datafiles.SUPPORTED_EXTENSIONS),
                                 elem_id="classify-file")
                file_info = gr.Markdown(elem_id="classify-file-info")
                column = gr.Dropdown(label=t("text_column"), choices=[], interactive=True, elem_id="classify-column")
                with gr.Row():
                    run_file = gr.Button(t("classify_file_run"), variant="primary", interactive=False,
                                         elem_id="classify-file-run")
                    cancel = gr.Button(t("cancel"), variant="stop", elem_id="classify-file-cancel")
                status = gr.Markdown(elem_id="classify-file-status")
                results = gr.Dataframe(label=t("results"), interactive=False, wrap=True, max_height=420,
                                       elem_id="classify-results")
                download = gr.DownloadButton(t("download_results_csv"), visible=False, elem_id="classify-download")

    mode.change(lambda chosen: _mode_updates(registry, chosen), inputs=mode,
                outputs=[model, labels, multi_label, hypothesis, prompt], **ui_event(model, queue=False))

    @ui_errors
    def classify_one(data: dict) -> tuple:
        options = form.read(data)
        result = clf.classify_texts(registry, texts=[data[text_box]], **options)
        scores = result.scores[0]
        return _label_value(scores), _chart_frame(scores), _notice(result)

    gr.on([run.click, text_box.submit], classify_one, inputs=form.inputs | {text_box}, outputs=[ranked, chart, notice],
          concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT, **ui_event(notice, progress=True))

    def inspect_file(path: Optional[str]) -> tuple:
        """Shows the rows and columns of an upload, or what is wrong with it (inline: it stays visible); "Classify
        file" is clickable only for a file that can be classified."""
        refused = gr.Dropdown(choices=[], value=None), gr.Button(interactive=False)
        if not path:
            return ("", *refused)
        try:
            table = datafiles.read_table(path)
            guess = datafiles.guess_text_column(table)
            if guess is None:
                raise refuse("no_text_column", "file", name=Path(path).name)
        except WorkbenchError as error:
            said = worded(error)  # in the browser's language
            return (f"❌ {html.escape(said, quote=False)}", *refused)
        columns = [str(name) for name in table.columns]
        info = html.escape(file_summary(Path(path).name, len(table), columns), quote=False)
        return info, gr.Dropdown(choices=columns, value=guess), gr.Button(interactive=True)

    upload.change(inspect_file, inputs=upload, outputs=[file_info, column, run_file],
                  **ui_event(file_info, progress=True))

    @ui_errors
    def classify_file(data: dict, request: gr.Request, progress=gr.Progress()) -> tuple:
        path = data[upload]
        if not path:
            raise refuse("upload_file", "file")
        options = form.read(data)
        with jobs.job(request.session_hash or "") as flag:
            table = datafiles.read_table(path)
            if data[column] in table.columns and datafiles.is_numeric_column(table, data[column]):
                raise refuse("numbers_column", "column", name=data[column])
            outcome = clf.classify_table(
                registry, table=table, column=data[column], cancel=flag,
                progress=lambda fraction, description: progress(fraction, desc=description), **options)
        try:
            saved = _save_results(outcome.table, Path(path).stem)
            # The download keeps full precision and every character; the page gets short cells.
            shown = datafiles.clip_cells(outcome.table.head(PREVIEW_ROWS).round(4), SHOWN_CELL_CHARS)
            return (_file_status(outcome, len(shown)), _results_headed(shown),
                    gr.DownloadButton(value=str(saved), visible=True))
        finally:
            del table, outcome
            release_memory()  # the file's table and results go back to the system once the reply is built

    # The progress bar sits on the status line; a failure shows as a toast, never as a badge over the table.
    run_file.click(classify_file, inputs=form.inputs | {upload, column}, outputs=[status, results, download],
                   concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT,
                   **ui_event(status, progress=True))
    # Not queued, so it runs at once while the file job holds its queue slot; the job stops after its batch.
    cancel.click(jobs.cancel_handler(), inputs=None, outputs=None, queue=False, api_visibility="private")
    # A closed or reloaded browser tab cancels its file run too, instead of leaving it to classify for nobody.
    root = Context.root_block
    if root is not None:
        root.unload(jobs.cancel_handler())


# ------------------------------------------------------------------------------------------------ API


def register_classify_api(registry: Registry) -> None:
    """Adds the `/classify` endpoint (call inside the app's `gr.Blocks`)."""

    @handle_errors
    def classify(
        text: str,
        model: str = "",
        labels: str = "",
        multi_label: bool = False,
        hypothesis_template: str = clf.DEFAULT_HYPOTHESIS_TEMPLATE,
        prompt_template: str = clf.DEFAULT_PROMPT_TEMPLATE,
    ) -> list[dict]:
        """Classifies one text. `labels` (comma separated) are needed for zero-shot and LLM models, which score
        exactly those labels. Returns [{"label", "score"}] in score order."""
        model_id = model or _default_model(registry, bool(clf.parse_labels(labels)))
        result = clf.classify_texts(registry, model_id, [text], labels or None, multi_label=multi_label,
                                    hypothesis_template=hypothesis_template, prompt_template=prompt_template,
                                    batch_size=1)
        return clf.scores_to_dicts(result.scores[0])

    gr.api(classify, api_name="classify", concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT)


def _default_model(registry: Registry, has_labels: bool) -> str:
    order: tuple[clf.Mode, ...] = ("zero_shot", "llm") if has_labels else ("supervised",)
    for mode in order:
        specs = clf.models_for(registry, mode)
        if specs:
            return specs[0].id
    wanted = "zero-shot or LLM" if has_labels else "supervised"
    raise InvalidInputError(f"model: none given, and no model in this registry does {wanted} classification")


# -------------------------------------------------------------------------------------------- helpers


def _model_choices(registry: Registry, mode: str) -> dict[str, Any]:
    specs = clf.models_for(registry, mode)  # type: ignore[arg-type]
    return {
        "choices": [(spec.display_name, spec.id) for spec in specs],
        "value": specs[0].id if specs else None,
        "info": None if specs else text("classify_no_model"),
    }


def _mode_updates(registry: Registry, mode: str) -> list[Any]:
    return [
        gr.Dropdown(**_model_choices(registry, mode)),
        gr.Textbox(visible=mode != "supervised"),
        gr.Checkbox(visible=mode == "zero_shot"),
        gr.Textbox(visible=mode == "zero_shot"),
        gr.Textbox(visible=mode == "llm"),
    ]


def _label_value(scores: list[LabelScore]) -> dict[str, float]:
    return {item.label: item.score for item in scores}


def _chart_frame(scores: list[LabelScore]) -> pd.DataFrame:
    return pd.DataFrame({"label": [item.label for item in scores], "score": [item.score for item in scores]})


def _results_headed(shown: pd.DataFrame) -> pd.DataFrame:
    """The results table with the app's columns (predicted_label, predicted_score, "score: <label>") headed in
    the request's language; the file's own columns, and the labels, stay as they are (the CSV keeps English)."""
    score = columns("score")[0]
    own = ("predicted_label", "predicted_score")
    named = headed(shown, names=own)
    return named.set_axis([f"{score}: {name[len('score: '):]}" if name.startswith("score: ") and name not in own
                           else name for name in map(str, named.columns)], axis=1)


def _mode_name(mode: str) -> str:
    """A mode as the status lines name it: the backend's words, or the mode's Chinese for a Chinese request."""
    return say(f"classify_mode_{mode}") if language() == CHINESE else clf.MODE_NAMES[mode]  # type: ignore[index]


def _notice(result: clf.ClassificationResult) -> str:
    line = say("classify_notice", mode=_mode_name(result.mode), model=result.model_id, seconds=result.seconds)
    lines = [html.escape(line, quote=False)]
    lines += [f"⚠️ **{html.escape(note, quote=False)}**" for note in result.notices()]
    return "\n\n".join(lines)


def _file_status(outcome: clf.TableResult, shown: int) -> str:
    result = outcome.result
    rate = result.completed / result.seconds if result.seconds > 0 else 0.0
    head = say("head_cancelled" if result.cancelled else "head_done")
    line = say("classify_file_status", head=head, completed=result.completed, total=result.total,
               seconds=result.seconds, rate=rate, model=result.model_id, mode=_mode_name(result.mode))
    lines = [html.escape(line, quote=False)]
    if len(outcome.table) > shown:
        lines.append(say("showing_first_rows", shown=shown, total=len(outcome.table)))
    lines += [f"⚠️ **{html.escape(note, quote=False)}**" for note in outcome.notices()]
    return "\n\n".join(lines)


def _save_results(table: pd.DataFrame, stem: str) -> Path:
    """A fresh folder per run, so two users' downloads never overwrite each other."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-classify-"))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "results"
    return datafiles.write_csv(table, folder / f"{safe}-classified.csv")
