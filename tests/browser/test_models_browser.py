"""Models tab in a real browser: a model used by Chat shows as loaded; Unload unloads it (server-side too)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.helpers import (
    model_status,
    open_app,
    open_params,
    open_tab,
    screenshot,
    select_option,
    send_chat,
    set_number,
    wait_finished,
)
from tests.tiny_models import CHAT_ID

CHAT_NAME = "Tiny chat"  # the dropdowns show models' display names


def state_cell(page, model_id: str):
    """The "state" cell of a model's row in the Models table (a Gradio 6 Dataframe renders an ARIA grid)."""
    expect(page.locator("#models-table [role=columnheader]").first).to_be_visible()
    headers = [text.strip() for text in page.locator("#models-table [role=columnheader]").all_inner_texts()]
    column = headers.index("state")
    row = page.locator("#models-table [role=row]").filter(has_text=model_id).first
    return row.locator(f'[role=gridcell][data-col="{column}"]')


def test_models_tab_shows_loaded_and_unloads(page, app_url, api):
    open_app(page, app_url)
    select_option(page, "chat-model", CHAT_NAME)
    open_params(page, "chat")
    set_number(page, "chat-max-new-tokens", 8)
    send_chat(page, "Hello!")
    wait_finished(page, "chat-stats")

    open_tab(page, "Models")
    page.locator("#models-refresh").click()
    expect(state_cell(page, CHAT_ID)).to_have_text("loaded")
    screenshot(page, "models")

    select_option(page, "models-select", CHAT_ID)
    page.locator("#models-unload").click()
    expect(state_cell(page, CHAT_ID)).to_have_text("unloaded")
    assert model_status(api, CHAT_ID)["state"] == "unloaded"
