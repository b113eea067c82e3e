"""A Gradio session holds what it changed, not a copy of every component's config (issue 27 item 5).

Gradio's SessionState renders the whole app's component config into each new session (~1.1 MB for this app);
ui/server/session_memory.py renders an entry when it is first read. These tests hold the replacement to the original:
the same attributes, the same config when read in full, updates as Gradio makes them, and the memory it saves,
measured side by side on the real app.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable

import pytest
from gradio import state_holder

import ui
from ui.server import session_memory


@pytest.fixture(scope="module")
def demo(shared_registry):  # noqa: ANN001 - the conftest's Registry
    return ui.build_app(shared_registry)


def _session(demo: Any, init: Callable[..., None]) -> Any:
    session = state_holder.SessionState.__new__(state_holder.SessionState)
    init(session, demo)
    return session


def test_a_lazy_session_is_the_original_when_read(demo: Any) -> None:
    original = _session(demo, session_memory.original_session_init())
    lazy = _session(demo, session_memory._lazy_init)
    assert sorted(vars(lazy)) == sorted(vars(original))
    assert len(lazy.config_values) == len(original.config_values) > 500
    some = next(iter(original.config_values))
    assert some in lazy.config_values and lazy.config_values[some] == original.config_values[some]
    assert dict(lazy.config_values.items()) == original.config_values
    assert list(lazy.components) == list(original.components)  # what the deep-link route reads


def test_updates_land_as_in_the_original(demo: Any) -> None:
    box = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "chat-input")
    for init in (session_memory.original_session_init(), session_memory._lazy_init):
        session = _session(demo, init)
        session._update_value_in_config(box._id, "typed")
        assert session.config_values[box._id]["props"]["value"] == "typed"


def test_a_new_session_costs_a_small_fraction_of_the_original(demo: Any) -> None:
    def per_session(init: Callable[..., None], count: int = 20) -> float:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [_session(demo, init) for _ in range(count)]
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(kept) == count
        return grown / count

    original, lazy = per_session(session_memory.original_session_init()), per_session(session_memory._lazy_init)
    assert original > 500_000  # the whole config: ~1.1 MB here
    assert lazy < original / 5, (lazy, original)


def test_launch_installs_it(demo: Any) -> None:
    session_memory.install_lazy_session_config()
    session = state_holder.SessionState(demo)
    assert isinstance(session.config_values, session_memory.LazyConfig)
