"""Shutdown semantics per broker x pool (see ``bench/faults/shutdown.py`` and docs/reliability.md).

Each case signals one worker (TERM; TERM then QUIT; QUIT; TERM remapped to QUIT with a soft timeout)
while it is idle, running tasks, or holding an ETA task, and checks: it exits within its bound (0 after
a warm shutdown); nothing completed is back in the broker (only interrupted tasks can run twice); what
is lost is at most what a cold shutdown cancelled after it was acknowledged (nothing with ``acks_late``
or a warm or soft shutdown); no completed task is marked FAILURE (celery#9505). Known deviations are
asserted first, then xfailed naming their upstream issue.
"""

from __future__ import annotations

import re

import pytest

from bench import faults
from bench.ledger import Verdict

pytestmark = pytest.mark.faults

NO_TERMINATE_JOB = (
    "celery#10490: the threads and solo pools have no terminate_job, so a cold shutdown cannot cancel a "
    "running task: threads let it run to the end, solo raises NotImplementedError inside it (the signal "
    "handler runs in the task's thread), so it fails and, acknowledged, is lost even with acks_late"
)
STARTS_AFTER_SIGNAL = (
    "celery#10180 (threads; solo alike here): after the shutdown signal the worker still starts tasks it "
    "had prefetched instead of leaving them to the broker"
)
EARLY_ACK_WINDOW = (
    "cold shutdown without acks_late: a task acknowledged when the pool took it, but not yet started, is "
    "lost (Celery acknowledges just before execution; no upstream issue: documented early-ack behaviour)"
)
CELERY_9505 = "celery#9505: a task that completed during a cold (soft) shutdown is marked FAILURE"
THREADS_COLD_HANG = (
    "threads pool, cold shutdown (intermittent here on RabbitMQ, 2 of 8 cold cases in one run): the worker "
    "logs 'Cold shutdown (MainProcess)' and never exits; no exact upstream issue found, related to "
    "celery#10490 (the threads pool cannot cancel what runs)"
)


def _case_id(case: faults.ShutdownCase) -> str:
    return re.sub(r"[^a-z0-9]+", "-", case.label.lower()).strip("-")


GREEN_NOT_CHARACTERISED = (
    "the gevent and eventlet pools' shutdown semantics are not characterised yet: their first run here "
    "lost 2 running acks_late tasks at an eventlet cold shutdown (QUIT), unexplained; the main job's "
    "reliability section still runs its shutdown cases on them and reports what it sees"
)


@pytest.mark.pools("solo", "prefork", "threads", reason=GREEN_NOT_CHARACTERISED)
@pytest.mark.parametrize("case", faults.SHUTDOWN_CASES, ids=_case_id)
def test_shutdown(pool, fault_broker, no_leaks, case):
    observed = faults.shutdown(fault_broker, pool, case)
    assert not isinstance(observed, faults.Inapplicable), observed.reason
    no_leaks.extend(observed.pids)
    f, row = observed.facts, faults.judge(observed)
    why = f"{row.verdict}: {row.note}\n{observed.log_tail}"
    ids = frozenset(observed.ids)
    lost, hit = ids - f.done_after - f.kept, f.interrupted | f.started_later
    if f.hung and pool == "threads" and case.cold:  # the known symptom, positively
        assert "Cold shutdown" in observed.log_tail and f.exit_code == -9, why
        pytest.xfail(THREADS_COLD_HANG)
    assert not f.hung, why
    assert f.seconds <= case.bound(f.task_seconds), why
    if not case.cold:
        assert f.exit_code == 0, why
    assert observed.tally.unexpected == 0
    assert not (f.kept & f.done_after) - hit, f"a completed task is back in the broker: {why}"
    if f.failure_marked:  # the known symptom: completed, yet FAILURE
        assert f.failure_marked <= f.done_after
        pytest.xfail(CELERY_9505)
    known = _known_deviations(f, lost, hit)
    may_lose = hit if (case.cold and not case.acks_late) or f.errors else frozenset()
    if case.cold and not case.acks_late and (early := lost - may_lose):
        # Intermittent (threads and prefork, 1 of ~48 cases a run): a task the pool had taken and
        # acknowledged (early ack) but not yet started is gone at a cold shutdown. Lost means neither
        # done nor back in the broker, i.e. acknowledged: the docs' early-ack window, which the judge
        # does not yet tell apart. Positively: none of them ever started.
        assert not any(observed.starts(i) for i in early), why
        pytest.xfail(f"{EARLY_ACK_WINDOW}; {len(early)} here")
    assert lost <= may_lose, f"lost what the shutdown should have put back: {why}"
    if not known:
        assert row.verdict is Verdict.OK, why
        return
    assert row.verdict is Verdict.DEVIATION
    pytest.xfail("; ".join(known))


def _known_deviations(f: faults.ShutdownFacts, lost: frozenset[str], hit: frozenset[str]) -> list[str]:
    """The known symptoms present, each checked positively; anything else fails the test."""
    known = []
    if f.errors:
        assert f.errors == {"NotImplementedError"}, f.errors
        assert lost <= hit
        known.append(NO_TERMINATE_JOB)
    elif f.cancels and f.interrupted & f.done_after:
        known.append(NO_TERMINATE_JOB)
    if f.started_later:
        assert f.started_later <= f.started_after
        known.append(STARTS_AFTER_SIGNAL)
    return known
