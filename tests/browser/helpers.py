"""Small, DOM-aware helpers shared by the browser tests.

Gradio renders a component's elem_id on a wrapper div; the real input sits inside it (`#chat-input textarea`,
`#chat-max-new-tokens input[type=number]`), while a Button carries the id itself. Chatbot bubbles are
`[data-testid="user"]` / `[data-testid="bot"]` inside the Chatbot's wrapper.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

ROOT = Path(__file__).resolve().parent.parent.parent
# Tests write screenshots to a scratch folder so a test run leaves `git status` clean; set
# WORKBENCH_REFRESH_SCREENSHOTS=1 to refresh the README's copies in docs/screenshots on purpose.
SCREENSHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("WORKBENCH_REFRESH_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "workbench-screenshots")
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1280, "height": 900}
FINISHED = "finish:"  # the stats line of a completed reply says "finish: <reason>"


def screenshot(page: Page, name: str) -> Path:
    """Writes <name>.png to SCREENSHOTS (docs/screenshots, which the README shows, only when refreshing)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


# ------------------------------------------------------------------------------------------ navigation


def open_app(page: Page, url: str) -> None:
    """Loads the app and waits until the Chat tab is interactive."""
    page.goto(url)
    expect(page.locator("#chat-input textarea")).to_be_editable(timeout=TIMEOUT_MS)


def open_tab(page: Page, label: str) -> None:
    tab = page.get_by_role("tab", name=label, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")


def open_params(page: Page, prefix: str) -> None:
    """Opens a tab's "Generation parameters" accordion (closed by default) if it is closed."""
    field = page.locator(f"#{prefix}-max-new-tokens input[type=number]")
    if not field.is_visible():
        page.locator(f"#{prefix}-params > button").click()
    expect(field).to_be_visible()


# --------------------------------------------------------------------------------------------- widgets


def set_number(page: Page, elem_id: str, value: float) -> None:
    """Types into the number box of a gr.Number or gr.Slider and commits it (blur fires the change)."""
    field = page.locator(f"#{elem_id} input[type=number]")
    # A model change resets the parameters asynchronously; on a cold app that reset can land after our
    # typing, so type again until the value holds.
    for _ in range(5):
        field.fill(str(value))
        field.press("Tab")
        try:
            expect(field).to_have_value(str(value), timeout=2_000)
            page.wait_for_timeout(300)
            if field.input_value() == str(value):
                return
        except AssertionError:
            continue
    expect(field).to_have_value(str(value))


def select_option(page: Page, elem_id: str, name: str) -> None:
    """Picks the choice whose visible name contains `name` in a gr.Dropdown (no-op if it is already picked).

    Picking a different model makes the app reset that tab's parameters (asynchronously): set parameters after.
    """
    box = page.locator(f"#{elem_id} input[role=combobox]")
    expect(box).to_be_editable()
    if name in box.input_value():
        return
    box.click()
    page.get_by_role("option").filter(has_text=name).first.click()
    expect(box).to_have_value(re.compile(re.escape(name)))


def expect_choice(page: Page, elem_id: str, name: str, present: bool = True, timeout_s: float = 30.0) -> None:
    """Waits until the gr.Dropdown's list of choices has (or, `present=False`, no longer has) one whose name
    contains `name`: opens the list, reads it, closes it, again until it holds or `timeout_s` passed (a few
    seconds at least: a list that was being re-rendered when clicked may not open at once)."""
    box = page.locator(f"#{elem_id} input[role=combobox]")
    deadline = time.monotonic() + max(timeout_s, 5.0)
    names: list[str] = []
    while True:
        box.blur()  # the list opens when the box gains focus: start unfocused
        box.click()
        options = page.get_by_role("option")
        try:
            expect(options.first).to_be_visible(timeout=3_000)
        except AssertionError:
            opened = False
        else:
            opened, names = True, options.all_inner_texts()
            box.press("Escape")
            box.blur()
        if opened and any(name in option for option in names) == present:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"#{elem_id}: {name!r} {'never appeared in' if present else 'still in'} {names}")
        page.wait_for_timeout(500)


def set_checkbox(page: Page, elem_id: str, checked: bool) -> None:
    box = page.locator(f"#{elem_id} input[type=checkbox]")
    box.set_checked(checked)
    expect(box).to_be_checked(checked=checked)


