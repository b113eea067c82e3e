"""The task contract, as one test class every pipeline task runs (tests/test_task_contract.py for the tasks of
backend/tasks/, tests/test_task_recipe.py for a toy task added through the recipe), as tests/engine_contract.py is
for engines.

A subclass names its task and a tiny model that does it, gives inputs that work, and may override the hooks at
the bottom (what a good result looks like, an evaluation case). The contract checks the task end to end: the
table lists it and its model passes config validation; its handler's preprocess → forward → postprocess on the
tiny model; the service through the engine; bad input refused naming the field; whole-file rows round-trip to the
same results; the evaluation adapter gives the metric its predictions.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

import pandas as pd
import pytest

from backend.core.config import read_checkpoint_config
from backend.core.registry import Registry
from backend.tasks import service
from backend.tasks.base import TaskSpec
from backend.tasks.table import PIPELINE_TASKS, task_spec, task_specs
from backend.core.types import InvalidInputError, WorkbenchError


@dataclass(frozen=True)
class EvalCase:
    """Examples for the evaluation adapter: inputs (and contexts), references, and the run's language pair."""

    inputs: list[str]
    references: list[str]
    contexts: Optional[list[str]] = None
    source_language: str = ""
    target_language: str = ""


def _same(left: Any, right: Any) -> bool:
    """Equal, where an empty cell (None or NaN, as pandas keeps it) equals None."""
    def empty(value: Any) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    return (empty(left) and empty(right)) or left == right


