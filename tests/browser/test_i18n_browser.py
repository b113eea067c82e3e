"""The UI in English and Simplified Chinese (issue 20), chosen from the browser's language through Gradio's own
i18n (ui/i18n.py): a zh-CN browser gets Chinese tab names, buttons, labels and statuses, an English one English.
"""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import VIEWPORT, open_app

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


def test_a_chinese_browser_gets_the_chinese_ui(browser: Browser, app_url: str) -> None:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    try:
        check_language(context.new_page(), app_url, CHINESE_TABS, {
            "send": "发送", "system": "系统提示词", "message": "^消息", "context": "上下文", "generate": "生成",
            "text": "文本", "stopped": "已停止。"})
    finally:
        context.close()


def test_an_english_browser_keeps_the_english_ui(page: Page, app_url: str) -> None:
    check_language(page, app_url, ENGLISH_TABS, {
        "send": "Send", "system": "System prompt", "message": "^Message", "context": "Context:",
        "generate": "Generate", "text": "Text", "stopped": "Stopped."})
