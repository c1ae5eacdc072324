"""Fault injection with loss accounting, on every selected pool (see docs/reliability.md).

Each test runs one scenario of ``bench.faults`` against real workers and a real (private) Redis, then
checks the observation's typed fields (the ledger's counts, what Celery reported, where each id was),
the judged verdict, and that no process was left behind. No assertion reads a note: notes are prose
for the report (``faults.judge``); they only appear here as failure messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from bench import defaults, faults
from bench.ledger import Verdict
from tests.faults.conftest import assert_no_leaks, harness_pids

pytestmark = pytest.mark.faults

F = TypeVar("F")


STALL = (
    "celery#8990, celery#10205: after the broker came back the worker stayed connected but consumed "
    "nothing for FAULT_STALL_TIMEOUT (intermittent); a replacement worker ran what was left"
)


def _check(
    observed: faults.Observation[F] | faults.Inapplicable, no_leaks: list[int]
) -> faults.Observation[F]:
    assert not isinstance(observed, faults.Inapplicable), observed.reason
    no_leaks.extend(observed.pids)
    return observed


def _note(observed: faults.Observation[Any]) -> str:
    """The judged row's verdict and note, for a failure message."""
    row = faults.judge(observed)
    return f"{row.verdict}: {row.note}"


# -- 1 ---------------------------------------------------------------------------------------------------
PACED = (
    "celery#10500 (merged for 5.7; no issue reports this yet): a gevent or eventlet worker on RabbitMQ "
    "drains the event dispatcher's idle connection for 0.1 s (_quick_drain) after every synloop turn, and "
    "a turn delivers one message, so it runs at most ~10 tasks/s with the default broker_heartbeat; "
    "broker_heartbeat=0 avoids it"
)


def test_no_faults_under_load(pool, broker_kind, fault_broker, no_leaks):
    # Where Celery paces the worker (PACED), the load runs with the workaround; the pace is shown below.
    paced = faults.paced(broker_kind, pool, faults.WorkerSettings())
    celery = faults.HEARTBEAT_OFF if paced else ()
    obs = _check(faults.no_faults(fault_broker, pool, count=faults.LOAD_TASKS, celery=celery), no_leaks)
    tally = obs.tally
    assert obs.settled, _note(obs)
    assert tally.enqueued == faults.LOAD_TASKS and tally.publish_errors == 0
    assert (tally.lost, tally.duplicated, tally.unexpected) == (0, 0, 0), tally
    assert obs.queued_after == 0
    assert faults.judge(obs).verdict is Verdict.OK
    if paced:
        _paced_by_synloop(pool, fault_broker, no_leaks, unpaced=obs)


def _paced_by_synloop(pool: str, fault_broker, no_leaks: list[int], *, unpaced) -> None:
    """The default settings' symptom, positively, then the strict xfail: a short load runs once each and
    loses nothing, but at the synloop's pace, several times slower than the same worker without heartbeat
    drained the whole load; else it is a failure (a fix upstream shows here)."""
    obs = _check(faults.no_faults(fault_broker, pool, count=defaults.PACED_LOAD_TASKS), no_leaks)
    tally = obs.tally
    assert obs.settled and (tally.lost, tally.duplicated, tally.unexpected) == (0, 0, 0), _note(obs)
    assert faults.paced_by_synloop(obs), f"not paced: {_note(obs)}"
    paced_rate = defaults.PACED_LOAD_TASKS / obs.settle_seconds
    assert faults.LOAD_TASKS / unpaced.settle_seconds >= 3 * paced_rate, _note(unpaced)
    assert faults.judge(obs).verdict is Verdict.DEVIATION
    pytest.xfail(f"{PACED}; {paced_rate:.1f} tasks/s here")


# -- 2 ---------------------------------------------------------------------------------------------------
@pytest.mark.pools("prefork")
def test_child_killed_default_settings_fails_with_worker_lost(pool, fault_broker, no_leaks):
    obs = _check(faults.child_killed(fault_broker, pool, acks_late=False), no_leaks)
    f = obs.facts
    assert (f.state, f.error) == ("FAILURE", "WorkerLostError"), _note(obs)
    assert obs.starts(f.task_id) == 1, "the default settings must not redeliver a task whose child died"
    assert obs.tally.lost == 1
    assert f.worker_alive and f.child_replaced
    assert faults.judge(obs).verdict is Verdict.OK


