"""One registry of cancellable UI jobs, keyed by browser session, for every tab that runs a long job.

A tab starts a job with the session's hash and a way to cancel it; the Cancel button (and the page's unload)
cancels that session's job and nobody else's. One job per session: starting a second one cancels the first,
so a reloaded page or a double click never leaves an orphan computing for nobody. Entries are removed when their
job ends, so the registry holds only what is running.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import gradio as gr

Cancel = Callable[[], None]


class _Entry:
    """One running job: its cancel action (identity matters: `finish` removes only its own entry)."""

    __slots__ = ("cancel",)

    def __init__(self, cancel: Cancel) -> None:
        self.cancel = cancel


class SessionJobs:
    """The running job of each browser session, thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def start(self, session: str, cancel: Cancel) -> _Entry:
        """Registers a job for `session` (cancelling the one it replaces); pass the result to `finish`."""
        entry = _Entry(cancel)
        with self._lock:
            previous = self._entries.get(session)
            self._entries[session] = entry
        if previous is not None:
            previous.cancel()  # outside the lock: a cancel may take a lock of its own
        return entry

    def finish(self, session: str, entry: _Entry) -> None:
        """Forgets `entry` if it is still the session's job (a newer job of the session stays)."""
        with self._lock:
            if self._entries.get(session) is entry:
                del self._entries[session]

    def cancel(self, session: str) -> bool:
        """Cancels the session's job; False when it has none running."""
        with self._lock:
            entry = self._entries.get(session)
        if entry is None:
            return False
        entry.cancel()
        return True

    def running(self, session: str) -> bool:
        with self._lock:
            return session in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @contextmanager
    def job(self, session: str, cancel: Optional[Cancel] = None) -> Iterator[threading.Event]:
        """`with jobs.job(session) as flag:` registers a job whose cancel sets `flag` (and calls `cancel`)."""
        flag = threading.Event()

        def stop() -> None:
            flag.set()
            if cancel is not None:
                cancel()

        entry = self.start(session, stop)
        try:
            yield flag
        finally:
            self.finish(session, entry)

    def cancel_handler(self) -> Callable[..., None]:
        """An event handler (Cancel button, page unload) that cancels the calling session's job."""
        def cancel_run(request: gr.Request) -> None:
            self.cancel(request.session_hash or "")

        return cancel_run
