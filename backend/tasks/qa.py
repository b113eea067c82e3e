"""Extractive question answering with a model's QA head (transformers 5 removed the question-answering pipeline).

preprocess: the tokenizer splits a long context into overlapping windows (`stride` tokens shared between
neighbours) with character offsets, the question in every window. forward: one batched pass gives start / end
logits. postprocess: as the removed pipeline did, start and end probabilities (softmax over the context tokens of
each window) multiply into span scores; the best `top_k` distinct spans over all windows win.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering

from backend.tasks.types import Answer
from backend.types import InvalidInputError

MODEL_CLASS = AutoModelForQuestionAnswering


class QuestionAnsweringTask:
    def __init__(self, model: Any, tokenizer: Any, max_length: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidInputError("question_answering needs a fast tokenizer (character offsets)")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        # The model's own forward; `runtime: onnx` replaces it (backend/engines/onnx_runtime.py).
        self.forward_fn = model

    def __call__(self, questions: Sequence[str], contexts: Sequence[str], top_k: int = 1, stride: int = 128,
                 max_answer_tokens: int = 30) -> list[list[Answer]]:
        encoded, windows_of = self.preprocess(questions, contexts, stride)
        start_logits, end_logits = self.forward(encoded)
        return [self.postprocess(contexts[item], encoded, windows, start_logits, end_logits, top_k, max_answer_tokens)
                for item, windows in enumerate(windows_of)]

    def preprocess(self, questions: Sequence[str], contexts: Sequence[str], stride: int) -> tuple[Any, list[list[int]]]:
        question_room = max(len(ids) for ids in self.tokenizer(list(questions))["input_ids"])
        if question_room + 8 >= self.max_length:
            raise InvalidInputError(f"question: is {question_room} tokens; it must leave room for the context "
                                    f"within the model's {self.max_length} tokens")
        # The stride must leave each window new context to cover.
        stride = max(0, min(stride, (self.max_length - question_room) // 2))
        encoded = self.tokenizer(list(questions), list(contexts), truncation="only_second", max_length=self.max_length,
                                 stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                                 padding=True, return_tensors="pt")
        windows_of: list[list[int]] = [[] for _ in questions]
        for window, item in enumerate(encoded["overflow_to_sample_mapping"].tolist()):
            windows_of[item].append(window)
        return encoded, windows_of

    def forward(self, encoded: Any) -> tuple[np.ndarray, np.ndarray]:
        inputs = {name: encoded[name] for name in self.tokenizer.model_input_names if name in encoded}
        with torch.inference_mode():
            device = getattr(self.model, "device", "cpu")
            output = self.forward_fn(**{name: value.to(device) for name, value in inputs.items()})
        return output["start_logits"].float().cpu().numpy(), output["end_logits"].float().cpu().numpy()

    def postprocess(self, context: str, encoded: Any, windows: list[int], start_logits: np.ndarray,
                    end_logits: np.ndarray, top_k: int, max_answer_tokens: int) -> list[Answer]:
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
            scores = np.tril(scores, max_answer_tokens - 1)  # at most max_answer_tokens long
            offsets = encoded["offset_mapping"][window].tolist()
            flat = scores.ravel()
            wanted = min(flat.size, top_k * 4 + 4)
            candidates = np.argpartition(-flat, wanted - 1)[:wanted]
            for index in candidates[np.argsort(-flat[candidates])]:
                begin, finish = divmod(int(index), scores.shape[1])
                if flat[index] <= 0:
                    break
                span = (int(offsets[first_pos + begin][0]), int(offsets[first_pos + finish][1]))
                best[span] = max(best.get(span, 0.0), float(flat[index]))
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:top_k]
        return [Answer(answer=context[s:e], score=score, start=s, end=e) for (s, e), score in ranked]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - np.max(logits))
    return shifted / shifted.sum()