@pytest.mark.pools("prefork")
def test_child_killed_acks_late_reject_on_worker_lost_redelivers(pool, fault_broker, no_leaks):
    obs = _check(faults.child_killed(fault_broker, pool, acks_late=True), no_leaks)
    f = obs.facts
    assert f.state == "SUCCESS", _note(obs)
    assert obs.starts(f.task_id) == 2, "the task must run again after its child was killed"
    assert (obs.tally.lost, obs.tally.duplicated) == (0, 1)
    assert f.worker_alive and f.child_replaced
    assert faults.judge(obs).verdict is Verdict.OK


@pytest.mark.pools("solo", "threads", "gevent", "eventlet")
def test_child_kill_does_not_apply_without_pool_children(pool, fault_broker):
    observed = faults.child_killed(fault_broker, pool, acks_late=True)
    assert isinstance(observed, faults.Inapplicable) and observed.pool == pool
    assert faults.judge(observed).verdict is Verdict.NA


# -- 3 ---------------------------------------------------------------------------------------------------
SOLO_ACKS_AFTER_BODY = (
    "celery#3430: the solo pool acknowledges after the task body (the ack is queued on the event loop the "
    "task blocks), so a task running at the crash is redelivered, not lost as the task_acks_late docs say "
    "(acknowledged just before execution)"
)
NO_RESTORE_SWEEP = (
    "celery#4976 (open; gevent pool, Redis): a gevent or eventlet worker never runs kombu's restore_visible "
    "sweep (synloop: kombu sweeps only after a poll with no event, and the BRPOP's own 1 s timeout reply is "
    "one), so what a dead worker held stays in 'unacked' past the visibility timeout, and a countdown task "
    "is not redelivered as the Redis caveat (kombu#337) documents"
)


def _held_for_good(obs: faults.Observation[Any], stuck: frozenset[str]) -> None:
    """The known symptom on a pool without the restore sweep, positively, then the strict xfail: some of
    what the broker held at the kill is still held, the run never settled; else it is a failure."""
    assert stuck and stuck <= obs.facts.snapshot.held and not obs.settled, _note(obs)
    assert faults.judge(obs).verdict is Verdict.DEVIATION
    pytest.xfail(NO_RESTORE_SWEEP)


BRPOP_AT_KILL = (
    "kombu#1733 / kombu#305: a message popped by BRPOP just before the SIGKILL was never written to "
    "'unacked', so nothing can restore it"
)


def test_worker_killed_with_acks_late_loses_nothing(pool, broker_kind, fault_broker, no_leaks):
    obs = _check(faults.worker_killed(fault_broker, pool, acks_late=True), no_leaks)
    snap, stuck, tally = obs.facts.snapshot, obs.facts.stuck, obs.tally
    assert tally.unexpected == 0
    assert snap.interrupted, "the kill must interrupt at least one running task"
    assert snap.interrupted <= snap.held, "acks_late: a running task is not acknowledged yet"
    if broker_kind == "redis" and pool in faults.NO_RESTORE_SWEEP:  # RabbitMQ needs no sweep
        _held_for_good(obs, stuck)
    assert not stuck, f"held past the visibility timeout, never restored: {_note(obs)}"
    if broker_kind == "redis" and obs.lost_ids and obs.lost_ids <= snap.popped_unseen:
        pytest.xfail(f"{BRPOP_AT_KILL}; lost {len(obs.lost_ids)} here")
    assert tally.lost == 0, _note(obs)
    assert snap.interrupted <= obs.twice, "every interrupted task must run again"
    # Only what the broker still held may run again: the interrupted tasks, and completed ones whose late
    # ack had not reached Redis at the kill (at most the worker's prefetch window).
    assert obs.twice <= snap.held, _note(obs)
    assert len(snap.held) <= obs.reserve_window, "the worker held more than its prefetch window"
    assert obs.settled and obs.recovery_seconds is not None, _note(obs)
    assert faults.judge(obs).verdict is Verdict.OK


