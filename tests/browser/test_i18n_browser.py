"""The UI in English and Simplified Chinese (issue 20), chosen from the browser's language through Gradio's own
i18n (ui/i18n/core.py): a zh-CN browser gets Chinese tab names, buttons, labels, choices, statuses and error toasts in
every tab and in presenter mode (table headers too, worded on the server), an English one English. One page per
language walks every tab.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import TIMEOUT_MS, VIEWPORT, open_app, textbox
from tests.browser.test_presenter_browser import presenter_url  # noqa: F401  (the presenter app fixture)

ENGLISH_TABS = ["Chat", "Compare", "Generate", "Classify", "Tasks", "Evaluate", "Data", "Train", "Models"]
CHINESE_TABS = ["聊天", "对比", "生成", "分类", "任务", "评估", "数据", "训练", "模型"]


def top_tabs(page: Page) -> list[str]:
    """The names of the app's top-level tabs, in order."""
    return page.evaluate("""() => [...document.querySelector('#tab-chat').closest('.tabs')
        .querySelector('[role=tablist]').querySelectorAll('[role=tab]')].map(tab => tab.innerText.trim())""")


def check_language(page: Page, url: str, tabs: list[str], words: dict[str, str]) -> None:
    open_app(page, url)
    assert top_tabs(page)[:len(tabs)] == tabs
    expect(page.locator("#chat-send")).to_have_text(words["send"])
    expect(page.locator("#chat-system")).to_contain_text(words["system"])
    expect(page.locator("#chat-input textarea")).to_have_attribute("placeholder", re.compile(words["message"]))
    expect(page.locator("#chat-context")).to_contain_text(words["context"])  # worded on the server
    page.get_by_role("tab", name=tabs[2], exact=True).click()
    expect(page.locator("#gen-run")).to_have_text(words["generate"])
    expect(page.locator("#gen-prompt")).to_contain_text(words["text"])
    page.locator("#gen-stop-btn").click()
    expect(page.locator("#gen-stats")).to_have_text(words["stopped"])  # a status a handler returns


def open_top_tab(page: Page, name: str) -> None:
    tab = page.get_by_role("tab", name=name, exact=True).first
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")


def check_tabs_in_chinese(page: Page) -> None:
    """Each tab's inner controls: buttons, labels, tooltips, placeholders and choices (the page is on Generate)."""
    open_top_tab(page, "对比")
    expect(page.locator("#compare-send")).to_have_text("发给所有模型")
    expect(textbox(page, "compare-input")).to_have_attribute("placeholder", re.compile("^一条消息"))
    expect(page.locator("#compare-model-a")).to_contain_text("模型 A")

    open_top_tab(page, "分类")
    expect(page.locator("#classify-run")).to_have_text("分类")
    expect(page.locator("#classify-mode")).to_contain_text("模式")
    expect(page.locator("#classify-mode")).to_contain_text("有监督")  # a radio choice
    expect(page.locator("#classify-batch-size")).to_contain_text("每次前向计算的文本数")  # a tooltip (info)
    expect(page.get_by_role("tab", name="整个文件", exact=True)).to_be_visible()

    open_top_tab(page, "任务")
    expect(page.get_by_role("tab", name="问答", exact=True)).to_be_visible()
    expect(page.locator("#ner-run")).to_have_text("查找实体")
    expect(page.locator("#ner-aggregation")).to_contain_text("聚合方式")
    expect(page.locator("#ner-file-box")).to_contain_text("对整个文件运行")

    open_top_tab(page, "评估")
    expect(page.locator("#eval-run")).to_have_text("运行评估")
    expect(page.locator("#eval-task")).to_contain_text("困惑度")
    expect(page.locator("#eval-data-info")).to_have_text("上传文件、填写 Hub 数据集，或选择已保存的数据集。")
    expect(page.locator("#eval-past-runs")).to_contain_text("历史运行")
    # An error toast: Run with no data is refused in Chinese (ui/i18n/error_words.py, from Accept-Language).
    page.locator("#eval-run").click()
    expect(page.locator(".toast-body").first).to_contain_text("请先上传 CSV、JSONL 或 Parquet 文件", timeout=TIMEOUT_MS)
    expect(page.locator(".toast-body").first).not_to_contain_text("upload")
    expect(page.locator(".toast-title").first).to_have_text("错误")  # Gradio's own word, renamed in the page

    open_top_tab(page, "数据")
    expect(page.locator("#data-run")).to_have_text("处理并保存")
    expect(page.locator("#data-clean")).to_contain_text("删除空行")  # a checkbox choice
    expect(page.locator("#data-name")).to_contain_text("保存为")

    open_top_tab(page, "训练")
    expect(page.locator("#train-start")).to_have_text("开始")
    expect(page.locator("#train-method")).to_contain_text("全量")
    expect(page.locator("#train-base")).to_contain_text("注册表中有本地权重的模型")
    # Table headers are worded on the server (Gradio translates none): the past runs are listed on page load.
    expect(page.locator("#train-runs")).to_contain_text("基础模型")

    open_top_tab(page, "模型")
    expect(page.locator("#models-load")).to_have_text("加载")
    expect(page.locator("#models-unload")).to_have_text("卸载")
    expect(page.locator("#models-table")).to_contain_text("模型注册表")
    expect(page.locator("#models-table [role=columnheader]").nth(1)).to_have_attribute("title", "状态")  # on opening
    # A line with numbers, worded on the server in the request's language (say, ui/i18n/core.py).
    page.locator("#models-load").click()
    expect(page.locator("#models-message")).to_contain_text("已加载到", timeout=TIMEOUT_MS)
    expect(page.locator("body")).not_to_contain_text("__i18n__")  # no untranslated marker anywhere


