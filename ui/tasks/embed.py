"""Embeddings view: a similarity heat map of several sentences, semantic search over an uploaded file, and a 2-D
projection of a file's texts coloured by a label column."""

from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import pandas as pd

from backend.data import files as datafiles
from backend.core.error_codes import refuse
from backend.core.registry import Registry
from backend.tasks import service
from backend.core.types import InvalidInputError
from ui.common.components import handle_errors, model_picker, ui_event
from ui.i18n.core import headed, say, t
from ui.tasks.common import CONCURRENCY_ID, CONCURRENCY_LIMIT, escape, file_section, inspect_upload, require_model

MAX_SENTENCES = 20  # rows and columns of the heat map
MAX_CORPUS_ROWS = 5_000  # rows embedded for search and projection (the whole-file run has no such cap)
EXAMPLE = "A man is playing a guitar.\nSomeone is playing an instrument.\nThe stock market fell today."


def heat_map(sentences: list[str], matrix: np.ndarray) -> str:
    """An HTML table of cosine similarities, each cell shaded by its value; sentences are escaped."""
    def cell(value: float) -> str:
        strength = max(0.0, min(1.0, (value + 1) / 2))  # cosine -1..1 → 0..1
        return (f"<td style='background: rgba(79, 70, 229, {strength:.2f}); color: "
                f"{'white' if strength > 0.6 else 'inherit'}'>{value:.2f}</td>")

    labels = [escape(s if len(s) <= 40 else s[:39] + "…") for s in sentences]
    head = "".join(f"<th title='{escape(s)}'>{i + 1}</th>" for i, s in enumerate(sentences))
    rows = "".join(f"<tr><th style='text-align:left'>{i + 1}. {label}</th>{''.join(cell(v) for v in row)}</tr>"
                   for i, (label, row) in enumerate(zip(labels, matrix.tolist())))
    return (f"<table class='probs' id='embed-heatmap-table'><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _corpus(path: Optional[str], column: Optional[str]) -> tuple[pd.DataFrame, list[int], list[str]]:
    if not path:
        raise refuse("upload_file", "file")
    table = datafiles.read_table(path, display_name=Path(path).name)
    texts = datafiles.column_texts(table, column)
    rows = [i for i, text in enumerate(texts) if text.strip()][:MAX_CORPUS_ROWS]
    if not rows:
        raise refuse("empty_column", "column", name=column)
    return table, rows, [texts[i] for i in rows]


def build_embed_view(registry: Registry) -> None:
    model = model_picker(registry, "embed", "embed-model")
    with gr.Tabs():
        with gr.Tab(t("embed_similarity"), elem_id="embed-similarity-tab"):
            sentences = gr.Textbox(label=t("embed_sentences", count=MAX_SENTENCES), lines=5, value=EXAMPLE,
                                   elem_id="embed-sentences")
            compare = gr.Button(t("embed_run"), variant="primary", elem_id="embed-run")
            matrix = gr.HTML(elem_id="embed-heatmap")
            note = gr.Markdown(elem_id="embed-note")
        with gr.Tab(t("embed_corpus"), elem_id="embed-corpus-tab"):
            upload = gr.File(label=t("embed_file"), file_types=list(datafiles.SUPPORTED_EXTENSIONS),
                             elem_id="embed-corpus-file")
            info = gr.Markdown(elem_id="embed-corpus-info")
            with gr.Row():
                column = gr.Dropdown(label=t("text_column"), choices=[], interactive=True,
                                     elem_id="embed-corpus-column")
                label = gr.Dropdown(label=t("embed_label_column"), choices=[], interactive=True,
                                    elem_id="embed-label-column")
            with gr.Row():
                query = gr.Textbox(label=t("embed_query"), elem_id="embed-query", scale=3)
                top_k = gr.Slider(1, 50, value=5, step=1, label=t("top_k"), elem_id="embed-top-k", scale=1)
            with gr.Row():
                search = gr.Button(t("embed_search"), variant="primary", elem_id="embed-search")
                project = gr.Button(t("embed_project"), elem_id="embed-project")
            hits = gr.Dataframe(label=t("embed_hits"), interactive=False, wrap=True, elem_id="embed-hits")
            plot = gr.ScatterPlot(None, x="x", y="y", color="label", tooltip=["text", "label"], height=380,
                                  label=t("embed_projection"), elem_id="embed-projection")

    @handle_errors
    def similarity(data: dict) -> tuple:
        lines = [line.strip() for line in (data[sentences] or "").splitlines() if line.strip()]
        if len(lines) < 2:
            raise refuse("two_sentences", "sentences")
        if len(lines) > MAX_SENTENCES:
            raise InvalidInputError(f"sentences: at most {MAX_SENTENCES}, got {len(lines)}")
        result = service.embed_texts(registry, require_model(data[model], "embed"), lines)
        info_line = say("embed_info", dimensions=result.dimensions, pooling=result.pooling,
                        normalised=say("embed_normalised") if result.normalized else "", tokens=sum(result.tokens))
        return heat_map(lines, service.cosine_matrix(result.vectors)), escape(info_line)

    sentences.change(lambda: ("", ""), outputs=[matrix, note], **ui_event(note, queue=False))
    compare.click(similarity, inputs={model, sentences}, outputs=[matrix, note], concurrency_id=CONCURRENCY_ID,
                  concurrency_limit=CONCURRENCY_LIMIT, **ui_event(note, progress=True))
    upload.change(lambda path: inspect_upload(path, extra=1), inputs=upload, outputs=[info, column, label],
                  **ui_event(info, progress=True))

    @handle_errors
    def run_search(data: dict) -> pd.DataFrame:
        table, rows, texts = _corpus(data[upload], data[column])
        found = service.search(registry, require_model(data[model], "embed"), data[query], texts,
                               top_k=int(data[top_k]))
        picked = table.iloc[[rows[i] for i, _ in found]].reset_index(drop=True)
        # The app's two columns first; a file with its own "row" or "score" column keeps it, suffixed.
        picked = picked.rename(columns={name: f"{name} (file)" for name in ("row", "score") if name in picked})
        picked.insert(0, "score", [round(score, 4) for _, score in found])
        picked.insert(0, "row", [rows[i] for i, _ in found])
        return headed(picked, names=("row", "score"))  # the app's two columns; the file's stay as they are

    @handle_errors
    def run_projection(data: dict) -> pd.DataFrame:
        table, rows, texts = _corpus(data[upload], data[column])
        vectors = service.embed_texts(registry, require_model(data[model], "embed"), texts).vectors
        points = service.project_2d(vectors)
        labels = [str(table[data[label]].iloc[i]) for i in rows] if data[label] else ["(none)"] * len(rows)
        return pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "label": labels,
                             "text": [t if len(t) <= 80 else t[:79] + "…" for t in texts]})

    corpus_inputs: set[Any] = {model, upload, column, label, query, top_k}
    search.click(run_search, inputs=corpus_inputs, outputs=hits, concurrency_id=CONCURRENCY_ID,
                 concurrency_limit=CONCURRENCY_LIMIT, **ui_event(hits, progress=True))
    query.submit(run_search, inputs=corpus_inputs, outputs=hits, concurrency_id=CONCURRENCY_ID,
                 concurrency_limit=CONCURRENCY_LIMIT, **ui_event(hits, progress=True))
    project.click(run_projection, inputs=corpus_inputs, outputs=plot, concurrency_id=CONCURRENCY_ID,
                  concurrency_limit=CONCURRENCY_LIMIT, **ui_event(plot, progress=True))
    gr.on([upload.change, column.input], lambda: (None, None), outputs=[hits, plot], **ui_event(hits, queue=False))
    file_section(registry, "embed", "embed", model, set(), lambda data: {})