def test_worker_killed_without_acks_late_loses_the_running_tasks(pool, broker_kind, fault_broker, no_leaks):
    obs = _check(faults.worker_killed(fault_broker, pool, acks_late=False), no_leaks)
    snap, stuck, tally = obs.facts.snapshot, obs.facts.stuck, obs.tally
    assert tally.unexpected == 0
    assert snap.interrupted, "the kill must interrupt at least one running task"
    if broker_kind == "redis" and pool in faults.NO_RESTORE_SWEEP:  # RabbitMQ needs no sweep
        _held_for_good(obs, stuck)
    assert not stuck, f"held past the visibility timeout, never restored: {_note(obs)}"
    # What the broker still had (queued or held unacknowledged) runs; only a task started but not yet
    # acknowledged at the kill (the ack goes through the event loop) runs twice.
    assert obs.twice == snap.held & snap.started, _note(obs)
    assert not (snap.held | snap.queued) & obs.lost_ids, _note(obs)
    assert obs.settled and obs.recovery_seconds is not None, _note(obs)
    if pool in faults.ACKS_AFTER_THE_BODY:
        # The known symptom, positively: every running task was still unacknowledged, ran again, none lost.
        assert snap.interrupted <= snap.held and snap.interrupted <= obs.twice, _note(obs)
        assert not obs.lost_ids, _note(obs)
        assert faults.judge(obs).verdict is Verdict.DEVIATION
        pytest.xfail(SOLO_ACKS_AFTER_BODY)
    # At most once: a task acknowledged before it completed is gone, and a running one was acknowledged
    # (the scenario kills only once one was).
    assert obs.lost_ids == snap.acknowledged, _note(obs)
    assert snap.interrupted & snap.acknowledged, "no running task was acknowledged before the kill"
    assert faults.judge(obs).verdict is Verdict.OK


# -- 4 ---------------------------------------------------------------------------------------------------
def test_warm_shutdown_loses_nothing(pool, fault_broker, no_leaks):
    obs = _check(faults.warm_shutdown(fault_broker, pool), no_leaks)
    f = obs.facts
    assert f.exit_code == 0, _note(obs)
    assert f.interrupted, "the stop must come while a task runs"
    assert f.finished == f.interrupted, "running tasks must finish before the worker exits"
    assert (obs.tally.lost, obs.tally.duplicated) == (0, 0), _note(obs)
    assert obs.settled, _note(obs)
    assert faults.judge(obs).verdict is Verdict.OK


# -- 5 ---------------------------------------------------------------------------------------------------
RESTART_CRASH = (
    "kombu#582 / celery#10205 family (intermittent; seen on threads, 2 of about 12 restarts, and on "
    "prefork): on the connection loss the consumer closes a channel whose connection is already gone; "
    "restore_unacked raises AttributeError ('NoneType' object has no attribute 'hostname') and the "
    "worker exits with 1"
)
BRPOP_LOSS = (
    "kombu#1733 / kombu#305 (intermittent, 3 of 9 restarts here): a message popped by BRPOP as the "
    "connection breaks is neither delivered nor kept in 'unacked', so it is lost for good"
)


@dataclass(frozen=True)
class RestartRun:
    observed: faults.Observation[faults.RestartFacts] | faults.Inapplicable
    before: frozenset[int]  # harness pids alive before the scenario: the leak check's baseline


@pytest.fixture(scope="module")
def restart_run(pool, fault_broker, bench_run_id):
    """One broker restart per pool, shared by the checks below (each restart costs seconds)."""
    if not fault_broker.owned:
        pytest.skip("the broker-restart scenario needs a private Redis (not --broker-url)")
    before = frozenset(harness_pids(bench_run_id))
    return RestartRun(faults.broker_restart(fault_broker, pool), before)


