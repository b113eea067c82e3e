"""The per-session registry of cancellable UI jobs (ui/jobs.py): one job per session, cancel reaches only it."""

from __future__ import annotations

from ui.jobs import SessionJobs


class Job:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_cancel_reaches_only_that_session_s_job() -> None:
    jobs: SessionJobs[Job] = SessionJobs()
    mine, theirs = jobs.start("a", Job()), jobs.start("b", Job())
    assert jobs.cancel("a")
    assert mine.cancelled and not theirs.cancelled
    assert not jobs.cancel("c")  # nothing runs there


def test_a_new_job_cancels_the_session_s_previous_one_and_finish_forgets_only_its_own() -> None:
    jobs: SessionJobs[Job] = SessionJobs()
    first = jobs.start("a", Job())
    second = jobs.start("a", Job())
    assert first.cancelled and not second.cancelled
    jobs.finish("a", first)  # the old job ending late does not forget the new one
    assert jobs.cancel("a") and second.cancelled
    jobs.finish("a", second)
    assert jobs.running_count() == 0


def test_running_gives_a_flag_that_cancel_sets_and_forgets_it_after() -> None:
    jobs: SessionJobs = SessionJobs()
    with jobs.running(None) as flag:  # logins off: no session hash
        assert not flag.is_set()
        assert jobs.cancel(None)
        assert flag.is_set()
    assert jobs.running_count() == 0 and not jobs.cancel(None)
