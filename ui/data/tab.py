"""The Data tab: load a file or Hub dataset, look at it (paged preview, column statistics, label balance, length
histogram), clean, split and augment it, save it under a name for Train and Evaluate, download it; and turn rated
chat replies into SFT or preference datasets.

Preparing runs in its own process (backend/data/jobs.py); this tab only starts it, shows its progress and stops
it (Cancel, or a closed browser tab). The loaded table is kept per browser session (gr.State), never shared.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import gradio as gr
import pandas as pd

from backend.data import stats as data_stats
from backend.data.jobs import DataJob
from backend.data.pipeline import describe_step
from backend.data.recipe import AUGMENT_METHODS, CLEAN_STEPS, DEFAULT_PARAPHRASE_PROMPT, FORMATS, Recipe
from backend.data.files import SUPPORTED_EXTENSIONS, guess_text_column
from backend.core.error_codes import refuse
from backend.evaluation.data import DataSource, load_table, preview
from backend.core.registry import Registry
from backend.core.types import InvalidInputError
from ui.common.components import handle_errors, live_choices, ui_event
from ui.data.saved import build_saved_section, saved_rows, zip_folder
from ui.i18n.core import headed, say, t, text

PAGE_ROWS = 20
NONE = "(none)"
POLL_S = 0.3
COUNT_AXIS: list[float | None] = [0, None]  # the bar charts' y axis: from 0, up to the largest count
# The checkboxes' words (translation keys "clean_<step>" / "augment_<method>", ui/i18n/strings_work.py).
CLEAN_LABELS = {step: text(f"clean_{step}") for step in CLEAN_STEPS}
AUGMENT_LABELS = {method: text(f"augment_{method}") for method in AUGMENT_METHODS}


@dataclass(frozen=True)
class DataTab:
    registry: Registry
    table: gr.State
    source: gr.State
    file: gr.File
    hub_id: gr.Textbox
    hub_config: gr.Textbox
    hub_split: gr.Textbox
    text_column: gr.Dropdown
    label_column: gr.Dropdown
    token_model: gr.Dropdown
    status: gr.Markdown
    page: gr.Number
    preview: gr.Dataframe
    columns: gr.Dataframe
    summary: gr.Markdown
    labels_plot: gr.BarPlot
    length_plot: gr.BarPlot
    clean: gr.CheckboxGroup
    min_chars: gr.Number
    max_chars: gr.Number
    min_tokens: gr.Number
    max_tokens: gr.Number
    near_threshold: gr.Slider
    allowed_labels: gr.Textbox
    split_on: gr.Checkbox
    fractions: gr.Textbox
    seed: gr.Number
    augment: gr.CheckboxGroup
    rate: gr.Slider
    copies: gr.Slider
    paraphrase_model: gr.Dropdown
    paraphrase_prompt: gr.Textbox
    name: gr.Textbox
    fmt: gr.Radio
    result: gr.Markdown
    download: gr.DownloadButton
    saved: gr.Dataframe
    pick: gr.Dropdown

    @classmethod
    def build(cls, registry: Registry) -> "DataTab":
        local, chat = _local_ids(registry), _chat_ids(registry)
        table, source = gr.State(None), gr.State(None)
        gr.Markdown(t("data_intro"))
        with gr.Row():
            with gr.Column(scale=2):
                file = gr.File(label=t("data_file"), file_types=list(SUPPORTED_EXTENSIONS), type="filepath",
                               elem_id="data-file")
                with gr.Accordion(t("data_hub"), open=False):
                    hub_id = gr.Textbox(label=t("dataset_id"), placeholder=t("data_hub_placeholder"),
                                        elem_id="data-hub-id")
                    with gr.Row():
                        hub_config = gr.Textbox(label=t("config"), elem_id="data-hub-config")
                        hub_split = gr.Textbox(label=t("split"), value="train", elem_id="data-hub-split")
                    hub_load = gr.Button(t("data_hub_load"), size="sm", elem_id="data-hub-load")
            with gr.Column(scale=1):
                text_column = gr.Dropdown(label=t("text_column"), choices=[], elem_id="data-text-column")
                label_column = gr.Dropdown(label=t("label_column"), choices=[NONE], value=NONE,
                                           elem_id="data-label-column")
                token_model = gr.Dropdown(label=t("data_token_model"), choices=[NONE, *local], value=NONE,
                                          elem_id="data-token-model")
                live_choices(token_model, lambda: [NONE, *_local_ids(registry)])
        status = gr.Markdown("", elem_id="data-status")
        with gr.Tab(t("data_preview")):
            with gr.Row():
                prev = gr.Button(t("data_prev"), size="sm", elem_id="data-prev")
                page = gr.Number(label=t("data_page"), value=1, precision=0, minimum=1, elem_id="data-page")
                nxt = gr.Button(t("data_next"), size="sm", elem_id="data-next")
            preview_table = gr.Dataframe(interactive=False, wrap=True, max_height=420, elem_id="data-preview")
        with gr.Tab(t("data_statistics")):
            summary = gr.Markdown("", elem_id="data-summary")
            columns = gr.Dataframe(interactive=False, elem_id="data-columns", label=t("data_columns"))
            with gr.Row():
                # Counts from 0: a y axis from the smallest count drew no bar for the smallest label.
                labels_plot = gr.BarPlot(None, x="label", y="rows", label=t("data_label_balance"),
                                         y_lim=COUNT_AXIS, elem_id="data-labels-plot")
                length_plot = gr.BarPlot(None, x="length", y="rows", label=t("data_text_length"),
                                         y_lim=COUNT_AXIS, elem_id="data-length-plot")
        with gr.Accordion(t("data_clean"), open=True):
            clean = gr.CheckboxGroup([(CLEAN_LABELS[s], s) for s in CLEAN_STEPS], value=["normalize", "empty"],
                                     label=t("data_clean_steps"), elem_id="data-clean")
            with gr.Row():
                min_chars = gr.Number(label=t("data_min_chars"), precision=0, elem_id="data-min-chars")
                max_chars = gr.Number(label=t("data_max_chars"), precision=0, elem_id="data-max-chars")
                min_tokens = gr.Number(label=t("data_min_tokens"), precision=0, elem_id="data-min-tokens")
                max_tokens = gr.Number(label=t("data_max_tokens"), precision=0, elem_id="data-max-tokens")
            with gr.Row():
                near_threshold = gr.Slider(0.5, 1.0, value=0.8, step=0.05, label=t("data_near"),
                                           elem_id="data-near")
                allowed_labels = gr.Textbox(label=t("data_allowed_labels"),
                                            elem_id="data-allowed-labels")
        with gr.Accordion(t("data_split_augment"), open=False):
            with gr.Row():
                split_on = gr.Checkbox(label=t("data_split_on"), value=True, elem_id="data-split-on")
                fractions = gr.Textbox(label=t("data_fractions"), value="0.8,0.1,0.1", elem_id="data-fractions")
                seed = gr.Number(label=t("seed"), value=0, precision=0, minimum=0, elem_id="data-seed")
            augment = gr.CheckboxGroup([(AUGMENT_LABELS[m], m) for m in AUGMENT_METHODS], label=t("data_augment"),
                                       elem_id="data-augment")
            with gr.Row():
                rate = gr.Slider(0, 1, value=0.3, step=0.05, label=t("data_rate"), elem_id="data-rate")
                copies = gr.Slider(1, 10, value=1, step=1, label=t("data_copies"), elem_id="data-copies")
                paraphrase_model = gr.Dropdown(label=t("data_paraphrase_model"), choices=chat,
                                               value=chat[0] if chat else None,
                                               elem_id="data-paraphrase-model")
                live_choices(paraphrase_model, lambda: _chat_ids(registry))
            paraphrase_prompt = gr.Textbox(label=t("data_paraphrase_prompt"), lines=2,
                                           value=DEFAULT_PARAPHRASE_PROMPT, elem_id="data-paraphrase-prompt")
        with gr.Row():
            name = gr.Textbox(label=t("data_name"), placeholder=t("data_name_placeholder"), elem_id="data-name",
                              scale=2)
            fmt = gr.Radio(list(FORMATS), value="jsonl", label=t("data_format"), elem_id="data-format", scale=1)
        with gr.Row():
            count = gr.Button(t("data_count"), elem_id="data-count")
            run = gr.Button(t("data_run"), variant="primary", elem_id="data-run")
            cancel = gr.Button(t("cancel"), variant="stop", elem_id="data-cancel")
        result = gr.Markdown("", elem_id="data-result")
        download = gr.DownloadButton(t("download_zip"), visible=False, elem_id="data-download")
        saved, pick = build_saved_section()
        tab = cls(registry, table, source, file, hub_id, hub_config, hub_split, text_column, label_column,
                  token_model, status, page, preview_table, columns, summary, labels_plot, length_plot, clean,
                  min_chars, max_chars, min_tokens, max_tokens, near_threshold, allowed_labels, split_on, fractions,
                  seed, augment, rate, copies, paraphrase_model, paraphrase_prompt, name, fmt, result, download,
                  saved, pick)
        tab._wire(hub_load, prev, nxt, count, run, cancel)
        return tab

    def _wire(self, hub_load: gr.Button, prev: gr.Button, nxt: gr.Button, count: gr.Button, run: gr.Button,
              cancel: gr.Button) -> None:
        loaded = [self.table, self.source, self.text_column, self.label_column, self.status, self.page, self.preview,
                  self.columns, self.summary, self.labels_plot, self.length_plot, self.result, self.download]
        self.file.upload(self.load_file, inputs=self.file, outputs=loaded, **ui_event(self.status))
        hub_load.click(self.load_hub, inputs=[self.hub_id, self.hub_config, self.hub_split], outputs=loaded,
                       **ui_event(self.status))
        analysed = [self.columns, self.summary, self.labels_plot, self.length_plot, self.result, self.download]
        for control in (self.text_column, self.label_column, self.token_model):
            control.input(self.analyse, inputs=[self.table, self.text_column, self.label_column, self.token_model],
                          outputs=analysed, **ui_event(self.summary))
        for button, step in ((prev, -1), (nxt, 1)):
            button.click(lambda table, page, step=step: self.show_page(table, (page or 1) + step),
                         inputs=[self.table, self.page], outputs=[self.page, self.preview], **ui_event(self.preview))
        self.page.submit(self.show_page, inputs=[self.table, self.page], outputs=[self.page, self.preview],
                         **ui_event(self.preview))
        form: set[gr.blocks.Block]
        form = {self.source, self.text_column, self.label_column, self.token_model, self.clean, self.min_chars,
                self.max_chars, self.min_tokens, self.max_tokens, self.near_threshold, self.allowed_labels,
                self.split_on, self.fractions, self.seed, self.augment, self.rate, self.copies,
                self.paraphrase_model, self.paraphrase_prompt, self.name, self.fmt}
        running = run.click(self.prepare, inputs=form, outputs=[self.result, self.download, self.saved, self.pick],
                            **ui_event(self.result))
        # A result shown is for the settings it ran with: changing any of them clears it.
        for setting in (self.clean, self.min_chars, self.max_chars, self.min_tokens, self.max_tokens,
                        self.near_threshold, self.allowed_labels, self.split_on, self.fractions, self.seed,
                        self.augment, self.rate, self.copies, self.paraphrase_model, self.paraphrase_prompt):
            setting.input(lambda: ("", gr.DownloadButton(visible=False)), outputs=[self.result, self.download],
                          **ui_event(self.result, queue=False))
        counting = count.click(self.count, inputs=form, outputs=[self.result, self.download, self.saved, self.pick],
                               **ui_event(self.result))
        cancel.click(None, cancels=[running, counting], api_visibility="private", queue=False)

    # --------------------------------------------------------------------------------------------- loading

    @handle_errors
    def load_file(self, path: Optional[str]) -> list[Any]:
        if not path:
            raise refuse("no_file", "file")
        display = Path(path).name
        return self._loaded(load_table(DataSource(path=path)), {"path": path, "name": display}, display)

    @handle_errors
    def load_hub(self, hub_id: str, config: str, split: str) -> list[Any]:
        source = DataSource(hub_id=(hub_id or "").strip(), hub_config=(config or "").strip() or None,
                            split=(split or "").strip() or "train")
        table = load_table(source)
        return self._loaded(table, {"hub_id": source.hub_id, "hub_config": source.hub_config, "split": source.split,
                                    "name": source.describe()}, source.describe())

    def _loaded(self, table: pd.DataFrame, source: dict[str, Any], name: str) -> list[Any]:
        names = [str(column) for column in table.columns]
        text = guess_text_column(table)
        label = next((c for c in names if c.lower() in ("label", "labels", "class", "category", "target")), NONE)
        analysed = self.analyse(table, text, label, NONE)
        _, page = self.show_page(table, 1)
        status = html.escape(say("data_loaded", name=name, rows=len(table), columns=len(names)), quote=False)
        return [table, source, gr.Dropdown(choices=names, value=text), gr.Dropdown(choices=[NONE, *names], value=label),
                status, 1, page, *analysed]

    @handle_errors
    def show_page(self, table: Optional[pd.DataFrame], page: Any) -> tuple[int, Any]:
        if table is None:
            return 1, None
        pages = max(1, -(-len(table) // PAGE_ROWS))
        page = min(max(1, int(page or 1)), pages)
        rows = preview(table.iloc[(page - 1) * PAGE_ROWS:], PAGE_ROWS)
        return page, rows

    @handle_errors
    def analyse(self, table: Optional[pd.DataFrame], text: Optional[str], label: Optional[str],
                token_model: Optional[str]) -> list[Any]:
        """Statistics for the chosen columns; clears any earlier result (it was for other settings)."""
        if table is None:
            return [None, "", None, None, "", gr.DownloadButton(visible=False)]
        counter = None
        if token_model and token_model != NONE:
            from backend.data.tokens import token_counter

            counter = token_counter(self.registry.spec(token_model))
        found = data_stats.table_stats(table, text or None, None if label in (None, NONE) else label, counter)
        lines = [say("data_rows", rows=found["rows"])]
        histogram = None
        if found["text"]:
            for unit in ("chars", "tokens"):
                if unit in found["text"]:
                    s = found["text"][unit]
                    lines.append(say(f"data_length_{unit}", min=s["min"], median=s["median"], mean=s["mean"],
                                     max=s["max"]))
            frame = pd.DataFrame([{"length": f"{b['from']}-{b['to']}", "rows": b["rows"]}
                                  for b in found["text"]["histogram"]])
            # Bins in length order (a text sort would put "10-20" before "2-4").
            histogram = gr.BarPlot(value=frame, sort=list(frame["length"])) if len(frame) else None
        labels = pd.DataFrame(found["labels"]) if found["labels"] else None
        # The columns summary gets headers in the request's language; the plots' frames keep their names.
        summary = headed(pd.DataFrame(found["columns"]))
        return [summary, html.escape("  \n".join(lines), quote=False), labels, histogram, "",
                gr.DownloadButton(visible=False)]

    # ------------------------------------------------------------------------------------------- preparing

    def recipe(self, data: dict[Any, Any]) -> Recipe:
        source = data[self.source]
        if not source:
            raise refuse("load_data", "data")
        label = data[self.label_column]
        token_model = data[self.token_model] if data[self.token_model] not in (None, NONE) else None
        steps = data[self.clean] or []

        def bound(component: Any) -> Optional[int]:
            # Only with the length step checked; an empty box arrives as 0 or None, and means "no bound".
            return int(data[component]) if "length" in steps and data[component] else None

        split = None
        if data[self.split_on]:
            from backend.data.recipe import parse_fractions

            split = parse_fractions(data[self.fractions] or "")
        return Recipe(
            source=DataSource(path=source.get("path"), hub_id=source.get("hub_id"), hub_config=source.get("hub_config"),
                              split=source.get("split") or "test"),
            text_column=data[self.text_column] or "", label_column=None if label in (None, NONE) else label,
            clean=tuple(step for step in CLEAN_STEPS if step in steps),
            min_chars=bound(self.min_chars), max_chars=bound(self.max_chars), min_tokens=bound(self.min_tokens),
            max_tokens=bound(self.max_tokens), token_model=token_model,
            near_threshold=float(data[self.near_threshold]),
            allowed_labels=tuple(x.strip() for x in (data[self.allowed_labels] or "").split(",") if x.strip()),
            split=split, augment=tuple(m for m in AUGMENT_METHODS if m in (data[self.augment] or [])),
            rate=float(data[self.rate]), copies=int(data[self.copies]),
            paraphrase_model=data[self.paraphrase_model] if "paraphrase" in (data[self.augment] or []) else None,
            paraphrase_prompt=data[self.paraphrase_prompt] or DEFAULT_PARAPHRASE_PROMPT, seed=int(data[self.seed] or 0),
        ).validated()

    @handle_errors
    def count(self, data: dict[Any, Any], request: gr.Request) -> Iterator[list[Any]]:
        """A dry run in the job process: each step's counts, nothing saved."""
        yield from self._run(data, request, dry_run=True)

    @handle_errors
    def prepare(self, data: dict[Any, Any], request: gr.Request) -> Iterator[list[Any]]:
        """Starts the job process, shows its progress, and on success the card's steps and a download."""
        yield from self._run(data, request, dry_run=False)

    def _run(self, data: dict[Any, Any], request: gr.Request, dry_run: bool) -> Iterator[list[Any]]:
        recipe = self.recipe(data)
        username = getattr(request, "username", None)
        models = self.registry.config.source_file
        job = DataJob.start(recipe, data[self.name] or "", username, data[self.fmt],
                            str(models) if models else None, display_name=data[self.source].get("name"),
                            dry_run=dry_run)
        hidden, keep = gr.DownloadButton(visible=False), gr.skip()
        status: dict[str, Any] = {}
        try:
            while True:
                status = job.poll()
                if status.get("state") == "done":
                    break
                if status.get("state") == "failed":
                    raise InvalidInputError(status.get("error", "the data job failed"), code=status.get("code"),
                                            field=status.get("field"), params=status.get("params"))
                working = say("data_working", step=status.get("message", "starting"))
                yield [html.escape(working, quote=False), hidden, keep, keep]
                time.sleep(POLL_S)
        finally:
            if status.get("state") != "done":
                job.cancel()  # Cancel, a closed tab or an error: the process stops and nothing half-written stays
        card = status["card"]
        rows = ", ".join(f"{k} {v:,}" for k, v in card["rows"].items())
        head = (say("data_dry_run", rows=rows) if dry_run else
                say("data_saved_as", name=html.escape(status["name"]), rows=rows))
        lines = [head] + [f"- {html.escape(describe_step(step), quote=False)}" for step in card["steps"]]
        if dry_run:
            yield ["\n".join(lines), hidden, keep, keep]
            return
        saved, pick = saved_rows(request)
        yield ["\n".join(lines), gr.DownloadButton(value=zip_folder(job.target), visible=True), saved, pick]


def _local_ids(registry: Registry) -> list[str]:
    """Models whose tokenizer is on this machine (the token counts of the stats)."""
    return [spec.id for spec in registry.specs() if spec.backend == "transformers"]


def _chat_ids(registry: Registry) -> list[str]:
    return [spec.id for spec in registry.specs("chat")]
