"""The Train tab's rules without a browser: who may start training, and what the curves are drawn from."""

from __future__ import annotations

import gradio as gr
import pytest

from backend.training import runfiles
from backend.core.types import InvalidInputError
from ui.train.progress import curves
from ui.train.tab import may_start


def test_only_allowed_users_may_start_training(monkeypatch):
    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    monkeypatch.delenv("WORKBENCH_API_TOKEN", raising=False)
    may_start(gr.Request())  # logins off: a single-user app on 127.0.0.1
    monkeypatch.setenv("WORKBENCH_AUTH", "alice:correct-horse-battery,bob:staple-violet-tree")
    monkeypatch.setenv("WORKBENCH_TRAIN_USERS", "bob")
    may_start(gr.Request(username="bob"))
    with pytest.raises(InvalidInputError, match="may not start training"):
        may_start(gr.Request(username="alice"))
    monkeypatch.delenv("WORKBENCH_TRAIN_USERS")
    with pytest.raises(InvalidInputError):  # with logins on, training is off unless enabled
        may_start(gr.Request(username="bob"))


def test_curves_come_from_the_progress_lines(tmp_path):
    # Both series are in the table from the start (with no point drawn), or the chart gives a later one no colour.
    empty = curves(None)
    assert sorted(empty["series"]) == ["eval loss", "train loss"] and empty["loss"].isna().all()
    runfiles.append_progress(tmp_path, {"step": 0, "eval_loss": 0.9})
    first = curves(tmp_path)
    assert first["series"].tolist() == ["eval loss", "train loss"] and first["loss"].isna().tolist() == [False, True]
    (tmp_path / runfiles.PROGRESS).unlink()
    for row in ({"step": 0, "eval_loss": 0.9}, {"step": 5, "loss": 0.8}, {"step": 10, "loss": 0.5, "x": 1},
                {"step": 10, "eval_loss": 0.6}):
        runfiles.append_progress(tmp_path, row)
    with (tmp_path / runfiles.PROGRESS).open("a") as handle:
        handle.write('{"step": 15, "lo')  # a line being written right now is skipped
    frame = curves(tmp_path)
    assert frame.to_dict("records") == [
        {"step": 0, "loss": 0.9, "series": "eval loss"}, {"step": 5, "loss": 0.8, "series": "train loss"},
        {"step": 10, "loss": 0.5, "series": "train loss"}, {"step": 10, "loss": 0.6, "series": "eval loss"}]


def test_the_form_comes_from_train_config_and_the_recipes(shared_registry, tmp_path):
    """No copied defaults: every number's default is TrainConfig's; DPO shows its column pickers (guessed from a
    preference file) and its beta, and the form builds a DPO config from them."""
    from backend.training.config import TrainConfig
    from backend.training.service import TrainingService
    from tests.training_data import preference_rows, write_jsonl
    from ui.train.tab import HYPERPARAMETERS, TrainTab

    assert all(default == TrainConfig.model_fields[name].default for name, _, default, _ in HYPERPARAMETERS)
    with gr.Blocks():
        tab = TrainTab.build(shared_registry, TrainingService(shared_registry, root=tmp_path / "runs"))
    data = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(copies=1))
    base, method, *rest = tab.on_task("dpo", str(data))
    pickers, numbers = rest[:len(tab.columns)], rest[len(tab.columns):]
    assert base["value"] == "tiny-chat" and method["value"] == "lora"
    shown = {name: update["value"] for name, update in zip(tab.columns, pickers) if update["visible"]}
    assert shown == {"prompt_column": "prompt", "chosen_column": "chosen", "rejected_column": "rejected"}
    visible = {name for (name, _, _, _), update in zip(HYPERPARAMETERS, numbers) if update["visible"]}
    assert "dpo_beta" in visible and "learning_rate" in visible
    _, _, *rest = tab.on_task("classification", str(data))
    assert not rest[len(tab.columns) + [name for name, _, _, _ in HYPERPARAMETERS].index("dpo_beta")]["visible"]

    values = {tab.task: "dpo", tab.base: "tiny-chat", tab.data: str(data), tab.validation: None, tab.saved: None,
              tab.method: "lora", tab.register_as: "", tab.share: False,
              **{component: None for component in tab.columns.values()},
              **dict(zip(tab.numbers, (default for _, _, default, _ in HYPERPARAMETERS)))}
    values.update({tab.columns["prompt_column"]: "prompt", tab.columns["chosen_column"]: "chosen",
                   tab.columns["rejected_column"]: "rejected",
                   tab.numbers[[name for name, _, _, _ in HYPERPARAMETERS].index("dpo_beta")]: 0.3})
    config = tab.config_from(values, None)
    assert (config.task, config.chosen_column, config.rejected_column, config.dpo_beta) == \
        ("dpo", "chosen", "rejected", 0.3)
    values[tab.columns["rejected_column"]] = None
    with pytest.raises(InvalidInputError, match="field 'rejected_column': required for dpo"):
        tab.config_from(values, None)