def test_a_chinese_browser_gets_the_chinese_ui(browser: Browser, app_url: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    try:
        page = context.new_page()
        check_language(page, app_url, CHINESE_TABS, {
            "send": "发送", "system": "系统提示词", "message": "^消息", "context": "上下文", "generate": "生成",
            "text": "文本", "stopped": "已停止。"})
        expect(page.locator("#gen-token-count")).to_contain_text("个 token")
        check_tabs_in_chinese(page)
        # An upload's summary line is worded on the server, in the browser's language.
        reviews = tmp_path / "reviews.csv"
        reviews.write_text("id,review\n1,good\n2,bad\n3,fine\n", encoding="utf-8")
        open_top_tab(page, "分类")
        page.get_by_role("tab", name="整个文件", exact=True).click()
        page.locator("#classify-file input[type=file]").set_input_files(str(reviews))
        expect(page.locator("#classify-file-info")).to_have_text("reviews.csv：3 行 · 列：id, review",
                                                                 timeout=TIMEOUT_MS)
    finally:
        context.close()


def test_presenter_mode_in_chinese(browser: Browser, presenter_url: str) -> None:  # noqa: F811
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(presenter_url)
        expect(textbox(page, "chat-input")).to_have_attribute("placeholder", "问点什么…", timeout=TIMEOUT_MS)
        expect(page.locator("#presenter-reset")).to_have_text("↺  新对话")
        expect(page.locator("#chat-send")).to_have_text("发送")
        expect(page.locator("#presenter-examples")).to_contain_text("试试这些")
        expect(page.locator("#presenter-header")).to_contain_text("驱动模型：")
        expect(page.locator("body")).not_to_contain_text("__i18n__")
    finally:
        context.close()


def test_an_english_browser_keeps_the_english_ui(page: Page, app_url: str) -> None:
    check_language(page, app_url, ENGLISH_TABS, {
        "send": "Send", "system": "System prompt", "message": "^Message", "context": "Context:",
        "generate": "Generate", "text": "Text", "stopped": "Stopped."})
    open_top_tab(page, "Evaluate")
    expect(page.locator("#eval-run")).to_have_text("Run evaluation")
    expect(page.locator("#eval-task")).to_contain_text("Perplexity")
    page.locator("#eval-run").click()  # refused: no data
    expect(page.locator(".toast-body").first).to_contain_text("Upload a CSV, JSONL or Parquet file", timeout=TIMEOUT_MS)
    expect(page.locator(".toast-title").first).to_have_text("Error")
    open_top_tab(page, "Data")
    expect(page.locator("#data-clean")).to_contain_text("Drop empty rows")
    expect(page.locator("body")).not_to_contain_text("__i18n__")
