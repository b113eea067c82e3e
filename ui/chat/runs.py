"""One running reply per browser session: a new Send / Retry / Clear / Stop supersedes the one still streaming.

Why on the server: Gradio's front-end cancel races a new submission of the same event (it may cancel the new
one, or skip it as "already running"), so Send-while-streaming used to be ignored and the trash icon left the
stream repainting the reply. Here every reply registers under its session; starting another, or Stop, marks the
old one superseded, and its generator closes its model stream at its next step and sends nothing more.
"""

from __future__ import annotations

import threading
from typing import Any, Optional


class Run:
    """A reply in progress; `superseded` is set once it should stop and stay silent."""

    def __init__(self) -> None:
        self.superseded = threading.Event()
        self.stopped = False  # superseded by Stop (not by another reply): its generator says so as its last word

    @property
    def cancelled(self) -> bool:
        return self.superseded.is_set()


class Runs:
    """The running reply of each session (by Gradio's session hash)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Run] = {}

    def start(self, session: Optional[str], run: Optional[Run] = None) -> Run:
        """Registers a new reply (`run`, or a plain Run) for `session`, superseding the one it replaces."""
        run = run if run is not None else Run()
        if session is None:  # a caller without a session (a script calling the handler) cannot be superseded
            return run
        with self._lock:
            previous = self._running.get(session)
            self._running[session] = run
        if previous is not None:
            previous.superseded.set()
        return run

    def current(self, session: Optional[str]) -> Optional[Run]:
        """`session`'s running reply, if any (Compare stops one side of it)."""
        with self._lock:
            return self._running.get(session) if session is not None else None

    def finish(self, session: Optional[str], run: Run) -> None:
        with self._lock:
            if session is not None and self._running.get(session) is run:
                del self._running[session]

    def cancel(self, session: Optional[str], stop: bool = False) -> bool:
        """Stops `session`'s running reply; False when none was running (so Stop can say nothing). `stop`: the
        user pressed Stop, so the reply's own stream ends with the stopped status."""
        with self._lock:
            run = self._running.pop(session, None) if session is not None else None
        if run is None:
            return False
        run.stopped = stop
        run.superseded.set()
        return True


RUNS = Runs()  # the app's


def session_of(request: Any) -> Optional[str]:
    """The Gradio session hash of a request (None outside a browser session)."""
    return getattr(request, "session_hash", None) if request is not None else None
