"""Train tab in a real browser: upload a CSV, preview the formatted sample, start, watch the loss curve and the
step counter move, stop (a checkpoint), resume, finish; the fine-tuned model is registered at once and
classifies in the Classify tab. A fine-tuned chat model appears in every tab's model picker without a reload,
and in the Train tab's own base list. The loop: chat ratings → a preference dataset → DPO → the new model in
Chat, its model downloaded as a zip. The app runs with its own runs folder (a temporary one)."""

from __future__ import annotations

import os
import re
import time
import zipfile
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import running_app
from tests.browser.helpers import (
    bubbles,
    expect_choice,
    open_app,
    open_params,
    open_tab,
    screenshot,
    select_option,
    send_chat,
    set_number,
    textbox,
    wait_finished,
)
from tests.training_data import sentiment_rows, write_chat_jsonl, write_csv

RUN_TIMEOUT_MS = 300_000  # a training process on 2 shared cores: model load, then a few dozen steps


@pytest.fixture(scope="module")
def train_app(browser_models_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    runs = tmp_path_factory.mktemp("train-runs")
    previous = os.environ.get("WORKBENCH_RUNS_DIR")
    os.environ["WORKBENCH_RUNS_DIR"] = str(runs)  # read by running_app's environment, so runs stay out of the tree
    try:
        with running_app("--models", str(browser_models_yaml)) as url:
            yield url
    finally:
        if previous is None:
            os.environ.pop("WORKBENCH_RUNS_DIR", None)
        else:
            os.environ["WORKBENCH_RUNS_DIR"] = previous


def step_of(page: Page) -> int:
    match = re.search(r"step (\d+)/", page.locator("#train-status").inner_text())
    return int(match.group(1)) if match else 0


def run_ids(page: Page) -> list[str]:
    """The run ids the runs table lists, after a refresh."""
    page.locator("#train-runs-refresh").click()
    page.wait_for_timeout(500)
    return [cell.strip() for cell in page.locator("#train-runs tbody tr td:first-child").all_text_contents()
            if cell.strip()]


def test_a_double_click_on_start_starts_one_run(page: Page, train_app: str, tmp_path: Path) -> None:
    """Issue 28: a double click started two runs; the tab followed the second (queued) one, so Stop stopped
    that one while the first trained unseen to the end. One click, one run: Start is busy while it starts."""
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(40, seed=1))
    open_app(page, train_app)
    open_tab(page, "Train")
    page.locator("#train-data input[type=file]").set_input_files(str(data))
    expect(page.locator("#train-label-column input")).to_have_value("label")
    page.get_by_text("Hyperparameters").click()
    set_number(page, "train-max_steps", 200)  # still running when Stop comes
    set_number(page, "train-max_length", 16)
    before = run_ids(page)
    page.locator("#train-start").dblclick()
    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"running|queued"), timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#train-start")).to_be_enabled()  # busy only while the start is in flight
    page.wait_for_timeout(1_500)  # room for a second start to land, were there one
    started = [run for run in run_ids(page) if run not in before]
    assert len(started) == 1, f"one double click started {len(started)} runs: {started}"
    page.locator("#train-stop").click()  # stops the run the tab follows: the one it started
    expect(status).to_have_text(re.compile(r"^\s*stopped"), timeout=RUN_TIMEOUT_MS)
    page.locator("#train-runs-refresh").click()
    expect(page.locator("#train-runs tbody tr").filter(has_text=started[0])).to_contain_text("stopped")


