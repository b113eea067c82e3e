"""The commands speak one vocabulary: every option says what it does, the Hub flags are the same in `data` and
`eval`, and the registry's task names are understood where a command names the task another way."""

from __future__ import annotations

import argparse

import pytest

import app


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = app.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", app.COMMANDS)
def test_every_option_has_help(command: str) -> None:
    silent = [action.option_strings[0] for action in _subparsers()[command]._actions
              if action.option_strings and not action.help]
    assert silent == []


def test_data_and_eval_share_the_hub_flags() -> None:
    commands = _subparsers()
    for command in ("data", "eval"):
        flags = {flag for action in commands[command]._actions for flag in action.option_strings}
        assert {"--hub-dataset", "--hub-config", "--hub-split"} <= flags, command
    data = app.parse_args(["data", "--hub-dataset", "owner/name", "--hub-split", "validation", "--text-column", "t",
                           "--out", "o"])
    evaluation = app.parse_args(["eval", "--hub-dataset", "owner/name", "--hub-split", "validation",
                                 "--task", "generation"])
    assert (data.hub_dataset, data.hub_split) == (evaluation.hub_dataset, evaluation.split) == ("owner/name",
                                                                                                 "validation")
    assert app.parse_args(["eval", "--hub-dataset", "o/n", "--split", "dev", "--task", "ner"]).split == "dev"


def test_the_registry_task_names_are_understood() -> None:
    assert app.parse_args(["train", "--task", "classify"]).task == "classification"
    assert app.parse_args(["eval", "--data", "d.csv", "--task", "classify"]).task == "classification"
    assert app.parse_args(["eval", "--data", "d.csv", "--task", "summarize"]).task == "summarization"
    with pytest.raises(SystemExit):
        app.parse_args(["train", "--task", "chat"])
