"""ui/common/jobs.py: the one registry of cancellable UI jobs (per browser session) that Classify and Evaluate share."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from ui.common.jobs import SessionJobs


def test_cancel_reaches_only_the_sessions_own_job_and_entries_go_when_done() -> None:
    jobs = SessionJobs()
    cancelled: list[str] = []
    alice = jobs.start("alice", lambda: cancelled.append("alice"))
    bob = jobs.start("bob", lambda: cancelled.append("bob"))
    assert len(jobs) == 2 and jobs.running("alice")
    assert jobs.cancel("alice") and cancelled == ["alice"]
    assert not jobs.cancel("carol")  # nothing running there
    jobs.finish("alice", alice)
    jobs.finish("bob", bob)
    assert len(jobs) == 0 and not jobs.cancel("bob") and cancelled == ["alice"]


def test_a_second_job_of_a_session_cancels_the_first_and_the_first_cannot_remove_it() -> None:
    jobs = SessionJobs()
    first_flag, second_flag = threading.Event(), threading.Event()
    first = jobs.start("tab", first_flag.set)
    second = jobs.start("tab", second_flag.set)
    assert first_flag.is_set() and not second_flag.is_set()  # one job per session
    jobs.finish("tab", first)  # the replaced job ending late must not forget the new one
    assert jobs.running("tab")
    assert jobs.cancel("tab") and second_flag.is_set()
    jobs.finish("tab", second)
    assert not jobs.running("tab")


def test_job_context_and_cancel_handler_set_the_flag() -> None:
    jobs = SessionJobs()
    extra: list[int] = []
    handler = jobs.cancel_handler()
    with jobs.job("s1", cancel=lambda: extra.append(1)) as flag:
        assert not flag.is_set()
        handler(SimpleNamespace(session_hash="other"))
        assert not flag.is_set()
        handler(SimpleNamespace(session_hash="s1"))
        assert flag.is_set() and extra == [1]
    assert not jobs.running("s1")
