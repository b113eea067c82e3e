"""Extractive question answering with a model's QA head (transformers 5 removed the question-answering pipeline).

preprocess: the tokenizer splits a long context into overlapping windows (`stride` tokens shared between
neighbours) with character offsets, the question in every window. forward: one batched pass gives start / end
logits. postprocess: as the removed pipeline did, start and end probabilities (softmax over the context tokens of
each window) multiply into span scores; the best `top_k` distinct spans over all windows win.

The texts of a request are the contexts; each has its question. Evaluation: the best answer's text, scored by
SQuAD's exact match and F1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from backend.core.error_codes import refuse
from backend.guard.text_checks import check_text
from backend.tasks.base import (
    MAX_TOP_K,
    Cell,
    EvalAdapter,
    LoadContext,
    ModelClass,
    TaskHandler,
    TaskInputs,
    TaskRequest,
    TaskSpec,
    whole_number,
)
from backend.tasks.types import Answer
from backend.core.types import GenerationParams, InvalidInputError

if TYPE_CHECKING:  # model_spec validates entries through the task table, which imports this module
    from transformers import BatchEncoding

    from backend.core.model_spec import ModelSpec
    from backend.evaluation.types import EvalConfig

# Windows of every context: the encoding, and which windows belong to each context (by index).
QaBatch = tuple["BatchEncoding", list[list[int]]]
# ... and the start / end logits of every window (windows × tokens).
QaOutputs = tuple["BatchEncoding", list[list[int]], np.ndarray, np.ndarray]


@dataclass(frozen=True)
class QaOptions:
    top_k: int = 1
    stride: int = 128  # tokens shared by neighbouring windows of a long context
    max_answer_tokens: int = 30


class QaHandler(TaskHandler[QaOptions, list[Answer], QaBatch, QaOutputs]):
    def __init__(self, context: LoadContext) -> None:
        if not getattr(context.tokenizer, "is_fast", False):
            from backend.core.types import ModelLoadError

            raise ModelLoadError(f"model '{context.model_id}': question_answering needs a fast tokenizer "
                                 "(character offsets)")
        super().__init__(context)

    def preprocess(self, request: TaskRequest[QaOptions]) -> QaBatch:
        questions, contexts = list(request.inputs.questions or ()), list(request.inputs.texts)
        question_room = max(len(ids) for ids in self.tokenizer(questions)["input_ids"])
        if question_room + 8 >= self.max_length:
            raise InvalidInputError(f"question: is {question_room} tokens; it must leave room for the context "
                                    f"within the model's {self.max_length} tokens", field="question")
        # The stride must leave each window new context to cover.
        stride = max(0, min(request.options.stride, (self.max_length - question_room) // 2))
        encoded = self.tokenizer(questions, contexts, truncation="only_second", max_length=self.max_length,
                                 stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                                 padding=True, return_tensors="pt")
        windows_of: list[list[int]] = [[] for _ in questions]
        for window, item in enumerate(encoded["overflow_to_sample_mapping"].tolist()):
            windows_of[item].append(window)
        return encoded, windows_of

    def forward(self, model_inputs: QaBatch) -> QaOutputs:
        encoded, windows_of = model_inputs
        output = self.run_forward(self.model_inputs(encoded))
        return (encoded, windows_of, output["start_logits"].float().cpu().numpy(),
                output["end_logits"].float().cpu().numpy())

    def postprocess(self, model_outputs: QaOutputs, request: TaskRequest[QaOptions]) -> list[list[Answer]]:
        encoded, windows_of, start_logits, end_logits = model_outputs
        return [self._answers(request.inputs.texts[item], encoded, windows, start_logits, end_logits,
                              request.options) for item, windows in enumerate(windows_of)]

    @staticmethod
    def _answers(context: str, encoded: BatchEncoding, windows: list[int], start_logits: np.ndarray,
                 end_logits: np.ndarray, options: QaOptions) -> list[Answer]:
        best: dict[tuple[int, int], float] = {}
        for window in windows:
            # Only the context's tokens can start or end an answer: score that slice (not the padded window).
            positions = [i for i, sid in enumerate(encoded.sequence_ids(window)) if sid == 1]
            if not positions:
                continue
            first_pos, last_pos = positions[0], positions[-1] + 1
            start = _softmax(start_logits[window][first_pos:last_pos])
            end = _softmax(end_logits[window][first_pos:last_pos])
            scores = np.triu(np.outer(start, end))  # end >= start
            scores = np.tril(scores, options.max_answer_tokens - 1)  # at most max_answer_tokens long
            offsets = encoded["offset_mapping"][window].tolist()
            flat = scores.ravel()
            wanted = min(flat.size, options.top_k * 4 + 4)
            candidates = np.argpartition(-flat, wanted - 1)[:wanted]
            for index in candidates[np.argsort(-flat[candidates])]:
                begin, finish = divmod(int(index), scores.shape[1])
                if flat[index] <= 0:
                    break
                span = (int(offsets[first_pos + begin][0]), int(offsets[first_pos + finish][1]))
                best[span] = max(best.get(span, 0.0), float(flat[index]))
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:options.top_k]
        return [Answer(answer=context[s:e], score=score, start=s, end=e) for (s, e), score in ranked]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - np.max(logits))
    return shifted / shifted.sum()


class QaEvaluation(EvalAdapter[QaOptions, list[Answer]]):
    """Questions with their contexts: the best answer's text, for SQuAD's exact match and F1."""

    task = "question_answering"

    def options(self, config: EvalConfig, model: ModelSpec) -> QaOptions:
        return QaOptions(top_k=1)

    def inputs(self, inputs: Sequence[str], contexts: Optional[Sequence[str]]) -> TaskInputs:
        return TaskInputs(tuple(contexts or ()), tuple(inputs))

    def prediction(self, example_input: str, result: list[Answer]) -> str:
        return result[0].answer if result else ""


class QaSpec(TaskSpec[QaOptions, list[Answer]]):
    name = "question_answering"
    title_key = "tasks_qa"
    architectures = ("ForQuestionAnswering",)
    onnx = True
    text_field = "context"
    asks_questions = True
    columns = ("answer", "answer_score", "answer_start", "answer_end")
    file_stem = "answers"
    evaluation = QaEvaluation()

    def model_class(self, architectures: Sequence[str]) -> ModelClass:
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    def options(self, top_k: int = 1, stride: int = 128, max_answer_tokens: int = 30) -> QaOptions:
        return QaOptions(whole_number("top_k", top_k, 1, MAX_TOP_K), whole_number("stride", stride, 0, 512),
                         whole_number("max_answer_tokens", max_answer_tokens, 1, 512))

    def inputs(self, texts: object, questions: object = None) -> TaskInputs:
        contexts = [texts] if isinstance(texts, str) else _items(texts)
        asked = [questions] if isinstance(questions, str) else _items(questions or ())
        if len(asked) != len(contexts):
            raise InvalidInputError("question: give one question per context", field="question")
        checked: list[tuple[str, str]] = []
        for index, (question, context) in enumerate(zip(asked, contexts)):
            where = "" if len(asked) == 1 else f"[{index}]"
            if not isinstance(context, str) or not context.strip():
                raise refuse("no_context", "context", shown=f"context{where}")
            check_text(f"question{where}", question)
            check_text(f"context{where}", context)
            assert isinstance(question, str)  # check_text refused anything else
            checked.append((question, context))
        return TaskInputs(tuple(context for _, context in checked), tuple(question for question, _ in checked))

    def handler(self, context: LoadContext) -> QaHandler:
        return QaHandler(context)

    def file_options(self, model: ModelSpec, raw: Mapping[str, object],
                     params: Optional[GenerationParams] = None) -> QaOptions:
        return self.checked_options({**raw, "top_k": 1})  # a file row keeps the best answer

    def file_row(self, result: list[Answer]) -> tuple[Cell, ...]:
        best = result[0] if result else None
        return (best.answer, best.score, best.start, best.end) if best else ("", None, None, None)


def _items(value: object) -> list[object]:
    """A client's list of texts, unchecked (the caller checks each: something else is one item it refuses)."""
    return list(value) if isinstance(value, Iterable) else [value]


SPEC = QaSpec()