def test_dpo_runs_get_the_reward_curves(tmp_path):
    from ui.train.progress import task_curves

    for row in ({"step": 0, "eval_loss": 0.69, "eval_rewards/margins": 0.0, "eval_rewards/accuracies": 0.0},
                {"step": 1, "loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.0},
                {"step": 2, "loss": 0.6, "rewards/margins": 0.2, "rewards/accuracies": 1.0}):
        runfiles.append_progress(tmp_path, row)
    assert task_curves(tmp_path, "classification")["visible"] is False
    update = task_curves(tmp_path, "dpo")
    frame = update["value"]
    assert update["visible"] is True
    assert frame[frame["series"] == "reward accuracy"]["value"].tolist() == [0.0, 1.0]
    assert frame[frame["series"] == "eval reward margin"]["value"].tolist() == [0.0]
    assert sorted(set(frame["series"])) == ["eval reward accuracy", "eval reward margin", "reward accuracy",
                                            "reward margin"]
    # The loss chart is the same for every task.
    assert curves(tmp_path)[lambda f: f["series"] == "train loss"]["loss"].tolist() == [0.69, 0.6]


def test_one_start_at_a_time_per_page() -> None:
    """Issue 28: a double click on Start started two runs. A second start from the same page while one is
    starting, or a moment after it (the second click of a double click), is refused; other pages are not."""
    from ui.train.once import OneStartAtATime

    now = [100.0]
    starts = OneStartAtATime(window_s=2.0, clock=lambda: now[0])
    with starts.starting("page-a"):
        with pytest.raises(InvalidInputError) as twice:
            with starts.starting("page-a"):
                pass
        assert (twice.value.code, twice.value.field) == ("train_start_twice", "start")
        with starts.starting("page-b"):  # another page starts its own
            pass
    now[0] += 0.3  # the second click of a double click, after a quick first start
    with pytest.raises(InvalidInputError, match="second start was ignored"):
        with starts.starting("page-a"):
            pass
    now[0] += 2.0
    with starts.starting("page-a"):  # a deliberate second run, later
        pass
    with pytest.raises(RuntimeError):  # a start that fails still lets the page go (after the window)
        with starts.starting("page-c"):
            raise RuntimeError("plan failed")
    now[0] += 2.0
    with starts.starting("page-c"):
        pass


def test_the_start_button_is_busy_while_a_start_is_in_flight(shared_registry, tmp_path) -> None:
    """The click first makes Start not clickable, then starts (one event, refused a second time by the page's
    guard), then makes it clickable again, also after a failed start."""
    from backend.training.service import TrainingService
    from ui.train.tab import TrainTab

    with gr.Blocks() as demo:
        tab = TrainTab.build(shared_registry, TrainingService(shared_registry, root=tmp_path / "runs"))
    start = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "train-start")
    chain = [fn for fn in demo.fns.values() if start in fn.outputs or fn.name == "start"]
    assert [fn.name for fn in chain] == ["<lambda>", "start", "<lambda>"]
    assert chain[0].fn().interactive is False and chain[2].fn().interactive is True
    assert chain[1].trigger_after == chain[0]._id and chain[2].trigger_after == chain[1]._id
    assert not chain[2].trigger_only_on_success  # re-enabled after a refused or failed start too
    assert chain[1].fn.__self__ is tab  # the tab's start, behind its page guard
