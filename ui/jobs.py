"""One registry of cancellable jobs per browser session, for tabs that run long work (a file to classify, an
evaluation): Cancel, or a closed page, stops this user's job and nobody else's, and starting a new job in the
same session cancels the one still running there.

    jobs = SessionJobs()
    with jobs.running(request.session_hash) as cancel:   # a threading.Event the job checks between batches
        ...
    jobs.cancel(request.session_hash)                     # the Cancel button, or the page's unload event

A job is anything with `cancel()` (an evaluation job object), or the `threading.Event` that `running` makes.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Generic, Iterator, Optional, Protocol, TypeVar


class Cancellable(Protocol):
    def cancel(self) -> None: ...


J = TypeVar("J", bound=Cancellable)


class _Flag:
    """A threading.Event as a cancellable job."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def cancel(self) -> None:
        self.event.set()


class SessionJobs(Generic[J]):
    """At most one running job per session (see the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._jobs: dict[str, Cancellable] = {}
        self._lock = threading.Lock()

    def start(self, session: Optional[str], job: J) -> J:
        """Records `job` as this session's, cancelling the session's previous job if it still runs."""
        with self._lock:
            previous = self._jobs.get(session or "")
            self._jobs[session or ""] = job
        if previous is not None and previous is not job:
            previous.cancel()
        return job

    def finish(self, session: Optional[str], job: Cancellable) -> None:
        """Forgets `job` (if it is still this session's: a newer one may have replaced it)."""
        with self._lock:
            if self._jobs.get(session or "") is job:
                del self._jobs[session or ""]

    def cancel(self, session: Optional[str]) -> bool:
        """Cancels this session's job; False when none runs."""
        with self._lock:
            job = self._jobs.get(session or "")
        if job is None:
            return False
        job.cancel()
        return True

    def running_count(self) -> int:
        with self._lock:
            return len(self._jobs)

    @contextmanager
    def running(self, session: Optional[str]) -> Iterator[threading.Event]:
        """A cancel flag for a job run inside the block; the job is forgotten when the block ends."""
        flag = _Flag()
        self.start(session, flag)  # type: ignore[arg-type]
        try:
            yield flag.event
        finally:
            self.finish(session, flag)
