"""Gradio sessions that hold only what they changed, not a copy of the whole app's component config.

Gradio 6.31's `SessionState.__init__` renders `config_for_block` for every block of the app into
`config_values` for each new session: ~1.1 MB per session for this app's ~730 blocks (measured with tracemalloc,
bench/session_memory.py), ~1.1 GB at the 1,000-session cap. That copy serves one thing, the deep-link route
(`/gradio_api/deep_link`, which this app does not offer), and the entries of the components a session updates.
`LazyConfig` renders an entry only when it is first read, and everything when iterated (the deep-link route still
sees every component), so a session costs what it changed. Installed once by `ui.launch` / `ui.build_app`.
"""

from __future__ import annotations

import os
from copy import copy
from typing import Any, Iterator

from gradio import state_holder

_ORIGINAL_INIT = state_holder.SessionState.__init__


class LazyConfig(dict):  # type: ignore[type-arg]  # gradio's config_values: block id -> config dict
    """`config_values` whose entries are rendered on first access (Gradio reads and writes it like a dict)."""

    def __init__(self, blocks_config: Any, ids: Any) -> None:
        super().__init__()
        self._blocks_config = blocks_config
        self._order = list(ids)  # Gradio's own order (the blocks'), kept when everything is read
        self._pending = set(self._order)

    def _render(self, key: int) -> dict[str, Any]:
        self._pending.discard(key)
        value = self._blocks_config.config_for_block(key, [], self._blocks_config.blocks[key])
        super().__setitem__(key, value)
        return value

    def __missing__(self, key: int) -> dict[str, Any]:
        if key in self._pending:
            return self._render(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self._pending

    def __setitem__(self, key: int, value: dict[str, Any]) -> None:
        self._pending.discard(key)
        super().__setitem__(key, value)

    def _render_all(self) -> None:
        for key in list(self._pending):
            self._render(key)

    def _ordered_keys(self) -> list[int]:
        self._render_all()
        known = set(self._order)
        return self._order + [key for key in super().__iter__() if key not in known]

    def items(self) -> Any:
        return [(key, dict.__getitem__(self, key)) for key in self._ordered_keys()]

    def values(self) -> Any:
        return [dict.__getitem__(self, key) for key in self._ordered_keys()]

    def __iter__(self) -> Iterator[int]:
        return iter(self._ordered_keys())

    def __len__(self) -> int:
        return super().__len__() + len(self._pending)


def _lazy_init(self: Any, blocks: Any) -> None:
    """Gradio 6.31's SessionState.__init__, with `config_values` a LazyConfig instead of an eager copy of every
    block's config (tests/test_session_memory.py checks it sets what the original sets, to the same values)."""
    self.blocks_config = copy(blocks.default_config)
    self.config_values = LazyConfig(self.blocks_config,
                                    [key for key in self.blocks_config.blocks if key in blocks.blocks])
    self.state_data = {}
    self._state_ttl = {}
    self.is_closed = False
    self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600


def install_lazy_session_config() -> None:
    """Makes every new Gradio session render its component config lazily (idempotent)."""
    state_holder.SessionState.__init__ = _lazy_init  # type: ignore[method-assign]


def original_session_init() -> Any:
    """Gradio's own SessionState.__init__ (for the test that compares the two)."""
    return _ORIGINAL_INIT
