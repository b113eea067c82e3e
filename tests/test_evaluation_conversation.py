"""Generation rows with a conversation: a suite saved from Chat runs as it was asked, a `messages` column gives its
own reference, and the prompt the engine receives holds the earlier turns (tiny real chat model)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backend.core.types import GenerationParams, InvalidInputError, Message
from backend.data import feedback
from backend.data.store import dataset_path
from backend.evaluation.conversation import parse_conversation
from backend.evaluation.data import ColumnMapping, DataSource, guess_columns, read_file, select_examples
from backend.evaluation.runner import run_evaluation
from backend.evaluation.types import EvalConfig
from backend.services import generation as service

# Turn 2's answer depends on turn 1: only the history says what "it" is.
TURN_1 = [{"role": "user", "content": "My cat is called Tom."}, {"role": "assistant", "content": "Hello Tom's owner!"}]
QUESTION = "What is my cat called?"


def saved_suite(tmp_path: Path) -> Path:
    """A two-turn case saved the way Chat's "save as test case" saves it."""
    conversation = [*TURN_1, {"role": "user", "content": QUESTION}, {"role": "assistant", "content": "No idea."}]
    feedback.save_test_case(None, "two-turns", conversation, expected="Tom", model="tiny-chat", root=tmp_path)
    return dataset_path(None, "two-turns", "data", root=tmp_path)


def test_a_chat_suite_keeps_its_history_and_expected_answer(tmp_path: Path) -> None:
    table = read_file(saved_suite(tmp_path))
    mapping = guess_columns(table, "generation")
    assert mapping == ColumnMapping(input="input", reference="reference", conversation="context")
    examples = select_examples(table, "generation", mapping)
    assert examples.inputs == [QUESTION] and examples.references == ["Tom"]
    assert examples.conversations == [TURN_1]


def test_a_messages_column_gives_its_reference_turn(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    rows = [{"messages": [*TURN_1, {"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Tom"}]},
            {"messages": [{"role": "user", "content": "Only a question"}]},  # no reference turn: skipped
            {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    table = read_file(path)
    mapping = ColumnMapping(conversation="messages")
    examples = select_examples(table, "generation", mapping)
    assert examples.rows == [0, 2] and examples.references == ["Tom", "4"]
    assert examples.inputs == [QUESTION, "2+2?"]
    assert examples.conversations == [[*TURN_1, {"role": "user", "content": QUESTION}],
                                      [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]]
    assert any("skipped" in notice for notice in examples.notices)


def test_a_cell_that_is_not_a_conversation_is_refused_with_its_row() -> None:
    for bad in ("not json", '{"role": "user"}', '[{"role": "robot", "content": "x"}]'):
        with pytest.raises(InvalidInputError) as refused:
            parse_conversation(bad, 3, "context")
        assert refused.value.code == "eval_conversation" and refused.value.params["row"] == 3
    assert parse_conversation("", 0, "context") == [] and parse_conversation(None, 0, "context") == []
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]  # Gradio's browser shape
    assert parse_conversation(parts, 0, "c") == [{"role": "user", "content": "hi"}]
    with pytest.raises(InvalidInputError) as refused:
        select_examples(pd.DataFrame({"q": ["x"], "a": ["y"], "c": ["[]"]}), "classification",
                        ColumnMapping(input="q", reference="a", conversation="c"))
    assert refused.value.code == "conversation_task"


def test_the_engine_receives_the_history_and_answers_as_chat_does(shared_registry, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end on the tiny chat model: the prompt the scheduler decodes is turn 1, its reply, then turn 2 in
    the chat template, and the evaluated reply is what Chat answers greedily with that history."""
    path = saved_suite(tmp_path)
    with shared_registry.lease("tiny-chat", "generate") as engine:
        runtime, scheduler = engine.runtime, engine.scheduler
        received: list[tuple[int, ...]] = []
        original = scheduler.decode_rows

        def recording(rows, cancel):  # a spy on the real scheduler: records, then decodes as before
            received.extend(row.prompt_ids for row in rows)
            return original(rows, cancel)

        monkeypatch.setattr(scheduler, "decode_rows", recording)
        config = EvalConfig(task="generation", data=DataSource(path=str(path)),
                            columns=ColumnMapping(input="input", reference="reference", conversation="context"),
                            models=("tiny-chat",), max_new_tokens=8, bootstrap=0)
        run = run_evaluation(config, shared_registry, runs_dir=None)
    asked = [Message(m["role"], m["content"]) for m in TURN_1] + [Message("user", QUESTION)]
    assert received == [tuple(runtime.encode_chat(asked))]
    rendered = runtime.render_chat(asked)
    assert "My cat is called Tom." in rendered and rendered.index("Tom.") < rendered.index(QUESTION)
    reply = run.models["tiny-chat"].predictions[0]
    chat = list(service.stream_chat(shared_registry, "tiny-chat", QUESTION, TURN_1,
                                    GenerationParams(max_new_tokens=8, temperature=0.0)))[-1]
    assert reply == chat.text and reply  # the same answer Chat gives in context
    assert runtime.encode_chat([Message("user", QUESTION)]) != received[0]  # not the question alone
    assert set(run.models["tiny-chat"].metrics) >= {"contains", "normalized_exact_match", "bleu"}
    # The run keeps its conversations: a saved and reopened run shows what was asked.
    again = type(run).from_dict(json.loads(json.dumps(run.to_dict())))
    assert again.examples.conversations == [TURN_1]


def test_a_generate_only_prompt_format_is_refused_for_conversations(shared_registry, tmp_path: Path) -> None:
    config = EvalConfig(task="generation", data=DataSource(path=str(saved_suite(tmp_path))),
                        columns=ColumnMapping(input="input", reference="reference", conversation="context"),
                        models=("tiny-chat",), chat_template=False, max_new_tokens=4, bootstrap=0)
    run = run_evaluation(config, shared_registry, runs_dir=None)
    failed = run.models["tiny-chat"]
    assert failed.status == "failed" and "chat template" in (failed.error or "")
