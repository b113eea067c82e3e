"""The Generate tab's handlers without a browser (issue 28): an empty text starts nothing and says why, and the
text box is read-only while a completion streams into it (what was typed meanwhile was overwritten), editable
again at the end and on Stop."""

from __future__ import annotations

import gradio as gr
import pytest


@pytest.fixture(scope="module")
def generate_tab(shared_registry):
    from ui.generate.tab import GenerateTab

    with gr.Blocks() as demo:
        tab = GenerateTab.build(shared_registry)
    return demo, tab


def form(tab, text: str) -> dict:
    params = tab.params
    return {tab.model: "tiny-chat", tab.prompt: text, tab.show_probs: False, tab.last: None,
            params.max_new_tokens: 6, params.temperature: 0.0, params.top_p: 1.0, params.top_k: 0,
            params.repetition_penalty: 1.0, params.seed: 1, params.stop: ""}


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_an_empty_text_starts_nothing_and_says_why(generate_tab, text) -> None:
    _, tab = generate_tab
    for handler in (tab.generate, tab.extend):
        updates = handler(form(tab, text))
        with pytest.raises(gr.Error, match="Type some text first"):
            next(updates)  # refused before anything is shown or started


def test_the_text_box_is_read_only_while_the_completion_streams(generate_tab) -> None:
    _, tab = generate_tab
    updates = list(tab.generate(form(tab, "Once upon a time")))
    first, last = updates[0][0], updates[-1][0]
    assert first["interactive"] is False and first["value"] == "Once upon a time"
    assert all(isinstance(update[0], str) for update in updates[1:-1])  # the text only: still read-only
    assert last["interactive"] is True and last["value"].startswith("Once upon a time")


def test_stop_gives_the_text_box_back(generate_tab) -> None:
    demo, tab = generate_tab
    stopped = [fn for fn in demo.fns.values() if tab.prompt in fn.outputs and fn.name == "<lambda>"]
    assert len(stopped) == 1, [fn.name for fn in demo.fns.values()]
    status, prompt = stopped[0].fn()
    assert prompt["interactive"] is True and "status_stopped" in str(status)


def test_an_out_of_range_parameter_is_refused_naming_its_field(generate_tab) -> None:
    """Issue 28: the parameter sliders refuse a value outside their range (an API caller's; the browser sets a
    typed one to the bound and says so) by the field's name, where Gradio said "Value -5 is less than minimum
    value 0.0"."""
    _, tab = generate_tab
    params = tab.params
    for slider, bad, said in ((params.temperature, -5, "Temperature must be between 0 and 2, got -5"),
                              (params.top_p, 2, "Top p must be between 0.05 and 1, got 2"),
                              (params.max_new_tokens, 0, "Max new tokens must be between 1 and")):
        with pytest.raises(gr.Error, match=said):
            slider.preprocess(bad)
    assert params.temperature.preprocess(1.5) == 1.5
    assert type(params.temperature) is gr.Slider and params.temperature.get_config()["elem_id"] == "gen-temperature"