def test_broker_restart_worker_resumes_by_itself(pool, restart_run, fault_broker, bench_run_id):
    obs = restart_run.observed
    assert not isinstance(obs, faults.Inapplicable), obs.reason
    assert_no_leaks(bench_run_id, fault_broker, before=restart_run.before, started=obs.pids)
    f = obs.facts
    assert f.refused_while_down == faults.REFUSED_WHILE_DOWN, "publishes to a stopped broker must raise"
    if not obs.worker_alive and f.crashed:  # the consumer's code path: any pool
        pytest.xfail(RESTART_CRASH)
    assert obs.worker_alive, f"{_note(obs)}\n{obs.log_tail}"
    if not obs.settled:  # the known stall, positively: alive, idle, and a fresh worker ran the rest
        drained = all(obs.starts(i) for i in f.after.ids)
        assert drained, f"stalled and not drained by another worker: {_note(obs)}"
        pytest.xfail(STALL)
    assert obs.recovery_seconds is not None


def test_broker_restart_loses_no_acknowledged_publish(pool, restart_run):
    obs = restart_run.observed
    assert not isinstance(obs, faults.Inapplicable), obs.reason
    tally = obs.tally
    assert tally.unexpected == 0, _note(obs)
    lost, before = obs.lost_ids, frozenset(obs.facts.before.ids)
    if lost and obs.worker_alive and not obs.settled and pool == "threads" and obs.broker == "rabbitmq":
        # Seen once (threads on RabbitMQ): after the stall, one message published before the restart
        # never ran; not explained yet (the stalled worker's held delivery?). Reported, not hidden.
        assert len(lost) <= obs.reserve_window and lost <= before, _note(obs)
        pytest.xfail(f"{STALL}; lost {len(lost)} after the stall, unexplained (threads on RabbitMQ)")
    # Whatever happens, only messages in the queue at the restart can go: each popped by a BRPOP
    # answered as the connection broke. kombu's QoS issues a BRPOP only while the worker holds fewer
    # unacknowledged messages than prefetch x concurrency, so the pops in flight never exceed that.
    assert lost <= before, f"lost ids published after the restart: {sorted(lost - before)}"
    assert len(lost) <= obs.reserve_window, _note(obs)
    # A queue is FIFO (LPUSH, BRPOP): a message published after a lost one that still ran proves Redis
    # kept the queue across the restart, i.e. the loss is a pop's, not Redis losing queued data.
    if lost and not faults.queue_kept_past(obs):
        pytest.fail(f"no message published after the lost ones ran: did Redis lose the queue? {_note(obs)}")
    if lost and pool in faults.NO_RESTORE_SWEEP and lost & obs.held_after:
        # Two known symptoms, each positively: the lost ids still in 'unacked' after every worker stopped
        # never started (celery#4976: no green worker sweeps them back); the rest were popped unseen.
        held, popped = lost & obs.held_after, lost - obs.held_after
        assert not any(obs.starts(i) for i in held), _note(obs)
        assert not popped or faults.lost_in_brpop(obs, popped), _note(obs)
        pytest.xfail(
            f"{NO_RESTORE_SWEEP}; lost {len(held)} held here"
            + (f"; and {BRPOP_LOSS}; lost {len(popped)} so here" if popped else "")
        )
    if lost and faults.lost_in_brpop(obs):
        pytest.xfail(f"{BRPOP_LOSS}; lost {len(lost)} here")
    assert tally.lost == 0, _note(obs)


# -- 6 ---------------------------------------------------------------------------------------------------
@pytest.mark.pools("solo")  # producer-side: no worker involved, one run is enough
def test_broker_down_at_enqueue_raises_operational_error_bounded(pool, broker_kind, fault_broker):
    default, no_retry, *confirmed = faults.broker_down(fault_broker)
    # RabbitMQ adds a row with publisher confirms (confirm_publish): the same error, the same bound.
    assert [d.label for d in confirmed] == (["publisher confirms"] if broker_kind == "rabbitmq" else [])
    for down in (default, no_retry, *confirmed):
        failure = down.failure
        assert not failure.hung, f"send_task hung for {failure.seconds:.1f}s with retry={failure.retry}"
        assert failure.error and failure.error.startswith("OperationalError"), failure.error
        assert faults.judge(down).verdict is Verdict.OK
    assert (default.failure.retry, no_retry.failure.retry) == (True, False)
    # The default policy sleeps between its retries; the time can never be shorter than those sleeps.
    assert default.failure.seconds >= sum(faults.policy_sleeps(default.policy))
    assert fault_broker.client().ping(), "the broker must be back after the scenario"


