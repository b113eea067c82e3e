"""Named API endpoints of the pipeline tasks (gradio_client, HTTP): /ner, /question_answering, /fill_mask,
/summarize, /translate, /embed: each named after its task in the task table (backend/tasks/table.py). Plain JSON in
and out; an empty `model` picks the registry's first for the task.

No `from __future__ import annotations`: `gr.api` reads the endpoints' type hints at runtime.
"""

from typing import Any, Iterator, Union

import gradio as gr

from backend.core.registry import Registry
from backend.tasks import service
from backend.tasks.table import task_spec
from ui.server.api import Overrides, accepts_generation_params, build_params
from ui.common.components import GENERATION_CONCURRENCY_ID, GENERATION_CONCURRENCY_LIMIT, handle_errors, resolve_model
from ui.tasks.common import CONCURRENCY_ID, CONCURRENCY_LIMIT

TASK_ENDPOINTS: list[str] = []  # filled as the endpoints are registered: every one is a task of the table


def register_tasks_api(registry: Registry) -> None:
    """Adds the task endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""
    quick = dict(concurrency_id=CONCURRENCY_ID, concurrency_limit=CONCURRENCY_LIMIT)
    streaming = dict(concurrency_id=GENERATION_CONCURRENCY_ID, concurrency_limit=GENERATION_CONCURRENCY_LIMIT)

    @handle_errors
    def ner(text: str, model: str = "", aggregation: str = "simple") -> list[dict]:
        """Entities in `text`: [{entity, score, word, start, end}] (character offsets into `text`)."""
        model = resolve_model(registry, model, "ner")
        return [e.to_dict() for e in service.recognise_entities(registry, model, text, aggregation=aggregation)[0]]

    @handle_errors
    def question_answering(question: str, context: str, model: str = "", top_k: int = 1,
                           stride: int = 128) -> list[dict]:
        """The best `top_k` answers to `question` in `context`: [{answer, score, start, end}], best first."""
        model = resolve_model(registry, model, "question_answering")
        answers = service.answer_question(registry, model, question, context, top_k=top_k, stride=stride)
        return [a.to_dict() for a in answers]

    @handle_errors
    def fill_mask(text: str, model: str = "", top_k: int = 5) -> list[list[dict]]:
        """For each mask token in `text` (left to right), the top-k [{token, score, sequence}]."""
        model = resolve_model(registry, model, "fill_mask")
        per_mask = service.fill_masks(registry, model, text, top_k=top_k)[0]
        return [[c.to_dict() for c in candidates] for candidates in per_mask]

    def stream(task: str, text: str, model: str, source: str, target: str, min_new_tokens: int,
               overrides: Overrides) -> Iterator[dict]:
        model = resolve_model(registry, model, task)  # type: ignore[arg-type]
        events = service.stream_text_task(registry, model, task, text, build_params(registry, model, overrides),
                                          source_language=source, target_language=target,
                                          min_new_tokens=min_new_tokens)
        pieces: list[str] = []
        try:
            for event in events:
                stats = getattr(event, "stats", None)
                if stats is None:
                    pieces.append(event.text)
                    yield {"text": "".join(pieces), "stats": None}
                else:
                    yield {"text": event.text, "stats": stats.to_dict()}
        finally:
            events.close()  # type: ignore[attr-defined]  # a generator: a cancelled job stops the model

    @accepts_generation_params
    @handle_errors
    def summarize(text: str, model: str = "", min_new_tokens: int = 0, *, overrides: Overrides) -> Iterator[dict]:
        """Streams {text, stats}: the growing summary, then the whole one with its statistics."""
        yield from stream("summarize", text, model, "", "", min_new_tokens, overrides)

    @accepts_generation_params
    @handle_errors
    def translate(text: str, model: str = "", source_language: str = "", target_language: str = "",
                  min_new_tokens: int = 0, *, overrides: Overrides) -> Iterator[dict]:
        """Streams {text, stats} of the translation from `source_language` into `target_language`."""
        yield from stream("translate", text, model, source_language, target_language, min_new_tokens, overrides)

    @handle_errors
    def embed(texts: Union[str, list[str]], model: str = "") -> dict[str, Any]:
        """{embeddings: one vector per text, dimensions, tokens, pooling, normalized}."""
        model = resolve_model(registry, model, "embed")
        result = service.embed_texts(registry, model, texts)
        return {"embeddings": result.vectors, "dimensions": result.dimensions, "tokens": result.tokens,
                "pooling": result.pooling, "normalized": result.normalized}

    for function, options in ((ner, quick), (question_answering, quick), (fill_mask, quick), (summarize, streaming),
                              (translate, streaming), (embed, quick)):
        name = task_spec(function.__name__).name  # an endpoint is named after its task, never anything else
        gr.api(function, api_name=name, **options)
        if name not in TASK_ENDPOINTS:
            TASK_ENDPOINTS.append(name)