def test_train_stop_resume_and_classify_with_the_new_model(page: Page, train_app: str, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(200, seed=0))
    open_app(page, train_app)
    open_tab(page, "Train")
    page.locator("#train-data input[type=file]").set_input_files(str(data))
    expect(page.locator("#train-text-column input")).to_have_value("text")
    expect(page.locator("#train-label-column input")).to_have_value("label")
    page.get_by_text("Hyperparameters").click()
    set_number(page, "train-max_steps", 60)
    set_number(page, "train-learning_rate", 0.001)
    set_number(page, "train-batch_size", 16)
    set_number(page, "train-max_length", 16)
    set_number(page, "train-eval_steps", 10)
    textbox(page, "train-register-as").fill("browser-sentiment")

    page.locator("#train-check").click()
    expect(page.locator("#train-preview")).to_contain_text("label:")
    expect(page.locator("#train-plan")).to_contain_text("It fits")

    page.locator("#train-start").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text(re.compile(r"running|queued"), timeout=RUN_TIMEOUT_MS)
    # Stop at once: the run stops at its first step boundary whatever the machine's speed, with a checkpoint.
    page.locator("#train-stop").click()
    expect(status).to_have_text(re.compile(r"^\s*stopped"), timeout=RUN_TIMEOUT_MS)
    expect(status).to_contain_text("checkpoint")
    stopped_at = step_of(page)
    assert 0 < stopped_at < 60
    plot = page.locator("#train-plot")
    expect(plot).to_contain_text("loss")  # the step-0 evaluation is on the curve
    plot_at_stop = plot.inner_text()

    page.locator("#train-resume").click()
    # The curve moves: the step counter passes the stop and training loss points appear.
    page.wait_for_function(
        "(stop) => { const m = document.querySelector('#train-status').innerText.match(/step (\\d+)\\//);"
        " return m && parseInt(m[1]) > stop; }", arg=stopped_at, timeout=RUN_TIMEOUT_MS)
    expect(plot).not_to_have_text(plot_at_stop, timeout=RUN_TIMEOUT_MS)  # new points drawn
    expect(status).to_have_text(re.compile(r"^\s*completed"), timeout=RUN_TIMEOUT_MS)
    expect(status).to_contain_text("browser-sentiment")
    expect(page.locator("#train-runs")).to_contain_text("browser-sentiment")
    expect(page.locator("#train-status")).to_contain_text("step 60/60")
    # Two lines (train and eval loss) over numeric axes: an empty first table once typed them as categories.
    lines = plot.locator("svg path[aria-roledescription='line mark']")
    expect(lines).to_have_count(2)
    assert all(len(path.get_attribute("d") or "") > 10 for path in lines.all())
    # ... and both visible: a series the chart first saw after its colours were fixed was drawn with no stroke.
    assert all(path.get_attribute("stroke") for path in lines.all()), "a loss line is drawn without a colour"
    plot.evaluate("element => element.scrollIntoView({block: 'end'})")  # the status, the chart and its legend
    screenshot(page, "train-finished")

    # The Train tab's base list has it (continued training), as has Classify's picker: no reload, no mode switch.
    expect_choice(page, "train-base", "browser-sentiment")
    open_tab(page, "Classify")
    select_option(page, "classify-model", "browser-sentiment")
    textbox(page, "classify-text").fill("wonderful loved great sunny nice warm")
    page.locator("#classify-run").click()
    expect(page.locator("#classify-notice")).to_contain_text("browser-sentiment", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#classify-label")).to_contain_text("positive")


def test_a_fine_tuned_chat_model_appears_in_every_picker_without_a_reload(page: Page, train_app: str,
                                                                           tmp_path: Path) -> None:
    data = write_chat_jsonl(tmp_path / "chat.jsonl", copies=4)
    open_app(page, train_app)
    pickers = [("Chat", "chat-model"), ("Compare", "compare-model-a"), ("Compare", "compare-model-b"),
               ("Generate", "gen-model"), ("Evaluate", "eval-models"), ("Data", "data-token-model"),
               ("Models", "models-select")]
    for tab, picker in pickers:  # seen before the run: rendered, and without the model
        open_tab(page, tab)
        expect_choice(page, picker, "browser-chat", present=False, timeout_s=0)
    open_tab(page, "Train")
    page.locator("#train-task").get_by_role("radio", name="Chat (SFT)").check()
    page.locator("#train-data input[type=file]").set_input_files(str(data))
    expect(page.locator("#train-messages-column input")).to_have_value("messages")
    page.get_by_text("Hyperparameters").click()
    set_number(page, "train-max_steps", 3)
    set_number(page, "train-batch_size", 4)
    set_number(page, "train-max_length", 32)
    set_number(page, "train-eval_steps", 3)
    textbox(page, "train-register-as").fill("browser-chat")
    page.locator("#train-start").click()
    status = page.locator("#train-status")
    expect(status).to_have_text(re.compile(r"^\s*completed"), timeout=RUN_TIMEOUT_MS)
    expect(status).to_contain_text("browser-chat")

    expect_choice(page, "train-base", "browser-chat")  # an SFT LoRA adapter continues training
    for tab, picker in pickers:
        open_tab(page, tab)
        expect_choice(page, picker, "browser-chat")
    expect(page.locator("#models-table")).to_contain_text("browser-chat")
    # Picked and used: it answers in the Chat tab.
    open_tab(page, "Chat")
    select_option(page, "chat-model", "browser-chat")
    textbox(page, "chat-input").fill("What is the secret word?")
    page.locator("#chat-send").click()
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=RUN_TIMEOUT_MS)