class TaskContract:
    """Behaviour every pipeline task owes its callers."""

    task: ClassVar[str]  # its name in the task table
    model_id: ClassVar[str]  # a registry entry of `task_registry` that does it
    texts: ClassVar[tuple[str, ...]]  # inputs it can take (at least two, of different lengths)
    questions: ClassVar[Optional[tuple[str, ...]]] = None  # one per text, for tasks that ask questions
    options: ClassVar[dict[str, Any]] = {}  # the service's options for a deterministic run
    bad_options: ClassVar[tuple[tuple[dict[str, Any], str], ...]] = ()  # options refused, and the field named
    file_options: ClassVar[dict[str, Any]] = {}  # a whole-file run's `options`
    file_params: ClassVar[Any] = None  # a whole-file run's generation parameters

    # ------------------------------------------------------------------------------------------ hooks

    @pytest.fixture
    def task_registry(self, shared_registry: Registry) -> Registry:
        """The registry holding `model_id`."""
        return shared_registry

    def check_result(self, text: str, question: Optional[str], result: Any) -> None:
        """Raises AssertionError when `result` is not a good result for `text`."""

    def eval_case(self) -> Optional[EvalCase]:
        """Examples for the evaluation adapter; None for a task that serves no evaluation task."""
        return None

    def check_prediction(self, example_input: str, context: Optional[str], prediction: str) -> None:
        """Raises AssertionError when `prediction` is not what the evaluation task's metric can read."""

    # ------------------------------------------------------------------------------------------ helpers

    @property
    def spec(self) -> TaskSpec[Any, Any]:
        return task_spec(self.task)

    def _handler(self, registry: Registry) -> Any:
        """The task's handler on the tiny model, loaded by the task's model class (not through the registry)."""
        from transformers import AutoTokenizer

        entry = registry.spec(self.model_id)
        architectures = read_checkpoint_config(entry).get("architectures") or []
        model = self.spec.model_class(architectures).from_pretrained(entry.source).eval()
        return self.spec.handler_for(model, AutoTokenizer.from_pretrained(entry.source), folder=Path(entry.source))

    # ------------------------------------------------------------------------------------------ the table

    def test_the_table_lists_it_and_its_model_passed_validation(self, task_registry: Registry) -> None:
        spec = self.spec
        assert spec.name == self.task and self.task in PIPELINE_TASKS
        assert [s.name for s in task_specs()].count(self.task) == 1
        assert spec.columns and len(set(spec.columns)) == len(spec.columns) and spec.file_stem
        entry = task_registry.spec(self.model_id, self.task)  # models.yaml accepted the entry for this task
        architectures = read_checkpoint_config(entry).get("architectures") or []
        assert architectures and all(spec.serves(arch) for arch in architectures)
        assert not spec.serves("NoSuchArchitectureAtAll"), "a spec must say which checkpoints it refuses"

    # ------------------------------------------------------------------------------------------ the handler

    def test_preprocess_forward_postprocess_on_its_tiny_model(self, task_registry: Registry) -> None:
        handler = self._handler(task_registry)
        request = self.spec.local_request(list(self.texts), list(self.questions) if self.questions else None,
                                          **self.options)
        model_inputs = handler.preprocess(request)
        model_outputs = handler.forward(model_inputs)
        results = handler.postprocess(model_outputs, request)
        assert len(results) == len(self.texts)
        for index, (text, result) in enumerate(zip(self.texts, results)):
            self.check_result(text, self.questions[index] if self.questions else None, result)
        # The whole call is the three steps, batch by batch: one text at a time gives the same results.
        one_by_one = handler(self.spec.local_request(list(self.texts), list(self.questions) if self.questions
                                                     else None, batch_size=1, **self.options))
        assert self._comparable(one_by_one) == self._comparable(results)

    def _comparable(self, results: list[Any]) -> list[Any]:
        """Results as file rows, scores rounded (a padded batch and a lone text differ in the last bits)."""
        def rounded(value: Any) -> Any:
            if isinstance(value, float):
                return round(value, 4)
            if isinstance(value, str) and value[:1] in "[{":
                return json.dumps(json.loads(value, parse_float=lambda x: round(float(x), 4)))
            return value

        return [tuple(rounded(v) for v in self.spec.file_row(result)) for result in results]

    # ------------------------------------------------------------------------------------------ the service

    def test_the_service_runs_it_through_the_engine(self, task_registry: Registry) -> None:
        from backend.engines.base import Engine, LoadedModel, RunsTasks

        results = service.run_task(task_registry, self.model_id, self.task, list(self.texts),
                                   list(self.questions) if self.questions else None, **self.options)
        assert len(results) == len(self.texts)
        for index, (text, result) in enumerate(zip(self.texts, results)):
            self.check_result(text, self.questions[index] if self.questions else None, result)
        with task_registry.lease(self.model_id, self.task) as engine:  # type: ignore[arg-type]
            # It declares what it does, and only that: no chat / generate / classify stubs.
            assert isinstance(engine, LoadedModel) and isinstance(engine, RunsTasks)
            assert not isinstance(engine, Engine)

    def test_bad_input_is_refused_naming_the_field(self, task_registry: Registry) -> None:
        field = self.spec.text_field
        with pytest.raises(InvalidInputError) as caught:
            service.run_task(task_registry, self.model_id, self.task, ["   "] * len(self.texts),
                             list(self.questions) if self.questions else None, **self.options)
        assert str(caught.value).startswith(field), caught.value
        for options, named in self.bad_options:
            with pytest.raises(InvalidInputError) as caught:
                service.run_task(task_registry, self.model_id, self.task, list(self.texts),
                                 list(self.questions) if self.questions else None, **{**self.options, **options})
            assert str(caught.value).startswith(named) and caught.value.field in (None, named), caught.value
        with pytest.raises(InvalidInputError, match="no_such_option: not an option of") as caught:
            service.run_task(task_registry, self.model_id, self.task, list(self.texts),
                             list(self.questions) if self.questions else None, **self.options, no_such_option=1)
        assert caught.value.field == "no_such_option"
        with pytest.raises(WorkbenchError, match="task: one of"):
            service.run_task(task_registry, self.model_id, "no_such_task", list(self.texts))

    # ------------------------------------------------------------------------------------------ file runs

    def test_file_rows_round_trip(self, task_registry: Registry) -> None:
        from backend.tasks.files import run_table

        texts = [self.texts[0], "", *self.texts[1:]]  # a blank row stays, left empty
        columns: dict[str, Any] = {"id": list(range(len(texts))), "text": texts}
        if self.questions:
            columns["question"] = [self.questions[0], "", *self.questions[1:]]
        table = pd.DataFrame(columns)
        done = run_table(task_registry, self.model_id, self.task, table, "text",
                         question_column="question" if self.questions else None, options=dict(self.file_options),
                         params=self.file_params, batch_size=1)
        assert list(done.table.columns) == [*columns, *self.spec.columns]
        assert done.completed == done.total == len(self.texts) and done.blank_rows == 1 and not done.cancelled
        assert done.table["id"].tolist() == columns["id"]  # every row, in the file's order
        expected = service.run_task(task_registry, self.model_id, self.task, list(self.texts),
                                    list(self.questions) if self.questions else None, batch_size=1, **self.options)
        rows = [0, *range(2, len(texts))]
        for row, result in zip(rows, expected):
            have = tuple(done.table[name][row] for name in self.spec.columns)
            assert all(_same(a, b) for a, b in zip(have, self.spec.file_row(result))), (row, have)
        assert all(_same(done.table[name][1], None) for name in self.spec.columns)

    # ------------------------------------------------------------------------------------------ evaluation

    def test_the_evaluation_adapter_gives_the_metric_its_predictions(self, task_registry: Registry) -> None:
        from backend.evaluation.data import ColumnMapping, DataSource, Examples
        from backend.evaluation.task_inference import PIPELINE_EVAL_TASKS, run_pipeline_task
        from backend.evaluation.types import EvalConfig

        case = self.eval_case()
        adapter = self.spec.evaluation
        if adapter is None:
            assert case is None and self.task not in PIPELINE_EVAL_TASKS.values()
            return
        assert case is not None, "a task that serves an evaluation task needs an eval_case"
        assert PIPELINE_EVAL_TASKS[adapter.task] == self.task
        config = EvalConfig(task=adapter.task, data=DataSource(path="contract.jsonl"),  # type: ignore[arg-type]
                            columns=ColumnMapping(input="input", reference="reference"), models=(self.model_id,),
                            batch_size=2, max_new_tokens=4, source_language=case.source_language,
                            target_language=case.target_language)
        examples = Examples(rows=list(range(len(case.inputs))), inputs=case.inputs, references=case.references,
                            contexts=case.contexts)
        batches: list[int] = []
        done, metric_inputs, predictions, notices = run_pipeline_task(task_registry, config, examples, self.model_id,
                                                                      batches.append, threading.Event())
        assert all(done) and batches == [2] * (len(case.inputs) // 2) + ([len(case.inputs) % 2] if
                                                                         len(case.inputs) % 2 else [])
        assert metric_inputs["predictions"] == predictions and len(predictions) == len(case.inputs)
        assert metric_inputs["references"] == [adapter.reference(r) for r in case.references]
        for index, prediction in enumerate(predictions):
            assert isinstance(prediction, str)
            self.check_prediction(case.inputs[index], case.contexts[index] if case.contexts else None, prediction)
