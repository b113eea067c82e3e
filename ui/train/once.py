"""One click, one run: the server side of the Train tab's Start button (issue 28).

A double click on Start started two runs: the second queued behind the first, the tab followed the second, and
Stop stopped that one while the first trained unseen to the end. The button is busy while a start is in flight
(ui/train/tab.py), and behind it this guard refuses a second start from the same page while one is starting,
or within a moment after it (the second click of a double click on a fast server, whose first start was done
before the second click arrived).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from backend.core.error_codes import refuse

DOUBLE_CLICK_S = 2.0  # a second start this soon after the last one from the same page is a double click


class OneStartAtATime:
    """Starts keyed by their page (Gradio's session hash): one in flight per key, and none within `window_s`
    after the last one ended. Other pages are not held up."""

    def __init__(self, window_s: float = DOUBLE_CLICK_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._starting: set[str] = set()
        self._ended: dict[str, float] = {}  # key -> when its last start ended

    @contextmanager
    def starting(self, key: str) -> Iterator[None]:
        """Holds `key` while the body starts a run; raises the `train_start_twice` refusal when it cannot."""
        with self._lock:
            now = self._clock()
            ended = self._ended.get(key)
            if key in self._starting or (ended is not None and now - ended < self.window_s):
                raise refuse("train_start_twice", "start")
            self._starting.add(key)
            # Forget pages whose last start is long past (the table stays as small as the pages starting now).
            self._ended = {k: t for k, t in self._ended.items() if now - t < self.window_s}
        try:
            yield
        finally:
            with self._lock:
                self._starting.discard(key)
                self._ended[key] = self._clock()
