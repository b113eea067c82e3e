"""Evaluation inference for the pipeline tasks: NER tags per word, extractive answers, summaries, translations.

Each task's model runs over the examples in batches under one registry lease; between batches the run reports
progress and checks the cancel flag. Predictions come back as text in the shape the task's metric module reads:
NER tags joined by spaces (one per input token), the best answer span, the generated text. No torch import here:
the task engine does that.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from backend.evaluation.sequences import parse_list
from backend.evaluation.types import EvalConfig
from backend.types import GenerationParams, InvalidInputError, Task

if TYPE_CHECKING:
    from backend.evaluation.data import Examples
    from backend.registry import Registry

# Evaluation task -> the registry task its models do.
PIPELINE_EVAL_TASKS: dict[str, Task]
PIPELINE_EVAL_TASKS = {"ner": "ner", "question_answering": "question_answering", "summarization": "summarize",
                       "translation": "translate"}


def words_to_text(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The words joined by spaces, and each word's character span in that text."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def entities_to_tags(spans: list[tuple[int, int]], entities: list[Any]) -> list[str]:
    """BIO tags per word from character-offset entities: a word overlapping an entity takes its type, B- for the
    entity's first word and I- for the rest; other words are O."""
    tags = ["O"] * len(spans)
    for entity in entities:
        inside = [i for i, (start, end) in enumerate(spans) if start < entity.end and entity.start < end]
        for order, index in enumerate(inside):
            if tags[index] == "O":
                tags[index] = f"{'B' if order == 0 else 'I'}-{entity.entity}"
    return tags


def run_pipeline_task(registry: Registry, config: EvalConfig, examples: Examples, model_id: str,
                      on_batch: Callable[[int], None], cancel: threading.Event
                      ) -> tuple[list[bool], dict[str, list[Any]], list[Any], list[str]]:
    """(done per example, the metric inputs, the predictions, notices) for `model_id` on `examples`."""
    task = config.task
    count = len(examples)
    predictions: list[Any] = [None] * count
    references = list(examples.references)
    if task == "ner":
        references = [" ".join(parse_list(reference)) for reference in references]
    notices: list[str] = []
    params = GenerationParams(max_new_tokens=config.max_new_tokens, temperature=0.0)
    if task == "translation":
        from backend.tasks.catalog import pair_error
        from backend.tasks.service import language_pairs

        problem = pair_error(language_pairs(registry, model_id), config.source_language, config.target_language)
        if problem:
            raise InvalidInputError(problem)
    with registry.lease(model_id, PIPELINE_EVAL_TASKS[task]) as engine:
        for start in range(0, count, config.batch_size):
            if cancel.is_set():
                break
            batch = list(range(start, min(count, start + config.batch_size)))
            inputs = [examples.inputs[i] for i in batch]
            if task == "ner":
                words = [parse_list(text) for text in inputs]
                joined = [words_to_text(w) for w in words]
                found = engine.ner([text for text, _ in joined], aggregation="simple", batch_size=len(batch))  # type: ignore[attr-defined]  # a task engine
                outputs = [" ".join(entities_to_tags(spans, entities)) for (_, spans), entities in zip(joined, found)]
            elif task == "question_answering":
                assert examples.contexts is not None  # QA examples carry their context column
                answers = engine.answer(inputs, [examples.contexts[i] for i in batch], top_k=1)  # type: ignore[attr-defined]  # a task engine
                outputs = [a[0].answer if a else "" for a in answers]
            else:
                outputs = engine.generate_batch(PIPELINE_EVAL_TASKS[task], inputs, params, config.source_language,  # type: ignore[attr-defined]  # a task engine
                                                config.target_language)
            for index, output in zip(batch, outputs):
                predictions[index] = output
            on_batch(len(batch))
    done = [prediction is not None for prediction in predictions]
    if task == "ner":
        mismatched = sum(1 for i in range(count)
                         if done[i] and len(predictions[i].split()) != len(references[i].split()))
        if mismatched:
            notices.append(f"{mismatched:,} example(s) have a different number of tokens and tags")
    return done, {"predictions": [p or "" for p in predictions], "references": references}, predictions, notices
