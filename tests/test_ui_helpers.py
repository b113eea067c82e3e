"""Unit tests of the UI's pure helpers: parsing widgets, formatting, streaming, chat files, API signatures."""

from __future__ import annotations

import inspect
import json
import threading
from typing import Iterator

import pytest

from backend.core.types import (
    Delta,
    Event,
    Final,
    GenerationParams,
    GenerationStats,
    InvalidInputError,
    Message,
    ModelStatus,
    TokenAlternative,
    TokenChoice,
)
from ui.server.api import GENERATION_API_PARAMS, accepts_generation_params
from ui.chat.view import split_last_exchange
from ui.compare.tab import interleave
from ui.common.components import collect, format_progress, format_stats, parse_seed, parse_stop, throttled
from ui.generate.tab import format_token_count, render_choices
from ui.models.tab import status_rows
from ui.chat.transcript import Transcript, parse_transcript, read_import, write_export


def stats(**overrides) -> GenerationStats:
    values = dict(prompt_tokens=5, generated_tokens=10, time_to_first_token_s=0.25, tokens_per_second=40.0,
                  total_s=0.5, finish_reason="length")
    return GenerationStats(**{**values, **overrides})


def events(pieces: list[str], closed: threading.Event | None = None) -> Iterator[Event]:
    try:
        for piece in pieces:
            yield Delta(piece)
        yield Final("".join(pieces), stats())
    finally:
        if closed is not None:
            closed.set()


# ------------------------------------------------------------------------------------- widget parsing


@pytest.mark.parametrize(("text", "expected"), [
    ("", ()),
    (None, ()),
    ("User:, ###", ("User:", "###")),
    ("a,b\nc\n", ("a,b", "c")),  # one per line when there are several lines: commas are kept
    ("\\n\\n", ("\n\n",)),
    (["x", ""], ("x",)),
])
def test_parse_stop(text, expected) -> None:
    assert parse_stop(text) == expected


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), (-1, None), (-1.0, None), (7.0, 7),
                                                 ("12", 12), (0, 0)])
def test_parse_seed(value, expected) -> None:
    assert parse_seed(value) == expected


@pytest.mark.parametrize("value", [-2, 1.5, "abc", True])
def test_parse_seed_refuses_with_the_field_name(value) -> None:
    with pytest.raises(InvalidInputError, match="seed"):
        parse_seed(value)


# ------------------------------------------------------------------------------------------ formatting


def test_stats_line_shows_timings_counts_and_escaped_notices() -> None:
    line = format_stats(stats(notices=("2 oldest message(s) dropped <b>",), seed=42))
    assert "first token 0.25 s" in line and "40.0 tokens/s" in line
    assert "5 prompt + 10 generated tokens" in line and "max new tokens reached" in line and "seed 42" in line
    assert "Notice: 2 oldest" in line and "&lt;b&gt;" in line and "<b>" not in line


def test_progress_line_reports_errors_escaped() -> None:
    from ui.common.components import StreamState

    assert format_progress(StreamState(error="model <x> failed")).startswith("**Error:** model &lt;x&gt;")
    # Statuses are translation keys the browser words in its language (ui/i18n/core.py); in English, "Waiting…".
    from ui.i18n.core import english, text

    assert format_progress(StreamState()) == text("status_waiting")
    assert english("status_waiting").startswith("Waiting for the model")


def test_probability_table_escapes_tokens_and_shows_whitespace() -> None:
    choice = TokenChoice("<script>", 0.5, (TokenAlternative("<script>", 0.5), TokenAlternative(" a\n", 0.2)))
    table = render_choices([choice])
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert "␣a↵" in table and "50.0%" in table and "chosen" in table
    assert "first 1 of 3" in render_choices([choice] * 3, limit=1)


def test_token_count_line() -> None:
    assert format_token_count(12, 512) == "12 / 512 tokens"
    assert "longer than the model's context" in format_token_count(600, 512)
    assert format_token_count(None, 512).startswith("? / 512 tokens")


def test_status_rows_are_readable() -> None:
    status = ModelStatus(id="m", name="M", tasks=("chat", "generate"), backend="transformers", state="loaded",
                         weights="local", weights_detail="", parameters=1_500_000, memory_bytes=3 * 1024**2,
                         load_time_s=1.25, generated_tokens_total=1234)
    (row,) = status_rows([status])["data"]
    assert row[:4] == ["m", "loaded", "chat, generate", "local"]  # state second: visible on a phone
    assert row[6:10] == ["1.5 M", "3.0 MiB", "1.25 s", "1,234"]


# ------------------------------------------------------------------------------------------- streaming


def test_throttled_yields_rarely_but_always_the_final_state() -> None:
    states = list(throttled(events(["x"] * 200), interval=60.0))
    assert len(states) == 2  # the first token at once, then the end
    assert states[-1].text == "x" * 200 and states[-1].stats is not None


def test_closing_throttled_closes_the_backend_stream() -> None:
    closed = threading.Event()
    stream = throttled(events(["a", "b", "c"], closed), interval=0.0)
    assert next(stream).text == "a"
    stream.close()
    assert closed.is_set()


def test_collect_returns_the_end_state() -> None:
    state = collect(events(["a", "b"]))
    assert state.text == "ab" and state.done


