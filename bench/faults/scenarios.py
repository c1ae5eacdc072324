"""The seven fault scenarios (see docs/reliability.md); each returns an :class:`Outcome`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celery import Celery
from celery.result import AsyncResult

from bench import defaults, ledger
from bench.broker import Broker, BrokerError
from bench.defaults import (
    FAULT_DRAIN_TIMEOUT,
    FAULT_POLL,
    FAULT_PUBLISH_ERROR_BOUND,
    FAULT_SETTLE_TIMEOUT,
    FAULT_STALL_TIMEOUT,
)
from bench.faults.injections import (
    PublishFailure,
    down_broker_url,
    kill_child,
    publish_error_time,
    restart_broker,
)
from bench.faults.producer import (
    PREFETCH_MULTIPLIER,
    TASK_MARK,
    TASK_MARK_RESULT,
    TASK_WORK,
    TASK_WORK_LATE,
    Published,
    client_app,
)
from bench.faults.run import (
    KillSnapshot,
    Outcome,
    Run,
    fault_run,
    kill_and_snapshot,
    stopped_and_read,
    wait_kill_point,
    wait_mid_run,
)
from bench.ledger import ReliabilityRecord, Tally
from bench.procs import wait_for
from bench.worker import Worker

# -- sizes and timeouts of the scenarios ----------------------------------------------------------------
LOAD_TASKS = 10_000
"""Tasks per pool of the no-fault load scenario (``--quick``: :data:`QUICK_LOAD_TASKS`)."""

QUICK_LOAD_TASKS = 1_000
"""Tasks per pool of the no-fault load scenario in quick mode."""

RUN_TASKS = 12
"""Tasks of a fault scenario's run (enough to be mid-run: some done, some running, some queued)."""

TASK_SECONDS = 0.3
"""Work of one task of a fault scenario's run."""

LONG_TASK_SECONDS = 60.0
"""Work of the task a fault kills mid-task (its redelivery works :data:`TASK_SECONDS`)."""

VISIBILITY_TIMEOUT = 2.0
"""Seconds before Redis may redeliver an unacknowledged message (the scenarios' short setting)."""

COUNTDOWN_SECONDS = 3 * VISIBILITY_TIMEOUT
"""Countdown of the task that outlives the visibility timeout (kombu #337)."""


# -- 1. no faults, under load --------------------------------------------------------------------------
def no_faults(broker: Broker, pool: str, *, count: int = LOAD_TASKS) -> Outcome:
    """``count`` tasks at the producer's full speed to one worker: lost 0, duplicated 0."""
    with fault_run(broker, pool) as run:
        run.worker(loglevel="WARNING")
        published = run.enqueue(TASK_MARK, (run.run,), count=count)
        started = time.perf_counter()
        run.wait_done(len(published.ids), timeout=FAULT_DRAIN_TIMEOUT, what="load tasks")
        drained = time.perf_counter() - started
        executions = stopped_and_read(run)
        left = run.queued()
        tally = ledger.account(published.ids, executions, failed=published.failed)
        rate = len(published.ids) / published.seconds if published.seconds else float("inf")
        note = f"enqueued at {rate:,.0f}/s; drained {drained:.1f}s after the last publish"
        if left:
            note += f"; {left} messages still queued"
        ok = tally.lost == 0 and tally.duplicated == 0 and not published.failed and tally.enqueued == count
        return Outcome(
            ledger.record(tally, pool=pool, scenario="no faults, under load", recovery_seconds=None,
                          expected="lost 0, duplicated 0", ok=ok, note=note),
            tally, {"enqueue_seconds": published.seconds, "queued_after": left}, tuple(run.pids),
        )  # fmt: skip


# -- 2. a prefork child killed mid-task -----------------------------------------------------------------
CHILD_NOT_APPLICABLE = (
    "no pool child to kill: {pool} runs tasks inside the worker process itself "
    "(killing it is the whole-worker scenario)"
)


