"""Every pipeline task of the table runs the task contract (tests/task_contract.py) on its tiny real model."""

from __future__ import annotations

import json
from typing import Any, Optional

from backend.tasks.types import Answer, Embedding, Entity, MaskFill
from backend.core.types import GenerationParams
from tests.task_contract import EvalCase, TaskContract

GREEDY = GenerationParams(max_new_tokens=5, temperature=0.0)
NER_TAGS = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


class TestNer(TaskContract):
    task = "ner"
    model_id = "tiny-ner"
    texts = ("Dr. Smith met Anna in Paris.", "Anna flew to Berlin with Tom on Monday, then on to Rome.")
    options = {"aggregation": "simple"}
    bad_options = (({"aggregation": "mean"}, "aggregation"),)
    file_options = {"aggregation": "simple"}

    def check_result(self, text: str, question: Optional[str], result: list[Entity]) -> None:
        assert all(isinstance(e, Entity) and e.entity in {"PER", "LOC", "ORG"} for e in result)
        assert all(0 <= e.start < e.end <= len(text) and 0 < e.score <= 1 for e in result)

    def eval_case(self) -> EvalCase:
        return EvalCase(inputs=[json.dumps(["Anna", "lives", "in", "Paris", "."]), "Dr. Smith met the team"],
                        references=['["B-PER", "O", "O", "B-LOC", "O"]', "B-PER I-PER O O O"])

    def check_prediction(self, example_input: str, context: Optional[str], prediction: str) -> None:
        from backend.evaluation.sequences import parse_list

        tags = prediction.split()
        assert len(tags) == len(parse_list(example_input)) and set(tags) <= NER_TAGS


class TestQuestionAnswering(TaskContract):
    task = "question_answering"
    model_id = "tiny-qa"
    texts = ("The meeting is in room B-204 on Tuesday.", "It starts at 10 a.m.; bring the slides and a laptop.")
    questions = ("Where is the meeting?", "When does it start?")
    options = {"top_k": 2, "stride": 64}
    bad_options = (({"top_k": 0}, "top_k"), ({"stride": 1000}, "stride"), ({"max_answer_tokens": 2.5},
                                                                            "max_answer_tokens"))
    file_options = {"stride": 64}

    def check_result(self, text: str, question: Optional[str], result: list[Answer]) -> None:
        assert 1 <= len(result) <= 2 and [a.score for a in result] == sorted((a.score for a in result), reverse=True)
        assert all(text[a.start:a.end] == a.answer for a in result)

    def eval_case(self) -> EvalCase:
        return EvalCase(inputs=list(self.questions or ()), references=['["room B-204"]', "10 a.m."],
                        contexts=list(self.texts))

    def check_prediction(self, example_input: str, context: Optional[str], prediction: str) -> None:
        assert context is not None and prediction in context


class TestFillMask(TaskContract):
    task = "fill_mask"
    model_id = "tiny-mlm"
    texts = ("The [MASK] sat.", "[MASK] met Anna in [MASK] on Monday.")
    options = {"top_k": 3}
    bad_options = (({"top_k": 51}, "top_k"), ({"top_k": True}, "top_k"))
    file_options = {"top_k": 3}

    def check_result(self, text: str, question: Optional[str], result: list[list[MaskFill]]) -> None:
        assert len(result) == text.count("[MASK]") and all(len(candidates) == 3 for candidates in result)
        for candidates in result:
            assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)
            assert all("[MASK]" not in c.sequence or text.count("[MASK]") > 1 for c in candidates)


class TestSummarize(TaskContract):
    task = "summarize"
    model_id = "tiny-seq2seq"
    texts = ("The quick brown fox jumps over the lazy dog.", "Prices rose in March, then fell again in April.")
    options = {"params": GREEDY}
    bad_options = (({"min_new_tokens": 6}, "min_new_tokens"),)
    file_params = GREEDY

    def check_result(self, text: str, question: Optional[str], result: str) -> None:
        assert isinstance(result, str) and result  # the tiny T5 never picks EOS greedily: 5 tokens of text

    def eval_case(self) -> EvalCase:
        return EvalCase(inputs=list(self.texts), references=["A fox jumps.", "Prices moved."])

    def check_prediction(self, example_input: str, context: Optional[str], prediction: str) -> None:
        assert prediction


class TestTranslate(TestSummarize):
    task = "translate"
    options = {"params": GREEDY, "source_language": "en", "target_language": "de"}
    bad_options = (({"target_language": "xx"}, "target_language"),)
    file_options = {"source": "en", "target": "de"}

    def eval_case(self) -> EvalCase:
        return EvalCase(inputs=["Good morning.", "Thank you."], references=["Guten Morgen.", "Danke."],
                        source_language="en", target_language="fr")


class TestEmbed(TaskContract):
    task = "embed"
    model_id = "tiny-embed"
    texts = ("The cat sat on the mat.", "Prices rose 3.5% in March, and again in April.")

    def check_result(self, text: str, question: Optional[str], result: Any) -> None:
        assert isinstance(result, Embedding) and len(result.vector) == 32 and result.pooling == "cls"
        assert abs(sum(x * x for x in result.vector) - 1.0) < 1e-5 and result.tokens > 2 and not result.truncated