def test_interleave_streams_both_and_reports_errors_per_side() -> None:
    def failing() -> Iterator[Event]:
        yield Delta("partial")
        raise InvalidInputError("side b broke")

    *_, (side_a, side_b) = interleave([events(["a", "b"]), failing()], interval=0.0)
    assert side_a.text == "ab" and side_a.stats is not None and side_a.error is None
    assert side_b.text == "partial" and side_b.error == "side b broke"


def test_closing_interleave_closes_both_streams() -> None:
    closed = [threading.Event(), threading.Event()]

    def endless(index: int) -> Iterator[Event]:
        try:
            while True:
                yield Delta(str(index))
        finally:
            closed[index].set()

    merged = interleave([endless(0), endless(1)], interval=0.0)
    next(merged)
    merged.close()
    assert all(flag.wait(5) for flag in closed)


# ------------------------------------------------------------------------------------------ chat edits


def test_split_last_exchange() -> None:
    history = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "a"},
               {"role": "user", "content": "2"}, {"role": "assistant", "content": "b"}]
    assert split_last_exchange(history) == (history[:2], "2")
    assert split_last_exchange([]) is None  # nothing to retry, undo or edit: the caller does nothing


# ------------------------------------------------------------------------------------------ chat files


def test_transcript_round_trip(tmp_path) -> None:
    original = Transcript(messages=(Message("user", "Hi <b>"), Message("assistant", "Hello 🙂")), model="tiny-chat",
                          system_prompt="Be brief.", params=GenerationParams(temperature=0.3, seed=5, stop=("\n",)))
    restored = read_import(write_export(original, tmp_path))
    assert restored == original


def test_transcript_leading_system_message_becomes_the_system_prompt() -> None:
    restored = parse_transcript(json.dumps([{"role": "system", "content": "S"}, {"role": "user", "content": "u"}]))
    assert restored.system_prompt == "S" and restored.messages == (Message("user", "u"),)


@pytest.mark.parametrize(("text", "named"), [
    ("{not json", "line 1"),
    ('{"messages": "hi"}', "'messages'"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "history item 0"),
    ('{"messages": [], "parameters": {"temp": 1}}', "temp"),
    ('{"messages": [], "parameters": {"temperature": -1}}', "temperature"),
    ('{"messages": [], "version": 99}', "version"),
    ('{"messages": [], "format": "other"}', "format"),
    ('[{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]', "system"),
])
def test_malformed_chat_files_are_refused_with_a_clear_message(text, named) -> None:
    with pytest.raises(InvalidInputError, match="chat.json") as raised:
        parse_transcript(text, "chat.json")
    assert named in str(raised.value)


def test_import_refuses_binary_files(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        read_import(path)


# ------------------------------------------------------------------------------------------ API helper


def test_accepts_generation_params_extends_the_signature_and_splits_the_call() -> None:
    def fn(prompt: str, model: str = "", *, overrides: dict) -> dict:
        return {"prompt": prompt, "model": model, **overrides}

    endpoint = accepts_generation_params(fn)
    names = list(inspect.signature(endpoint).parameters)
    assert names == ["prompt", "model", *(name for name, _ in GENERATION_API_PARAMS)]
    result = endpoint("p", "m", 10, 0.5)  # Gradio passes values positionally
    assert result["prompt"] == "p" and result["max_new_tokens"] == 10 and result["temperature"] == 0.5
    assert result["seed"] is None


# ------------------------------------------------------------------------------------ whole numbers, one rule


@pytest.mark.parametrize(("value", "blank", "low", "expected"), [
    (None, None, None, None), ("", 8, None, 8), (7.0, None, None, 7), ("12", None, 0, 12), (0, None, 0, 0)])
def test_parse_whole(value, blank, low, expected) -> None:
    from ui.common.components import parse_whole

    assert parse_whole(value, "field", blank, low) == expected


@pytest.mark.parametrize("value", [2.5, "abc", True, -1])
def test_generate_and_evaluate_read_numbers_the_same_way(value) -> None:
    """Generate's parameter panel and Evaluate's form once disagreed (2.5 was rounded by one, refused by the
    other); both now refuse what is not a whole number (and Evaluate's batch size must be at least 1)."""
    import gradio as gr

    from ui.common.components import ParamPanel
    from ui.evaluate.forms import FormPanel

    with gr.Blocks():
        panel = ParamPanel.build("generate", None)
        form = FormPanel.build("generation", [], [])
    params = {panel.max_new_tokens: 16, panel.temperature: 0.7, panel.top_p: 0.9, panel.top_k: value,
              panel.repetition_penalty: 1.0, panel.seed: -1, panel.stop: ""}
    data = {form.source: {"path": "x.csv"}, form.task: "generation", form.input_col: "q", form.reference_col: "a",
            form.predictions_col: None, form.score_file: False, form.models: ["m"], form.prompt: "{input}",
            form.max_new_tokens: 8, form.batch_size: value, form.limit: 0, form.seed: -1, form.bootstrap: 0,
            form.rouge_stemmer: False}
    if value != -1:  # top_k -1 is a range question for GenerationParams, not a number question
        with pytest.raises(InvalidInputError, match="top_k: must be a whole number"):
            panel.read(params)
    with pytest.raises(InvalidInputError, match="batch size: must be a whole number"):
        form.read(data)