def child_killed(
    broker: Broker, pool: str, *, acks_late: bool, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """SIGKILL the prefork child running a long task.

    Default settings: the task ends as FAILURE with ``WorkerLostError`` (at most once: lost 1).
    ``acks_late=True, reject_on_worker_lost=True`` (task options): requeued, runs again, lost 0.
    """
    scenario = "child killed mid-task" + (" (acks_late, reject_on_worker_lost)" if acks_late else "")
    expected = (
        "redelivered and executed again: duplicated 1, lost 0"
        if acks_late
        else "FAILURE with WorkerLostError, not retried: lost 1"
    )
    if pool != "prefork":
        return Outcome(ledger.not_applicable(pool, scenario, expected=expected,
                                             reason=CHILD_NOT_APPLICABLE.format(pool=pool)))  # fmt: skip
    with fault_run(broker, pool) as run:
        worker = run.worker()
        task = TASK_WORK_LATE if acks_late else TASK_WORK
        args = (run.run, LONG_TASK_SECONDS, TASK_SECONDS)
        published = run.enqueue(task, args, count=1)
        task_id = published.ids[0]
        wait_for(lambda: run.executions().pids.get(task_id), timeout=FAULT_SETTLE_TIMEOUT,
                 what=f"task {task_id} to start in a pool child", interval=0.01)  # fmt: skip
        victim = run.executions().pids[task_id]
        children_before = set(worker.child_pids())
        run.remember(worker)
        kill_child(worker, victim)
        killed_at = clock()
        result = AsyncResult(task_id, app=run.app)
        wait_for(lambda: result.state in ("SUCCESS", "FAILURE"), timeout=FAULT_SETTLE_TIMEOUT,
                 what=f"task {task_id} to end after its child was killed", interval=FAULT_POLL)  # fmt: skip
        recovery = clock() - killed_at
        state = result.state
        error = result.result
        error_name = type(error).__name__ if isinstance(error, BaseException) else ""
        worker_alive = worker.alive() and worker.ping(timeout=2.0)
        run.remember(worker)
        replaced = bool(set(worker.child_pids()) - children_before)
        executions = stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        starts = executions.starts.get(task_id, 0)
        ok = (
            child_killed_as_documented(state, error_name, starts, tally, acks_late=acks_late) and worker_alive
        )
        note = f"state {state}{' ' + error_name if error_name else ''}; body started {starts}x"
        survived = worker_alive and replaced
        note += "; worker survived, child replaced" if survived else "; worker did not survive"
        return Outcome(
            ledger.record(tally, pool=pool, scenario=scenario, recovery_seconds=recovery,
                          expected=expected, ok=ok, note=note),
            tally,
            {"state": state, "error": error_name, "starts": starts, "worker_alive": worker_alive,
             "child_replaced": replaced, "victim": victim},
            tuple(run.pids),
        )  # fmt: skip


def child_killed_as_documented(state: str, error: str, starts: int, tally: Tally, *, acks_late: bool) -> bool:
    """The verdict of a killed prefork child: redelivered once (acks_late + reject_on_worker_lost), or
    FAILURE with ``WorkerLostError`` and never run again (the defaults)."""
    if acks_late:
        return state == "SUCCESS" and starts == 2 and tally.lost == 0 and tally.duplicated == 1
    return state == "FAILURE" and error == "WorkerLostError" and starts == 1 and tally.lost == 1


# -- 3. the whole worker killed mid-run ----------------------------------------------------------------
BRPOP_LOSS_ISSUES = "kombu#1733, kombu#305: a BRPOP answered while the connection closes loses its message"


def worker_killed(
    broker: Broker,
    pool: str,
    *,
    acks_late: bool,
    count: int = RUN_TASKS,
    visibility_timeout: float = VISIBILITY_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> Outcome:
    """SIGKILL a worker mid-run, then start another one after the visibility timeout.

    What the broker still had at the kill (queued, or held unacknowledged) must run. ``acks_late``:
    that is everything not completed (lost 0; the interrupted ones run twice). Without: the running
    tasks were acknowledged before their body, so they are lost (at most once), and only a task
    started but not yet acknowledged at the kill (the ack goes through the event loop) runs again.
    """
    scenario = "worker killed mid-run" + (" (acks_late)" if acks_late else "")
    expected = (
        "lost 0; the interrupted tasks run again (duplicated >= in flight at the kill)"
        if acks_late
        else "at most once: lost = the tasks acknowledged and unfinished at the kill; the rest restored"
    )
    with fault_run(broker, pool, visibility_timeout=visibility_timeout) as run:
        run.worker(acks_late=acks_late)
        published = run.enqueue(TASK_WORK, (run.run, TASK_SECONDS), count=count)
        wait_kill_point(run, acks_late=acks_late)
        killed_at, killed_wall = clock(), wall()
        snap = kill_and_snapshot(run, published.ids)
        settled = _rerun_after_kill(run, snap, killed_wall, acks_late=acks_late,
                                    visibility_timeout=visibility_timeout, wall=wall)  # fmt: skip
        recovery = clock() - killed_at if settled else None
        stuck = frozenset(run.held_since(killed_wall))  # never restored: no sweep moved them back
        executions = stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        lost_ids = frozenset(i for i in published.ids if executions.done.get(i, 0) == 0)
        twice = frozenset(
            i for i in published.ids if executions.starts.get(i, 0) > 1 or executions.done.get(i, 0) > 1
        )
        ok = worker_killed_as_documented(snap, lost_ids, twice, acks_late=acks_late)
        note = _worker_killed_note(snap, lost_ids, twice, stuck, recovery, acks_late=acks_late, pool=pool,
                                   visibility_timeout=visibility_timeout)  # fmt: skip
        return Outcome(
            ledger.record(tally, pool=pool, scenario=scenario, recovery_seconds=recovery,
                          expected=expected, ok=ok, note=note),
            tally,
            {"snapshot": snap, "interrupted": snap.interrupted, "lost_ids": lost_ids, "twice": twice,
             "stuck": stuck, "reserve_window": PREFETCH_MULTIPLIER * (run.workers[0].concurrency or 1)},
            tuple(run.pids),
        )  # fmt: skip


def worker_killed_as_documented(
    snap: KillSnapshot, lost_ids: frozenset[str], twice: frozenset[str], *, acks_late: bool
) -> bool:
    """The verdict of a killed worker. ``acks_late``: nothing lost, every interrupted task ran again.
    Without: lost exactly what was acknowledged and unfinished at the kill, a running task among them,
    and only what the broker still held ran twice."""
    if acks_late:
        return not lost_ids and snap.interrupted <= twice
    return lost_ids == snap.acknowledged and bool(snap.interrupted & lost_ids) and twice <= snap.held


def _rerun_after_kill(
    run: Run,
    snap: KillSnapshot,
    killed_wall: float,
    *,
    acks_late: bool,
    visibility_timeout: float,
    wall: Callable[[], float],
) -> bool:
    """Once the visibility timeout has passed since the kill (every message the dead worker held was
    delivered before it), start a replacement, whose start-up restore_visible sweep moves them back;
    wait (bounded) until all the broker still had at the kill ran. False if it did not in time."""
    wait_for(lambda: wall() > killed_wall + visibility_timeout, timeout=visibility_timeout + 5,
             what="the visibility timeout to pass", interval=FAULT_POLL)  # fmt: skip
    run.worker(acks_late=acks_late)
    must_run = snap.held | snap.queued
    try:
        wait_for(lambda: must_run <= set(run.executions().done), timeout=FAULT_SETTLE_TIMEOUT,
                 what="what the killed worker left in the broker to run", interval=FAULT_POLL)  # fmt: skip
    except TimeoutError:
        return False
    return True


def _worker_killed_note(
    snap: KillSnapshot,
    lost_ids: frozenset[str],
    twice: frozenset[str],
    stuck: frozenset[str],
    recovery: float | None,
    *,
    acks_late: bool,
    pool: str,
    visibility_timeout: float,
) -> str:
    note = f"{len(snap.interrupted)} in flight at the kill; visibility_timeout {visibility_timeout:g}s"
    if not acks_late and snap.interrupted and snap.interrupted <= snap.held:
        note += "; the running tasks ran again instead of being lost: not acknowledged before they ran" + (
            " (celery#3430: solo acks after the task body)" if pool == "solo" else ""
        )
    if acks_late and twice - snap.interrupted:
        note += f"; {len(twice - snap.interrupted)} completed but unacknowledged at the kill also ran twice"
    if unseen := lost_ids & snap.popped_unseen:
        note += f"; {len(unseen)} popped from the queue at the kill, never held ({BRPOP_LOSS_ISSUES})"
    if stuck:
        note += f"; {len(stuck)} still held unacknowledged: no restore sweep moved them back"
    if recovery is None:
        note += f"; not settled within {FAULT_SETTLE_TIMEOUT:g}s"
    return note


# -- 4. warm shutdown mid-run ----------------------------------------------------------------------
def warm_shutdown(
    broker: Broker, pool: str, *, count: int = RUN_TASKS, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """SIGTERM a worker mid-run: it finishes its running tasks, requeues the rest; nothing is lost."""
    expected = "running tasks finish, prefetched ones requeued: lost 0, duplicated 0"
    with fault_run(broker, pool) as run:
        first = run.worker()
        published = run.enqueue(TASK_WORK, (run.run, TASK_SECONDS), count=count)
        wait_mid_run(run, done=2, what="the run to be under way (2 done, 1 running)")
        stopped_at = clock()
        interrupted = ledger.in_flight(run.executions())
        run.remember(first)
        code = first.stop(warm=defaults.WARM_STOP_TIMEOUT, cold=None)
        stop_seconds = clock() - stopped_at
        finished = {i for i in interrupted if run.executions().done.get(i, 0) > 0}
        requeued = run.queued()
        run.worker()
        try:
            run.wait_done(count, timeout=FAULT_SETTLE_TIMEOUT, what="tasks of the stopped worker's run")
            recovery: float | None = clock() - stopped_at
        except TimeoutError:
            recovery = None
        executions = stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        ok = tally.lost == 0 and tally.duplicated == 0 and finished == interrupted and code == 0
        note = (
            f"exit code {code} after {stop_seconds:.1f}s; {len(finished)}/{len(interrupted)} running tasks "
            f"finished before exit; {requeued} messages back in the queue"
        )
        return Outcome(
            ledger.record(tally, pool=pool, scenario="warm shutdown mid-run", recovery_seconds=recovery,
                          expected=expected, ok=ok, note=note),
            tally,
            {"exit_code": code, "interrupted": interrupted, "finished": finished, "requeued": requeued},
            tuple(run.pids),
        )  # fmt: skip


# -- 5. broker restart mid-run ---------------------------------------------------------------------
STALL_ISSUES = "celery#8990, celery#10205"
CRASH_SYMPTOM = ("AttributeError", "'NoneType' object has no attribute 'hostname'")
"""What a threads worker logs when it dies on the connection loss (kombu#582 / celery#10205 family)."""


def broker_restart(
    broker: Broker,
    pool: str,
    *,
    count: int = 200,
    visibility_timeout: float = VISIBILITY_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> Outcome:
    """Restart the private Redis (append-only) under a running worker and a publishing producer.

    Every publish that returned without error must run, and the worker must resume without a restart.
    ``recovery_seconds`` runs from the broker answering again to the first task published afterwards
    completing (longer than :data:`FAULT_STALL_TIMEOUT`: the worker stalled). Messages the worker held
    across the restart stay in kombu's ``unacked`` hash until ``visibility_timeout`` has passed and a
    ``restore_visible`` sweep runs; the scenario then starts a second worker (whose start sweeps)
    so that they run, and counts what ran twice (an ack lost in the restart means a redelivery). A
    worker that died or stalled is reported, and a replacement drains its queue, so that ``lost``
    counts what the broker lost, not what a dead worker left queued.
    """
    scenario = "broker restart mid-run"
    expected = "the worker resumes by itself; every acknowledged publish runs: lost 0"
    if not broker.owned:
        return Outcome(ledger.not_applicable(
            pool, scenario, expected=expected,
            reason="needs a private broker; the harness never restarts a --broker-url"))  # fmt: skip
    if not broker.appendonly:
        raise BrokerError("the broker-restart scenario needs a private Redis with appendonly=True")
    with fault_run(broker, pool, visibility_timeout=visibility_timeout) as run:
        worker = run.worker()
        phase = _restart_under_load(
            run, broker, count=count, visibility_timeout=visibility_timeout, clock=clock
        )
        ids, failed = phase.ids, phase.failed
        try:
            wait_for(lambda: any(i in run.executions().done for i in phase.after.ids),
                     timeout=FAULT_STALL_TIMEOUT, what="the worker to run a task published after the restart",
                     interval=FAULT_POLL)  # fmt: skip
            recovery: float | None = clock() - phase.up_at
        except TimeoutError:
            recovery = None
        worker_alive = worker.alive()
        crashed = not worker_alive and all(s in worker.log() for s in CRASH_SYMPTOM)
        if recovery is None or not worker_alive:
            run.worker()  # drains what the first one left: the loss count is about the broker, not the crash
        held = _settle_after_restart(run, ids, visibility_timeout=visibility_timeout, wall=wall)
        executions = stopped_and_read(run)
        tally = ledger.account(ids, executions, failed=failed)
        lost_ids = frozenset(i for i in ids if executions.done.get(i, 0) == 0)
        # kombu#1733's symptom: published before the restart, never started, neither queued nor held. The
        # worker keeps popping between a read of the queue and the stop, so that read cannot tell this
        # from Redis losing queued data (it is kept in the details: ``queued_at_stop``).
        brpop_loss = (
            bool(lost_ids) and lost_ids <= set(phase.before.ids) and run.queued() == 0
            and not any(executions.starts.get(i, 0) for i in lost_ids) and not lost_ids & run.held_ids()
        )  # fmt: skip
        ok = tally.lost == 0 and recovery is not None and worker_alive
        note = _restart_note(phase, tally, held, worker if not worker_alive else None, crashed=crashed,
                             brpop_loss=brpop_loss, stalled=recovery is None,
                             visibility_timeout=visibility_timeout)  # fmt: skip
        return Outcome(
            ledger.record(tally, pool=pool, scenario=scenario, recovery_seconds=recovery,
                          expected=expected, ok=ok, note=note),
            tally,
            {"stalled": recovery is None, "refused_while_down": len(phase.during.failed),
             "worker_alive": worker_alive, "downtime": phase.up_at - phase.down_at, "held": held,
             "log_tail": _log_tail(worker), "crash_symptom": crashed, "lost_ids": lost_ids,
             "before_ids": frozenset(phase.before.ids), "brpop_loss": brpop_loss,
             "queued_at_stop": phase.queued_at_stop,
             "reserve_window": PREFETCH_MULTIPLIER * (worker.concurrency or 1)},
            tuple(run.pids),
        )  # fmt: skip


@dataclass(frozen=True)
class _RestartPhase:
    """What was published before, during and after a broker restart, and when it was down."""

    before: Published
    during: Published
    after: Published
    queued_at_stop: frozenset[str]
    down_at: float
    up_at: float

    @property
    def ids(self) -> tuple[str, ...]:
        return self.before.ids + self.during.ids + self.after.ids

    @property
    def failed(self) -> tuple[str, ...]:
        return self.before.failed + self.during.failed + self.after.failed


def _restart_under_load(
    run: Run, broker: Broker, *, count: int, visibility_timeout: float, clock: Callable[[], float]
) -> _RestartPhase:
    """Publish ``count``; once a quarter ran, restart the broker (3 publishes while down); publish more."""
    before = run.enqueue(TASK_MARK, (run.run,), count=count)
    run.wait_done(count // 4, timeout=FAULT_SETTLE_TIMEOUT, what="tasks before the restart")
    refused: list[Published] = []
    queued_at_stop = frozenset(run.queued_ids())  # what Redis itself must keep across the restart
    down_at, up_at = restart_broker(
        broker, clock=clock,
        while_down=lambda: refused.append(run.enqueue(TASK_MARK, (run.run,), count=3, retry=False)),
    )  # fmt: skip
    run.app.close()
    run.app = client_app(broker.url, visibility_timeout=visibility_timeout)
    after = run.enqueue(TASK_MARK, (run.run,), count=count)
    return _RestartPhase(before, refused[0], after, queued_at_stop, down_at, up_at)


def _settle_after_restart(
    run: Run, ids: Sequence[str], *, visibility_timeout: float, wall: Callable[[], float]
) -> set[str]:
    """Wait (bounded) until every id ran or is held in ``unacked``; then, for held ones, past their
    visibility timeout, start a worker (its start sweeps) and wait for them. Returns the held ids."""

    def settled() -> bool:
        done = run.executions().done
        missing = {i for i in ids if i not in done}
        return run.queued() == 0 and missing <= run.held_ids()

    try:
        wait_for(settled, timeout=FAULT_SETTLE_TIMEOUT, what="the worker to run all it was not holding",
                 interval=FAULT_POLL)  # fmt: skip
    except TimeoutError:
        pass  # some ids are neither done, queued nor held: counted lost
    held = run.held_ids()
    if held:
        latest = run.latest_delivery()
        wait_for(lambda: wall() > latest + visibility_timeout, timeout=visibility_timeout + 5,
                 what="the visibility timeout of the held messages", interval=FAULT_POLL)  # fmt: skip
        run.worker()
        try:
            wait_for(lambda: not run.held_ids() and run.queued() == 0 and
                     all(i in run.executions().done for i in ids), timeout=FAULT_SETTLE_TIMEOUT,
                     what="the held messages to be restored and run", interval=FAULT_POLL)  # fmt: skip
        except TimeoutError:
            pass  # counted lost
    return held


def _log_tail(worker: Worker) -> str:
    """The worker log's last lines but the per-task ones (for a failed test's message)."""
    lines = worker.log().splitlines()[-400:]
    return "\n".join(line for line in lines if "] received" not in line and "succeeded in" not in line)[
        -3000:
    ]


def _restart_note(
    phase: _RestartPhase,
    tally: Tally,
    held: set[str],
    dead: Worker | None,
    *,
    crashed: bool,
    brpop_loss: bool,
    stalled: bool,
    visibility_timeout: float,
) -> str:
    refused = len(phase.during.failed)
    note = f"broker down {phase.up_at - phase.down_at:.1f}s; {refused} publishes refused while down"
    if held:
        note += (f"; {len(held)} messages held unacknowledged across the restart ran only after "
                 f"visibility_timeout ({visibility_timeout:g}s here, 3600s by default)")  # fmt: skip
    if dead is not None:
        note += f"; the worker exited with {dead.returncode()}"
        if crashed:
            note += " on AttributeError at the connection loss (kombu#582 / celery#10205 family)"
    if brpop_loss:
        note += (f"; {tally.lost} popped from the queue but never run nor held unacknowledged "
                 f"({BRPOP_LOSS_ISSUES})")  # fmt: skip
    elif tally.lost:
        note += f"; {tally.lost} never ran"
    if stalled:
        note += f"; worker stalled: idle {FAULT_STALL_TIMEOUT:g}s after the broker was back ({STALL_ISSUES})"
    if phase.before.failed or phase.after.failed:
        note += (
            f"; {len(phase.before.failed) + len(phase.after.failed)} publishes failed while the broker was up"
        )
    return note


# -- 6. broker down at enqueue ---------------------------------------------------------------------


def broker_down_with_results(broker: Broker | None) -> PublishFailure:
    """``send_task`` of a task that stores its result, while the (broker and backend) Redis is down."""
    url, bring_back = down_broker_url(broker)
    try:
        return publish_error_time(url, retry=True, results=True)
    finally:
        bring_back()


def broker_down(broker: Broker | None, *, with_results: bool = False) -> list[Outcome]:
    """``send_task`` while the broker is down: default retry policy, then ``retry=False``.

    With ``with_results``, a third row: the default policy for a task whose result is stored.
    """
    scenario = "broker down at enqueue"
    url, bring_back = down_broker_url(broker)
    try:
        default = publish_error_time(url, retry=True)
        no_retry = publish_error_time(url, retry=False)
        stored = publish_error_time(url, retry=True, results=True) if with_results else None
    finally:
        bring_back()
    rows = []
    conf = Celery(set_as_current=False).conf
    policy = conf.task_publish_retry_policy
    bound = FAULT_PUBLISH_ERROR_BOUND
    cases = [
        (default, "default retry policy", f"OperationalError after the policy's retries ({policy})"),
        (no_retry, "retry=False", "OperationalError at once"),
    ]
    if stored is not None:
        cases.append((stored, "default policy, result stored", "OperationalError (calling guide)"))
    for failure, label, expected in cases:
        ok = not failure.hung and (failure.error or "").startswith("OperationalError")
        note = "hung" if failure.hung else (failure.error or "no error raised")[:160]
        rows.append(Outcome(
            ReliabilityRecord(
                pool="any", scenario=f"{scenario} ({label})", enqueued=0,
                publish_errors=1 if failure.error else 0,
                executed_once=0, duplicated=0, lost=0, recovery_seconds=failure.seconds,
                expected=expected, verdict="ok" if ok else "deviation",
                note=f"producer-side, no worker; {failure.seconds:.2f}s to the error "
                     f"(hung if over {bound:g}s; broker_connection_timeout {conf.broker_connection_timeout}s "
                     f"bounds the connect, the publish policy only the publish): {note}"
                     + (" (celery#5919: the result subscription fails first)" if failure is stored else ""),
            ),
            details={"failure": failure, "policy": dict(policy)},
        ))  # fmt: skip
    return rows


# -- 7. redelivery of a long countdown ---------------------------------------------------------------
def countdown_redelivery(
    broker: Broker,
    pool: str,
    *,
    visibility_timeout: float = VISIBILITY_TIMEOUT,
    countdown: float = COUNTDOWN_SECONDS,
    wall: Callable[[], float] = time.time,
) -> Outcome:
    """A countdown longer than ``visibility_timeout`` (kombu #337).

    Worker A receives the task at once and holds it, unacknowledged, until its ETA. Once the visibility
    timeout has passed, any ``restore_visible`` sweep (here: worker B starting) puts the message back,
    B receives it too, and both run it at the ETA.
    """
    scenario = "countdown > visibility_timeout (kombu#337)"
    expected = "documented Redis caveat: redelivered after visibility_timeout, runs more than once"
    with fault_run(broker, pool, visibility_timeout=visibility_timeout) as run:
        run.worker()
        published = run.enqueue(TASK_MARK_RESULT, (run.run,), count=1, countdown=countdown)
        task_id = published.ids[0]
        wait_for(lambda: run.queued() == 0 and f"Task {TASK_MARK_RESULT}[{task_id}] received" in
                 run.workers[0].log(), timeout=FAULT_SETTLE_TIMEOUT,
                 what="worker A to hold the countdown task",
                 interval=FAULT_POLL)  # fmt: skip
        received_wall = wall()
        wait_for(lambda: wall() > received_wall + visibility_timeout, timeout=visibility_timeout + 5,
                 what="the visibility timeout to pass", interval=FAULT_POLL)  # fmt: skip
        run.worker()
        try:
            wait_for(lambda: run.executions().starts.get(task_id, 0) >= 2,
                     timeout=countdown + FAULT_SETTLE_TIMEOUT / 4, what=f"task {task_id} to run twice",
                     interval=FAULT_POLL)  # fmt: skip
        except TimeoutError:
            pass
        executions = stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        runs = executions.starts.get(task_id, 0)
        ok = tally.lost == 0 and runs >= 2
        note = f"ran {runs}x; countdown {countdown:g}s, visibility_timeout {visibility_timeout:g}s"
        return Outcome(
            ledger.record(tally, pool=pool, scenario=scenario, recovery_seconds=None,
                          expected=expected, ok=ok, note=note),
            tally, {"runs": runs}, tuple(run.pids),
        )  # fmt: skip