def textbox(page: Page, elem_id: str) -> Locator:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first


def fill_text(page: Page, elem_id: str, value: str) -> None:
    """Types `value` into a textbox and makes sure it holds: a box just revealed (an accordion opened a moment ago)
    can be given its initial value after our typing, and a click then sent that one (CI saw a test case saved to
    the default suite this way)."""
    box = textbox(page, elem_id)
    for _ in range(5):
        box.fill(value)
        page.wait_for_timeout(300)
        if box.input_value() == value:
            return
    expect(box).to_have_value(value)


def upload_input(page: Page, elem_id: str) -> Locator:
    """The hidden <input type=file> a gr.UploadButton puts right before its button."""
    return page.locator(f"#{elem_id}").locator("xpath=preceding-sibling::input[@type='file'][1]")


# ------------------------------------------------------------------------------------------------ chat


def bubbles(page: Page, role: str) -> Locator:
    """The chat's bubbles of one role: "user" or "bot"."""
    return page.locator(f'#chat-history [data-testid="{role}"]')


def send_chat(page: Page, message: str) -> None:
    textbox(page, "chat-input").fill(message)
    page.locator("#chat-send").click()


def wait_finished(page: Page, stats_id: str, timeout: float = TIMEOUT_MS) -> str:
    """Waits until a stats line reports a finished generation; returns its text."""
    stats = page.locator(f"#{stats_id}")
    expect(stats).to_contain_text(FINISHED, timeout=timeout)
    return stats.inner_text()


def record_texts(page: Page, selector: str) -> None:
    """Starts recording every distinct text the last element matching `selector` shows, as the DOM changes.

    A MutationObserver sees each render, so the test observes streaming as it happens instead of sampling it.
    Read the record with `recorded_texts`.
    """
    page.evaluate(
        """(selector) => {
            window.__seen = [];
            const note = () => {
                const all = document.querySelectorAll(selector);
                const text = all.length ? all[all.length - 1].innerText.trim() : "";
                if (text && window.__seen[window.__seen.length - 1] !== text) window.__seen.push(text);
            };
            window.__observer?.disconnect();
            window.__observer = new MutationObserver(note);
            window.__observer.observe(document.body, {subtree: true, childList: true, characterData: true});
        }""",
        selector,
    )


def recorded_texts(page: Page) -> list[str]:
    return page.evaluate("() => { window.__observer?.disconnect(); return window.__seen || []; }")


def record_shown(page: Page, element_ids: list[str]) -> None:
    """Starts recording which of the elements are shown in each painted frame, as a list of distinct states.

    Sampled once per animation frame, so it sees what the user sees: a state that lasts a few frames (a short
    reply's Stop button) is caught, and a DOM that is half-updated inside one task (never painted) is not.
    Read the record with `recorded_shown`.
    """
    page.evaluate(
        """(ids) => {
            window.__shown = [];
            const token = (window.__shownToken = {});
            const note = () => {
                if (window.__shownToken !== token) return;
                const state = ids.filter((id) => document.getElementById(id)?.checkVisibility() ?? false);
                const last = window.__shown[window.__shown.length - 1];
                if (!last || last.join() !== state.join()) window.__shown.push(state);
                requestAnimationFrame(note);
            };
            note();
        }""",
        element_ids,
    )


def recorded_shown(page: Page) -> list[list[str]]:
    return page.evaluate("() => { window.__shownToken = null; return window.__shown || []; }")


def wait_until_still(locator: Locator, quiet_s: float = 0.75, timeout_s: float = 30.0) -> str:
    """Waits until the locator's text has not changed for quiet_s; returns it (for "has it stopped?")."""
    deadline = time.monotonic() + timeout_s
    last = locator.inner_text()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = locator.inner_text()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"text still changing after {timeout_s} s: {last[-200:]!r}")


# ------------------------------------------------------------------------------------------------- api


def model_status(api: Any, model_id: str) -> dict[str, Any]:
    """The /models API entry of one model (what the server itself reports)."""
    statuses = api.predict(api_name="/models")
    for status in statuses:
        if status["id"] == model_id:
            return status
    raise AssertionError(f"/models has no {model_id!r}: {[s.get('id') for s in statuses]}")