def rate_last_reply(page: Page, thumb: str) -> None:
    bubbles(page, "bot").last.hover()
    page.locator(f'#chat-history button[aria-label="{thumb}"]').last.click()


def retry_until_new_reply(page: Page) -> None:
    """Retry, then wait until the last reply is a finished, different one (sampling at temperature 1)."""
    old_reply, old_stats = bubbles(page, "bot").last.inner_text(), page.locator("#chat-stats").inner_text()
    page.locator("#chat-retry").click()
    page.wait_for_function(
        """([old, oldStats]) => {
            const bots = document.querySelectorAll('#chat-history [data-testid="bot"]');
            const stats = document.querySelector('#chat-stats').innerText;
            const last = bots[bots.length - 1]?.innerText ?? "";
            return stats.includes('finish:') && stats !== oldStats && last.trim() && last !== old;
        }""", arg=[old_reply, old_stats], timeout=RUN_TIMEOUT_MS)


def test_the_loop_ratings_to_preferences_to_dpo_to_published_to_chat(page: Page, train_app: str) -> None:
    """Chat → rate a reply 👍 and two retried ones 👎 → a preference dataset on the Data tab → DPO on it (a few
    steps) with its training-loss line drawn → merged into a full model, downloaded as a zip (a push to the Hub is
    refused with the reason: this machine is offline) → the new models are in Chat's picker and answer."""
    import httpx

    open_app(page, train_app)
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", 8)
    set_number(page, "chat-temperature", 1)
    send_chat(page, "hello there")
    wait_finished(page, "chat-stats", timeout=RUN_TIMEOUT_MS)
    rate_last_reply(page, "Like")
    expect(page.locator("#chat-feedback-status")).to_contain_text("👍 saved")
    for _ in range(2):
        retry_until_new_reply(page)
        rate_last_reply(page, "Dislike")
    deadline = time.monotonic() + 30
    while len(httpx.get(f"{train_app}v1/feedback", timeout=30).json()["ratings"]) < 3:
        assert time.monotonic() < deadline, "the three ratings were not all saved"
        time.sleep(0.2)

    open_tab(page, "Data")
    page.locator("#data-feedback-kind").get_by_label("Preference (chosen / rejected)", exact=True).check()
    textbox(page, "data-feedback-name").fill("loop-pref")
    page.locator("#data-feedback-build").click()
    expect(page.locator("#data-feedback-status")).to_contain_text("Saved 'loop-pref' (preference: train 2)")

    open_tab(page, "Train")
    page.locator("#train-task").get_by_role("radio", name="Preferences (DPO)").check()
    select_option(page, "train-saved", "loop-pref")
    expect(page.locator("#train-chosen-column input")).to_have_value("chosen")
    expect(page.locator("#train-rejected-column input")).to_have_value("rejected")
    page.get_by_text("Hyperparameters").click()
    set_number(page, "train-max_steps", 4)
    set_number(page, "train-batch_size", 1)
    set_number(page, "train-max_length", 48)
    set_number(page, "train-eval_steps", 2)
    textbox(page, "train-register-as").fill("loop-dpo")
    page.locator("#train-start").click()
    status = page.locator("#train-status")
    expect(status).to_have_text(re.compile(r"^\s*completed"), timeout=RUN_TIMEOUT_MS)
    expect(status).to_contain_text("loop-dpo")
    # A 4-step run draws its training loss as a line (a point per step), next to the evaluations' line.
    lines = page.locator("#train-plot svg path[aria-roledescription='line mark']")
    expect(lines).to_have_count(2)
    assert all(path.get_attribute("d", timeout=5_000).count("L") >= 2 for path in lines.all())
    expect(page.locator("#train-task-plot")).to_be_visible()  # DPO's rewards

    # Published: merged into a full model (registered), downloaded as a zip; a push is refused offline.
    page.locator("#train-publish > button").click()
    page.locator("#train-merge").click()
    publish_status = page.locator("#train-publish-status")
    expect(publish_status).to_contain_text("loop-dpo-merged", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#train-publish-merged input")).to_be_checked()
    page.locator("#train-zip").click()
    expect(publish_status).to_contain_text(re.compile(r"\d+ files"))
    with page.expect_download(timeout=RUN_TIMEOUT_MS) as download_info:
        page.locator("#train-download").click()
    archive = zipfile.ZipFile(download_info.value.path())
    assert {"config.json", "model.safetensors", "README.md"} <= set(archive.namelist())
    assert "library_name: transformers" in archive.read("README.md").decode()
    textbox(page, "train-push-repo").fill("someone/loop-dpo")
    page.locator("#train-push").click()
    expect(page.locator(".toast-body").first).to_contain_text("HF_HUB_OFFLINE is set")
    screenshot(page, "train-loop-published")

    open_tab(page, "Chat")
    expect_choice(page, "chat-model", "loop-dpo (fine-tuned)")
    select_option(page, "chat-model", "loop-dpo-merged")
    send_chat(page, "hello there")
    expect(page.locator("#chat-stats")).to_contain_text("finish:", timeout=RUN_TIMEOUT_MS)
    expect(bubbles(page, "bot").last).not_to_have_text("")

    # Compare with base: one click on the finished run opens Evaluate with the run's model, "compare with base" on.
    # This run kept no validation file (its rows were split off the 2-row preference set), so the page says to pick
    # the data: the preference set (listed though built after the page opened), its preferred reply as the
    # reference, two rows, short replies.
    open_tab(page, "Train")
    page.locator("#train-compare-base").click()
    expect(page.get_by_role("tab", name="Evaluate", exact=True)).to_have_attribute("aria-selected", "true")
    expect(page.locator("#eval-data-info")).to_contain_text(
        re.compile(r"loop-dpo \(run [^)]+\) with its base tiny-chat: the run kept no validation file"))
    expect(page.locator("#eval-models .token")).to_have_count(1)
    expect(page.locator("#eval-models .token")).to_contain_text("loop-dpo (fine-tuned)")
    page.get_by_role("tab", name="Saved dataset", exact=True).click()
    select_option(page, "eval-saved", "loop-pref")
    expect(page.locator("#eval-input-col input[role=combobox]")).to_have_value("prompt")
    select_option(page, "eval-reference-col", "chosen")  # the preferred reply: what generation is scored against
    set_number(page, "eval-limit", 2)
    set_number(page, "eval-max-new-tokens", 8)
    set_number(page, "eval-bootstrap", 0)
    page.locator("#eval-run").click()
    # Both models side by side: their metrics in the leaderboard, each one's reply per example in the diffs.
    side = page.locator("#eval-side-by-side")
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while not side.is_visible():  # a refusal (a toast) fails at once, saying why
        toasts = page.locator(".toast-body").all_inner_texts()
        assert not any("HF_HUB_OFFLINE" not in toast for toast in toasts), toasts
        assert time.monotonic() < deadline, page.locator("#eval-progress").inner_text()
        page.wait_for_timeout(500)
    leaderboard = page.locator("#eval-leaderboard")
    expect(leaderboard).to_contain_text("loop-dpo")
    expect(leaderboard).to_contain_text("tiny-chat")
    diffs = page.locator("#eval-diffs")
    expect(diffs).to_contain_text("loop-dpo: reply")
    expect(diffs).to_contain_text("tiny-chat: reply")
    screenshot(page, "train-loop-compare-with-base")
