"""How often streamed outputs update: a rate shared by everyone streaming at once.

Every update of a streamed output costs the server work that competes with the model for the same cores and
the GIL: Gradio runs the generator step in a worker thread, post-processes and diffs the output and sends a
server-sent event, and the browser re-renders. One stream updating 20 times a second costs little; 16 streams
doing so are 320 updates a second. On 2 cores, 16 concurrent streams of a 25M-parameter model made 261 tokens/s
in aggregate at 20 updates a second each and 312 at 5 (bench, 2026-11-22). So the rate is a budget: each stream
updates every FASTEST_UPDATE_S while few stream, and less often as more do, keeping the total near
MAX_UPDATES_PER_S. Nothing is lost either way: an update carries everything generated since the last one, and
the end of a stream is always sent at once.

The OpenAI-compatible API (backend/api/streaming.py) spends from the same budget, with no fastest interval of its
own: an API client alone gets every token as its own chunk, and under load each chunk carries the tokens since the
stream's last one. Per chunk the server pays the thread-to-event-loop hop, the JSON, ten ASGI send wrappers and a
socket write; with 16 streams that cost ~16% of the batch thread's time (py-spy), and 16 openai clients got 11%
more tokens/s in aggregate at 80 chunks a second in all than with a chunk per token (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

FASTEST_UPDATE_S = 0.05  # one stream alone: 20 updates a second, smooth to read
MAX_UPDATES_PER_S = 80.0  # all streams together; four streams still get the fastest rate


class UpdateBudget:
    """Counts the streams updating at once and gives each its interval between updates."""

    def __init__(self, fastest_s: float = FASTEST_UPDATE_S, total_per_s: float = MAX_UPDATES_PER_S) -> None:
        self.fastest_s = fastest_s
        self.total_per_s = total_per_s
        self._lock = threading.Lock()
        self._streams = 0

    @property
    def streams(self) -> int:
        return self._streams

    def interval(self, fastest_s: Optional[float] = None) -> float:
        """Seconds between one stream's updates now (`fastest_s`: a stream's own floor instead of the budget's)."""
        return max(self.fastest_s if fastest_s is None else fastest_s, self._streams / self.total_per_s)

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Counts one stream for as long as the block runs (however it ends)."""
        with self._lock:
            self._streams += 1
        try:
            yield
        finally:
            with self._lock:
                self._streams -= 1


UPDATE_BUDGET = UpdateBudget()  # the app's, shared by every tab and API endpoint


class Throttle:
    """True at most once per interval: a fixed `interval`, else the budget's current one (with `fastest_s` as
    this stream's floor, when given). The first call is always due, so the first token shows at once."""

    def __init__(self, interval: Optional[float] = None, budget: UpdateBudget = UPDATE_BUDGET,
                 fastest_s: Optional[float] = None) -> None:
        self.interval = interval
        self.budget = budget
        self.fastest_s = fastest_s
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        interval = self.budget.interval(self.fastest_s) if self.interval is None else self.interval
        if now - self._last >= interval:
            self._last = now
            return True
        return False