CELERY_5919 = (
    "celery#5919 (PR #5921): with a Redis result backend, apply_async of a task that stores results "
    "subscribes to its result first; with Redis down that raises RuntimeError('Retry limit exceeded "
    "... must be restarted') after the backend's own retries, not kombu's OperationalError as the "
    "calling guide says"
)


@pytest.mark.pools("solo")
def test_broker_down_at_enqueue_with_results_raises_operational_error(pool, fault_broker):
    failure = faults.broker_down_with_results(fault_broker).failure
    assert not failure.hung, f"send_task hung for {failure.seconds:.1f}s"
    error = failure.error or "no error raised"
    if not error.startswith("OperationalError"):
        # The known symptom, positively; anything else is a failure of its own.
        assert error.startswith("unexpected RuntimeError") and "Retry limit exceeded" in error, error
        pytest.xfail(CELERY_5919)


# -- 7 ---------------------------------------------------------------------------------------------------
@pytest.mark.brokers("redis")
def test_countdown_beyond_visibility_timeout_runs_twice(pool, fault_broker, no_leaks):
    """kombu#337, a documented Redis caveat: shown, counted, not hidden."""
    obs = _check(faults.countdown_redelivery(fault_broker, pool), no_leaks)
    if pool in faults.NO_RESTORE_SWEEP:
        # The known symptom, positively: it ran once (worker A at its ETA), nothing redelivered it.
        assert obs.starts(obs.facts.task_id) == 1 and not obs.settled, _note(obs)
        assert faults.judge(obs).verdict is Verdict.DEVIATION
        pytest.xfail(NO_RESTORE_SWEEP)
    assert obs.starts(obs.facts.task_id) == 2, _note(obs)
    assert (obs.tally.lost, obs.tally.duplicated) == (0, 1)
    assert faults.judge(obs).verdict is Verdict.OK


@pytest.mark.brokers("rabbitmq")
def test_countdown_beyond_redis_visibility_timeout_runs_once_on_rabbitmq(pool, fault_broker, no_leaks):
    """The same scenario (a second worker started past the Redis setting) on RabbitMQ: no visibility
    timeout, the message stays with the worker that holds it until its ETA, so it runs once."""
    obs = _check(faults.countdown_redelivery(fault_broker, pool), no_leaks)
    assert obs.settled, _note(obs)
    assert obs.starts(obs.facts.task_id) == 1, _note(obs)
    assert (obs.tally.lost, obs.tally.duplicated) == (0, 0)
    assert faults.judge(obs).verdict is Verdict.OK


# -- 8 ---------------------------------------------------------------------------------------------------
@pytest.mark.brokers("rabbitmq")
def test_acks_late_task_longer_than_consumer_timeout_runs_again(pool, fault_broker, no_leaks):
    """RabbitMQ closes the channel of a consumer that holds a delivery unacknowledged past
    ``consumer_timeout`` and requeues it (its docs); Celery's calling guide says the worker terminates
    with ``PreconditionFailed``. The node's timeout is lowered to 2 s (and its check to every 0.5 s)."""
    if not fault_broker.owned:
        pytest.skip("lowers consumer_timeout on a private RabbitMQ node (not --broker-url)")
    obs = _check(faults.consumer_timeout(fault_broker, pool), no_leaks)
    f = obs.facts
    assert f.channel_closed, f"the broker never closed the channel: {_note(obs)}\n{obs.log_tail}"
    assert not obs.worker_alive and obs.worker_exit == 1, f"the worker did not exit: {_note(obs)}"
    assert obs.starts(f.task_id) == 2, _note(obs)
    assert (obs.tally.lost, obs.tally.duplicated) == (0, 1), _note(obs)
    assert faults.judge(obs).verdict is Verdict.OK
