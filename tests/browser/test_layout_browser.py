"""Layout at desktop and phone widths (issue 20): buttons keep a button's height, a dropdown's text stops before
its arrow, empty tables show no "1 2 3" headers, the chat's settings come before the conversation on a phone,
and the Models table shows each model's state without scrolling sideways."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser.helpers import open_app, open_tab, textbox

PHONE = {"width": 390, "height": 844}
BUTTON_MAX_PX = 70  # a button, not a 90-260 px slab


def dropdown_text_room(page, elem_id: str) -> tuple[float, float]:
    """(where the dropdown's text area ends, where its arrow starts), in page pixels."""
    return page.evaluate("""(id) => {
        const input = document.querySelector(`#${id} input[role=combobox]`);
        const arrow = document.querySelector(`#${id} .icon-wrap`);
        const box = input.getBoundingClientRect();
        return [box.right - parseFloat(getComputedStyle(input).paddingRight), arrow.getBoundingClientRect().left];
    }""", elem_id)


def test_desktop_buttons_dropdowns_and_empty_tables(page, app_url) -> None:
    open_app(page, app_url)
    textbox(page, "chat-input").fill("a line\n" * 11)  # the message box grows; Send must not grow with it
    assert page.locator("#chat-send").bounding_box()["height"] <= BUTTON_MAX_PX
    text_end, arrow = dropdown_text_room(page, "chat-model")
    assert text_end <= arrow + 1, (text_end, arrow)
    open_tab(page, "Models")
    for button in ("#models-load", "#models-unload", "#models-refresh"):
        assert page.locator(button).bounding_box()["height"] <= BUTTON_MAX_PX, button
    open_tab(page, "Evaluate")
    expect(page.locator("#eval-preview table")).to_be_attached()
    expect(page.locator("#eval-preview thead")).to_be_hidden()  # no data yet: no "1 2 3" headers


def test_phone_puts_chat_settings_first_and_shows_model_state(browser: Browser, app_url) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        open_app(page, app_url)
        model = page.locator("#chat-model").bounding_box()
        system = page.locator("#chat-system").bounding_box()
        conversation = page.locator("#chat-history").bounding_box()
        assert model["y"] < conversation["y"] and system["y"] < conversation["y"]
        text_end, arrow = dropdown_text_room(page, "chat-model")
        assert text_end <= arrow + 1, (text_end, arrow)
        page.get_by_role("button", name="More tabs").click()  # a phone shows the first tabs, the rest in a menu
        page.locator(".overflow-dropdown button").filter(has_text="Models").click()
        header = page.locator("#models-table [role=columnheader]").filter(has_text="state").first
        expect(header).to_be_visible()
        box = header.bounding_box()
        assert box["x"] + box["width"] <= PHONE["width"], box  # in view without scrolling sideways
    finally:
        context.close()


def test_a_charts_colour_legend_is_whole(page, app_url) -> None:
    """Issue 28: under its label, a chart took its block's whole height, so the bottom of the chart, its colour
    legend, was cut off below the legend's title ("series") and the lines could not be told apart."""
    open_app(page, app_url)
    open_tab(page, "Train")
    plot = page.locator("#train-plot")
    plot.scroll_into_view_if_needed()
    entries = plot.locator(".role-legend-label text")  # "train loss", "eval loss" (both there before a run)
    expect(entries).to_have_count(2)
    block = plot.bounding_box()
    for entry in entries.all():
        box = entry.bounding_box()
        assert box is not None and box["y"] + box["height"] <= block["y"] + block["height"], (box, block)
