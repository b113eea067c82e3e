"""Every word of the UI goes through the translation table (issue 20): the whole app, and presenter mode, are
built over the tiny registry and every component is walked; a label, tooltip, placeholder, button, tab, accordion,
static Markdown or radio / checkbox choice given as a raw English string (instead of `t(key)` / `text(key)`,
ui/i18n/core.py) fails here, so a control added later cannot go untranslated. Also: the table's two languages agree,
and the common validation errors have Chinese wording for a Chinese browser (ui/i18n/error_words.py).
"""

from __future__ import annotations

import string
from typing import Any, Iterator

import gradio as gr
import pytest
from gradio.components.api_component import Api

# Words that are the same in every language: technical names, not sentences.
UNTRANSLATED = {"LoRA", "QLoRA (4-bit, CUDA)"}
# Components whose static text is data, not UI words: the presenter's description comes from models.yaml.
DATA_ELEMENTS = {"presenter-description"}
# Choices that are values a user types or reads in files (formats, the pipeline's aggregation names).
DATA_CHOICES = {"data-format", "ner-aggregation"}


def untranslated(value: Any) -> bool:
    from ui.i18n.core import is_translated

    if value is None or is_translated(value):
        return False
    return isinstance(value, str) and value.strip() != "" and value not in UNTRANSLATED


def raw_strings(demo: gr.Blocks) -> Iterator[str]:
    """'<kind> #<elem_id>.<property>: <value>' for every static UI string that is not translated."""
    for block in demo.blocks.values():
        if isinstance(block, Api):
            continue  # the inputs and outputs gr.api describes for the API page, never shown in the UI
        name = f"{type(block).__name__} #{getattr(block, 'elem_id', None) or block._id}"
        if getattr(block, "elem_id", None) in DATA_ELEMENTS:
            continue
        props = ["label", "info", "placeholder"]
        if isinstance(block, (gr.Button, gr.DownloadButton, gr.UploadButton, gr.Markdown)):
            props.append("value")
        for prop in props:
            value = getattr(block, prop, None)
            if untranslated(value):
                yield f"{name}.{prop}: {value!r}"
        if isinstance(block, (gr.Radio, gr.CheckboxGroup)) and block.elem_id not in DATA_CHOICES:
            for display, _value in block.choices:
                if untranslated(display):
                    yield f"{name}.choices: {display!r}"


def test_every_control_of_the_app_is_translated(registry) -> None:
    import ui

    demo = ui.build_app(registry)
    assert len(demo.blocks) > 300  # the whole app was walked (every tab, the tasks' views included)
    assert list(raw_strings(demo)) == []


def test_every_control_of_presenter_mode_is_translated(registry) -> None:
    import ui

    assert list(raw_strings(ui.build_app(registry, presenter=True))) == []


def test_the_walk_catches_a_raw_label(registry) -> None:
    """The check itself: an English label, button or choice is reported; translated ones and data are not."""
    from ui.i18n.core import t, text

    with gr.Blocks() as demo:
        gr.Textbox(label="Raw label", elem_id="raw")
        gr.Button("Raw button", elem_id="raw-button")
        gr.Radio([("Raw choice", "x"), (text("cancel"), "y"), ("LoRA", "z")], elem_id="raw-radio")
        gr.Textbox(label=t("model"), placeholder=t("embed_sentences", count=3))
        gr.Markdown("")
    assert sorted(raw_strings(demo)) == ["Button #raw-button.value: 'Raw button'",
                                         "Radio #raw-radio.choices: 'Raw choice'",
                                         "Textbox #raw.label: 'Raw label'"]


def test_both_languages_have_every_key_with_the_same_fields() -> None:
    from ui.i18n.core import STRINGS

    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    for key, (english, chinese) in STRINGS.items():
        assert english.strip() and chinese.strip(), key
        assert fields(english) == fields(chinese), key


def test_no_key_can_be_mistaken_for_a_data_value() -> None:
    """The frontend translates any plain string equal to a key (a dropdown choice, a cell): a column named
    "text" once showed as "Text". Every key the browser gets is prefixed, so no data value equals one."""
    from ui.i18n.core import I18N, PREFIX, t

    for table in I18N.translations.values():
        assert all(key.startswith(PREFIX) for key in table)
        assert not {"text", "file", "task", "model", "seed", "label", "split"} & table.keys()
    assert t("text").key == PREFIX + "text"


def test_a_template_filled_at_build_time_is_translated_in_both_languages() -> None:
    from ui.i18n.core import I18N, t

    key = t("embed_sentences", count=7).key
    assert I18N.translations["en"][key] == "Sentences, one per line (up to 7)"
    assert I18N.translations["zh-CN"][key] == "句子，每行一句（最多 7 句）"


class Headers:
    def __init__(self, accept_language: str) -> None:
        self.headers = {"accept-language": accept_language}


def _refusal(action) -> Exception:  # type: ignore[no-untyped-def]
    from backend.core.types import WorkbenchError

    with pytest.raises(WorkbenchError) as error:
        action()
    return error.value


