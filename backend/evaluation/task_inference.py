"""Evaluation inference for the pipeline tasks: NER tags per word, extractive answers, summaries, translations.

Each task's spec (backend/tasks/table.py) carries its evaluation adapter (`spec.evaluation`): which evaluation
task it serves, how a batch of examples becomes its inputs, how a result becomes the text the metric module reads
(NER tags joined by spaces, one per input token; the best answer span; the generated text), and how references
are read. The model runs over
the examples in batches under one registry lease; between batches the run reports progress and checks the cancel
flag. No torch import here: the task engine does that.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Optional, Sequence

from backend.evaluation.types import EvalConfig
from backend.tasks.ner import entities_to_tags, words_to_text
from backend.tasks.table import evaluation_spec, task_specs

if TYPE_CHECKING:
    from backend.evaluation.data import Examples
    from backend.core.registry import Registry

__all__ = ["PIPELINE_EVAL_TASKS", "run_pipeline_task", "entities_to_tags", "words_to_text"]


class _EvalTasks(Mapping[str, str]):
    """Evaluation task -> the registry task its models do, read live from the task table."""

    def _pairs(self) -> dict[str, str]:
        return {spec.evaluation.task: spec.name for spec in task_specs() if spec.evaluation}

    def __getitem__(self, key: str) -> str:
        return self._pairs()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self._pairs())


PIPELINE_EVAL_TASKS: Mapping[str, str] = _EvalTasks()


def run_pipeline_task(registry: Registry, config: EvalConfig, examples: Examples, model_id: str,
                      on_batch: Callable[[int], None], cancel: threading.Event
                      ) -> tuple[list[bool], dict[str, Sequence[object]], list[Optional[str]], list[str]]:
    """(done per example, the metric inputs, the predictions, notices) for `model_id` on `examples`."""
    from backend.tasks.base import TaskRequest
    from backend.tasks.service import run_request

    spec = evaluation_spec(config.task)
    if spec is None or spec.evaluation is None:
        raise ValueError(f"no pipeline task serves the evaluation task {config.task!r}")
    adapter = spec.evaluation
    count = len(examples)
    predictions: list[Optional[str]] = [None] * count
    references = [adapter.reference(reference) for reference in examples.references]
    options = adapter.options(config, registry.spec(model_id, spec.name))  # refuses before loading
    with registry.lease(model_id, spec.name) as engine:
        for start in range(0, count, config.batch_size):
            if cancel.is_set():
                break
            batch = list(range(start, min(count, start + config.batch_size)))
            inputs = [examples.inputs[i] for i in batch]
            contexts = [examples.contexts[i] for i in batch] if examples.contexts is not None else None
            request = TaskRequest(adapter.inputs(inputs, contexts), options, len(batch))
            results = run_request(engine, model_id, spec.name, request)
            for index, text, result in zip(batch, inputs, results):
                predictions[index] = adapter.prediction(text, result)
            on_batch(len(batch))
    done = [prediction is not None for prediction in predictions]
    notices = adapter.notices(predictions, references)
    return done, {"predictions": [p or "" for p in predictions], "references": references}, predictions, notices
