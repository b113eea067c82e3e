"""The Data tab's wiring and charts without a browser (issue 28): the label-balance and length charts count from
0, and building SFT from chat exports has a name box of its own."""

from __future__ import annotations

import gradio as gr


def _inputs_of(demo: gr.Blocks, fn_name: str) -> list[str]:
    """The elem_ids of the inputs of the event whose function is `fn_name`."""
    found = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == fn_name]
    assert len(found) == 1, [getattr(fn.fn, "__name__", "") for fn in demo.fns.values()]
    return [block.elem_id for block in found[0].inputs]


def test_count_charts_start_at_zero_and_conversations_have_their_own_name(shared_registry) -> None:
    from ui.data.tab import DataTab

    with gr.Blocks() as demo:
        tab = DataTab.build(shared_registry)
    # A y axis from the smallest count drew no bar for a label with the fewest rows (one row: none at all).
    for plot in (tab.labels_plot, tab.length_plot):
        assert plot.y_lim is not None and plot.y_lim[0] == 0, plot.y_lim
    # Ratings and chat exports each save under their own name (they shared the ratings' box, silently).
    assert _inputs_of(demo, "build_feedback") == ["data-feedback-kind", "data-feedback-name"]
    assert _inputs_of(demo, "build_from_conversations") == ["data-chat-files", "data-chat-name"]