def _common_refusals() -> list[tuple[Any, str]]:
    """The common refusals, made by the real checks, with their Chinese wording."""
    import pandas as pd

    from backend.evaluation.data import ColumnMapping, select_examples
    from backend.services.generation import build_messages
    from backend.core.types import GenerationParams
    from ui.common.components import parse_seed, parse_whole

    return [
        (lambda: build_messages(""), "请先输入消息。"),
        (lambda: GenerationParams(temperature=6.0).validated(), "温度必须在 [0.0, 5.0] 范围内（当前为 6.0）。"),
        (lambda: parse_whole("abc", "max new tokens"), "最大新 token 数必须是整数（当前为 'abc'）。"),
        (lambda: parse_whole(0, "batch size", low=1), "批大小必须是不小于 1 的整数（当前为 0）。"),
        (lambda: parse_seed(-5), "随机种子：请填写不小于 0 的整数，或留空（-1）表示随机（当前为 -5）。"),
        (lambda: select_examples(pd.DataFrame({"a": ["x"], "b": ["y"]}), "classification", ColumnMapping(input="a")),
         "请选择标签列：分类任务需要它。现有的列：'a', 'b'。"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_common_errors_are_said_in_chinese_to_a_chinese_browser(case: int) -> None:
    from ui.i18n.error_words import worded

    action, chinese = _common_refusals()[case]
    error = _refusal(action)
    assert worded(error, Headers("zh-CN,zh;q=0.9,en;q=0.8")) == chinese
    # An English browser gets English words; an API handler (plain=False) keeps the field-named message.
    assert worded(error, Headers("en-US,en;q=0.9")) == worded(error, None) != chinese
    assert worded(error, Headers("en-US,en;q=0.9"), plain=False) == str(error)


def test_a_ui_handler_error_follows_the_request_language(registry) -> None:
    """handle_errors (every tab's handlers) words a backend error in Chinese inside a Chinese request, and keeps
    the field-named English for anyone else (gradio_client, scripts); ui_errors words it for a person."""
    from gradio.context import LocalContext

    from backend.services.generation import build_messages
    from ui.common.components import handle_errors, ui_errors

    def refuse() -> None:
        build_messages("   ")

    for wrap, english in ((handle_errors, "message: is empty; type something first"),
                          (ui_errors, "Type a message first.")):
        token = LocalContext.request.set(Headers("zh-CN"))
        try:
            with pytest.raises(gr.Error) as chinese_error:
                wrap(refuse)()
        finally:
            LocalContext.request.reset(token)
        assert chinese_error.value.message == "请先输入消息。"
        with pytest.raises(gr.Error) as english_error:
            wrap(refuse)()
        assert english_error.value.message == english


def test_status_lines_with_numbers_follow_the_request_language() -> None:
    """Lines worded on the server (`say`) use the Accept-Language of the request being served, which Gradio sets
    around every handler; outside a request (scripts, tests) they stay English."""
    from gradio.context import LocalContext

    from ui.generate.tab import format_token_count

    token = LocalContext.request.set(Headers("zh-CN,zh;q=0.9"))
    try:
        assert format_token_count(12, 512) == "12 / 512 个 token"
        assert format_token_count(600, 512) == "600 / 512 个 token：超过了模型的上下文长度，请缩短"
    finally:
        LocalContext.request.reset(token)
    assert format_token_count(12, 512) == "12 / 512 tokens"


def test_the_stats_line_and_upload_summaries_follow_the_request_language() -> None:
    """The line under a reply (speed, tokens, finish reason, total, seed, the load time) and the one-line summary
    of an upload (Classify, the pipeline tasks, Evaluate) are worded on the server in the request's language."""
    from gradio.context import LocalContext

    import pandas as pd

    from backend.core.types import GenerationStats
    from backend.evaluation.data import ColumnMapping, DataSource
    from ui.common.components import format_stats
    from ui.evaluate.forms import DataView
    from ui.i18n.core import file_summary

    stats = GenerationStats(prompt_tokens=9, generated_tokens=6, time_to_first_token_s=0.25, tokens_per_second=12.5,
                            total_s=1.5, finish_reason="length", seed=7)
    view = DataView(DataSource(path="/tmp/reviews.csv"), 20, ["id", "review"], pd.DataFrame(), ColumnMapping())
    many = [f"c{index}" for index in range(32)]
    english = ("first token 0.25 s · 12.5 tokens/s · 9 prompt + 6 generated tokens · "
               "finish: length (max new tokens reached) · 1.50 s total · seed 7")
    assert format_stats(stats) == english
    assert view.describe() == "reviews.csv: 20 rows · columns: id, review"
    assert file_summary("wide.csv", 1, many).endswith("c29 and 2 more")
    token = LocalContext.request.set(Headers("zh-CN,zh;q=0.9"))
    try:
        assert format_stats(stats) == ("首个 token 0.25 秒 · 12.5 token/秒 · 提示 9 + 生成 6 个 token · "
                                       "结束原因：长度（达到最大新 token 数） · 共 1.50 秒 · 种子 7")
        assert view.describe() == "reviews.csv：20 行 · 列：id, review"
        assert file_summary("wide.csv", 1, many).endswith("c29 等另外 2 列")
    finally:
        LocalContext.request.reset(token)


def test_every_element_id_is_unique(registry) -> None:
    """Ids name one element (the browser tests and the page's CSS find controls by them); Embed's corpus picker
    and its file section's picker once shared "embed-column"."""
    import ui
    from collections import Counter

    counts = Counter(block.elem_id for block in ui.build_app(registry).blocks.values()
                     if getattr(block, "elem_id", None))
    assert [elem_id for elem_id, count in counts.items() if count > 1] == []
