"""The seven fault scenarios (see docs/reliability.md), each a :class:`~bench.faults.run.Scenario`
declared in one place and run by :func:`~bench.faults.run.observe`; ``judging`` gives the verdicts."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from celery import Celery
from celery.result import AsyncResult

from bench import defaults, ledger
from bench.broker import Broker, BrokerError
from bench.defaults import FAULT_AIM_POLL, FAULT_POLL, FAULT_SETTLE_TIMEOUT, FAULT_STALL_TIMEOUT
from bench.faults.injections import down_broker_url, kill_child, publish_error_time, restart_broker
from bench.faults.observations import (
    BrokerDown,
    ChildFacts,
    ConsumerTimeoutFacts,
    CountdownFacts,
    Inapplicable,
    KillFacts,
    KillSnapshot,
    LoadFacts,
    Observation,
    RestartFacts,
    WarmFacts,
    WorkerSettings,
)
from bench.faults.producer import (
    TASK_MARK,
    TASK_MARK_RESULT,
    TASK_WORK,
    TASK_WORK_LATE,
    Published,
)
from bench.faults.run import ACKS_AFTER_THE_BODY, Run, Scenario, Target, as_target, observe
from bench.procs import wait_for

# -- sizes of the scenarios ---------------------------------------------------------------------------------
LOAD_TASKS = 10_000
"""Tasks per pool of the no-fault load scenario (``--quick``: :data:`QUICK_LOAD_TASKS`)."""

QUICK_LOAD_TASKS = 1_000
"""Tasks per pool of the no-fault load scenario in quick mode."""

RUN_TASKS = 12
"""Tasks of a fault scenario's run (enough to be mid-run: some done, some running, some queued)."""

RESTART_TASKS = 200
"""Tasks published before, and again after, a broker restart."""

REFUSED_WHILE_DOWN = 3
"""Publishes tried (``retry=False``) while the broker is down: each must raise."""

TASK_SECONDS = 0.3
"""Work of one task of a fault scenario's run."""

LONG_TASK_SECONDS = 60.0
"""Work of the task a fault kills mid-task (its redelivery works :data:`TASK_SECONDS`)."""

VISIBILITY_TIMEOUT = 2.0
"""Seconds before Redis may redeliver an unacknowledged message (the scenarios' short setting)."""

COUNTDOWN_SECONDS = 3 * VISIBILITY_TIMEOUT
"""Countdown of the task that outlives the visibility timeout (kombu #337)."""

CHILD_NOT_APPLICABLE = (
    "no pool child to kill: {pool} runs tasks inside the worker process itself "
    "(killing it is the whole-worker scenario)"
)
CRASH_SYMPTOM = ("AttributeError", "'NoneType' object has no attribute 'hostname'")
"""What a worker logs when it dies on the connection loss (kombu#582 / celery#10205 family)."""

Clock = Callable[[], float]


# -- 1. no faults, under load ------------------------------------------------------------------------------
def no_faults(
    broker: Broker | Target, pool: str, *, count: int = LOAD_TASKS, celery: Sequence[tuple[str, Any]] = ()
) -> Observation[LoadFacts] | Inapplicable:
    """``count`` tasks at the producer's full speed to one worker: lost 0, duplicated 0. ``celery``:
    settings of the worker (e.g. :data:`~bench.faults.run.HEARTBEAT_OFF`), named in the scenario."""

    def publish(run: Run) -> LoadFacts:
        return LoadFacts(count, run.enqueue(TASK_MARK, (run.run,), count=count).seconds)

    named = "".join(f" ({name}={value})" for name, value in celery)
    return observe(broker, pool, Scenario(
        name=f"no faults, under load{named}", expected="lost 0, duplicated 0",
        settings=WorkerSettings(loglevel="WARNING", celery=tuple(celery)),
        settle_timeout=defaults.DRAIN_TIMEOUT,
        inject=publish, settle=lambda run, facts: run.done_count() >= len(run.published[0].ids),
    ))  # fmt: skip


# -- 2. a prefork child killed mid-task --------------------------------------------------------------------
def child_killed(
    broker: Broker | Target, pool: str, *, acks_late: bool, clock: Clock = time.monotonic
) -> Observation[ChildFacts] | Inapplicable:
    """SIGKILL the prefork child running a long task.

    Default settings: the task ends as FAILURE with ``WorkerLostError`` (at most once: lost 1).
    ``acks_late=True, reject_on_worker_lost=True`` (task options): requeued, runs again, lost 0.
    """
    return observe(broker, pool, Scenario(
        name="child killed mid-task" + (" (acks_late, reject_on_worker_lost)" if acks_late else ""),
        expected="redelivered and executed again: duplicated 1, lost 0" if acks_late
        else "FAILURE with WorkerLostError, not retried: lost 1",
        inject=lambda run: _kill_running_child(run, acks_late=acks_late),
        settle=lambda run, f: AsyncResult(f.task_id, app=run.app).state in ("SUCCESS", "FAILURE"),
        aftermath=_child_fate,
        applies=lambda _, pool: None if pool == "prefork" else CHILD_NOT_APPLICABLE.format(pool=pool),
    ), clock=clock)  # fmt: skip


def _kill_running_child(run: Run, *, acks_late: bool) -> ChildFacts:
    """Publish one long task, SIGKILL the pool child that runs it (not the worker)."""
    task = TASK_WORK_LATE if acks_late else TASK_WORK
    task_id = run.enqueue(task, (run.run, LONG_TASK_SECONDS, TASK_SECONDS), count=1).ids[0]
    wait_for(lambda: run.executions().pids.get(task_id), timeout=FAULT_SETTLE_TIMEOUT,
             what=f"task {task_id} to start in a pool child", interval=FAULT_AIM_POLL)  # fmt: skip
    victim = run.executions().pids[task_id]
    worker = run.workers[0]
    children_before = frozenset(worker.child_pids())
    run.remember(worker)
    kill_child(worker, victim)
    run.mark_fault()
    return ChildFacts(task_id, acks_late, victim, children_before)


def _child_fate(run: Run, facts: ChildFacts, settled: bool) -> ChildFacts:
    """How the task ended, and whether the worker survived (answers a ping) with a new child."""
    result = AsyncResult(facts.task_id, app=run.app)
    error = result.result
    worker = run.workers[0]
    alive = worker.alive() and worker.ping(timeout=defaults.FAULT_ALIVE_PING)
    run.remember(worker)
    return replace(
        facts, state=result.state, error=type(error).__name__ if isinstance(error, BaseException) else "",
        worker_alive=alive, child_replaced=bool(set(worker.child_pids()) - facts.children_before),
    )  # fmt: skip


# -- 3. the whole worker killed mid-run --------------------------------------------------------------------
def worker_killed(
    broker: Broker | Target,
    pool: str,
    *,
    acks_late: bool,
    count: int = RUN_TASKS,
    visibility_timeout: float | None = VISIBILITY_TIMEOUT,
    clock: Clock = time.monotonic,
    wall: Clock = time.time,
) -> Observation[KillFacts] | Inapplicable:
    """SIGKILL a worker mid-run; once the visibility timeout has passed, start another (its start-up
    ``restore_visible`` sweep moves back what the dead one held). Settled when all the broker still
    had at the kill (queued, or held unacknowledged) ran. See ``judging.worker_killed_as_documented``.

    On RabbitMQ there is no visibility timeout: the broker puts a dead consumer's unacknowledged
    messages back when its connection closes, so the replacement starts at once.
    """
    if as_target(broker).kind != "redis":
        visibility_timeout = None
    return observe(broker, pool, Scenario(
        name="worker killed mid-run" + (" (acks_late)" if acks_late else ""),
        expected="lost 0; the interrupted tasks run again (duplicated >= in flight at the kill)" if acks_late
        else "at most once: lost = the tasks acknowledged and unfinished at the kill; the rest restored",
        settings=WorkerSettings(acks_late=acks_late), visibility_timeout=visibility_timeout,
        inject=lambda run: _kill_worker(run, count),
        settle=lambda run, f: f.snapshot.held | f.snapshot.queued <= set(run.executions().done),
        aftermath=lambda run, f, _: replace(f, stuck=frozenset(run.held_since(f.killed_wall))),
    ), clock=clock, wall=wall)  # fmt: skip


def _kill_worker(run: Run, count: int) -> KillFacts:
    """Mid-run (without acks_late: once a running task was acknowledged, where the pool does that
    before the body), SIGKILL the worker; past the visibility timeout, start a replacement."""
    published = run.enqueue(TASK_WORK, (run.run, TASK_SECONDS), count=count)
    return kill_mid_run(
        run, published.ids, need_ack=not run.settings.acks_late and run.pool not in ACKS_AFTER_THE_BODY
    )


def kill_mid_run(run: Run, ids: Sequence[str], *, need_ack: bool = False) -> KillFacts:
    """Once ``ids`` are under way (``need_ack``: one running task acknowledged), SIGKILL the worker with a
    snapshot of the broker; past the visibility timeout, start a replacement."""
    run.wait_under_way(need_ack=need_ack)
    killed_at = run.mark_fault()
    killed_wall = run.wall()
    snapshot = kill_and_snapshot(run, ids)
    run.wait_past_visibility(killed_wall)
    spawned = run.clock()
    run.worker()
    return KillFacts(snapshot, killed_wall, waited=spawned - killed_at, startup=run.clock() - spawned)


def kill_and_snapshot(run: Run, ids: Sequence[str]) -> KillSnapshot:
    """SIGKILL the run's first worker and read where every id was (queue, ``unacked``, ledger).

    On RabbitMQ, ``held`` is what the broker put back from the dead consumer (``redelivered``), read
    once it dropped the consumer; ``queued`` the rest of the queue (see :meth:`Run.kept_ids`)."""
    queued_before = run.queued_ids()
    run.workers[0].kill()
    executions = run.executions()
    queued, held = run.kept_ids()
    return KillSnapshot(
        ids=frozenset(ids), queued_before=frozenset(queued_before), queued=queued, held=held,
        started=frozenset(executions.starts), done=frozenset(executions.done),
    )  # fmt: skip


# -- 4. warm shutdown mid-run ------------------------------------------------------------------------------
def warm_shutdown(
    broker: Broker | Target, pool: str, *, count: int = RUN_TASKS, clock: Clock = time.monotonic
) -> Observation[WarmFacts] | Inapplicable:
    """SIGTERM a worker mid-run: it finishes its running tasks, requeues the rest; nothing is lost.
    A second worker then runs what was requeued."""
    return observe(broker, pool, Scenario(
        name="warm shutdown mid-run",
        expected="running tasks finish, prefetched ones requeued: lost 0, duplicated 0",
        inject=lambda run: _warm_stop(run, count),
        settle=lambda run, _: run.done_count() >= count,
    ), clock=clock)  # fmt: skip


def _warm_stop(run: Run, count: int) -> WarmFacts:
    run.enqueue(TASK_WORK, (run.run, TASK_SECONDS), count=count)
    run.wait_under_way()
    stopped_at = run.mark_fault()
    interrupted = frozenset(ledger.in_flight(run.executions()))
    first = run.workers[0]
    run.remember(first)
    code = first.stop(warm=defaults.WARM_STOP_TIMEOUT, cold=None)
    stop_seconds = run.clock() - stopped_at
    done = run.executions().done
    finished = frozenset(i for i in interrupted if done.get(i, 0) > 0)
    requeued = run.queued()
    run.worker()
    return WarmFacts(code, stop_seconds, interrupted, finished, requeued)


# -- 5. broker restart mid-run -----------------------------------------------------------------------------
def broker_restart(
    broker: Broker | Target,
    pool: str,
    *,
    count: int = RESTART_TASKS,
    visibility_timeout: float = VISIBILITY_TIMEOUT,
    clock: Clock = time.monotonic,
    wall: Clock = time.time,
) -> Observation[RestartFacts] | Inapplicable:
    """Restart the private Redis (append-only) under a running worker and a publishing producer.

    Settled when a task published after the restart completed (within :data:`FAULT_STALL_TIMEOUT`;
    recovery runs from the broker answering again). Then a worker that died or stalled is replaced
    (so ``lost`` counts what the broker lost, not what a dead worker left queued), and messages held
    across the restart run once their visibility timeout passed (a second worker's start sweeps).
    """
    target = as_target(broker)
    if target.kind == "redis" and target.owned and not getattr(target.broker, "appendonly", False):
        raise BrokerError("the broker-restart scenario needs a private Redis with appendonly=True")
    rabbit = target.kind == "rabbitmq"
    return observe(target, pool, Scenario(
        name="broker restart mid-run",
        expected="the worker resumes by itself; every acknowledged publish runs: lost 0"
        + (" (durable queue, persistent messages)" if rabbit else ""),
        visibility_timeout=None if rabbit else visibility_timeout, settle_timeout=FAULT_STALL_TIMEOUT,
        inject=lambda run: _restart_under_load(run, count),
        settle=lambda run, f: any(i in run.executions().done for i in f.after.ids),
        aftermath=_after_restart,
        applies=lambda broker, _: None if broker.owned
        else "needs a private broker; the harness never restarts a --broker-url",
    ), clock=clock, wall=wall)  # fmt: skip


def _restart_under_load(run: Run, count: int) -> RestartFacts:
    """Publish ``count``; once a quarter ran, restart the broker (publishing while down); publish more."""
    before = run.enqueue(TASK_MARK, (run.run,), count=count)
    run.wait_done(count // 4, timeout=FAULT_SETTLE_TIMEOUT, what="tasks before the restart")
    refused: list[Published] = []
    queued_at_stop = frozenset(run.queued_ids())  # what Redis itself must keep across the restart
    down_at, up_at = restart_broker(
        run.broker, clock=run.clock,
        while_down=lambda: refused.append(run.enqueue(TASK_MARK, (run.run,), count=REFUSED_WHILE_DOWN,
                                                      retry=False)),
    )  # fmt: skip
    run.mark_fault(at=up_at)
    run.app.close()
    run.app = run.client_app()
    after = run.enqueue(TASK_MARK, (run.run,), count=count)
    return RestartFacts(before, refused[0], after, queued_at_stop, down_at, up_at)


def _after_restart(run: Run, facts: RestartFacts, settled: bool) -> RestartFacts:
    """Note a crash; replace a dead or stalled worker; run what was held across the restart."""
    first = run.workers[0]
    alive = first.alive()
    crashed = not alive and all(s in first.log() for s in CRASH_SYMPTOM)
    if not settled or not alive:
        run.worker()  # drains what the first one left: the loss count is about the broker, not the crash
    return replace(facts, held=frozenset(_settle_held(run)), crashed=crashed)


def _settle_held(run: Run) -> set[str]:
    """Wait (bounded) until every id ran or is held in ``unacked``; then, for held ones, past their
    visibility timeout, start a worker (its start sweeps) and wait for them. Returns the held ids;
    what neither ran nor is held by then is counted lost."""
    ids = [i for p in run.published for i in p.ids]

    def ran_or_held() -> bool:
        done = run.executions().done
        return run.queued() == 0 and {i for i in ids if i not in done} <= run.held_ids()

    def all_ran() -> bool:
        done = run.executions().done
        return not run.held_ids() and run.queued() == 0 and all(i in done for i in ids)

    _poll(ran_or_held, "the worker to run all it was not holding")
    held = run.held_ids()
    if held:
        run.wait_past_visibility(run.latest_delivery())
        run.worker()
        _poll(all_ran, "the held messages to be restored and run")
    return held


def _poll(condition: Callable[[], bool], what: str) -> bool:
    """``condition`` within :data:`FAULT_SETTLE_TIMEOUT`; False if it did not hold in time."""
    try:
        wait_for(condition, timeout=FAULT_SETTLE_TIMEOUT, what=what, interval=FAULT_POLL)
    except TimeoutError:
        return False
    return True


# -- 6. broker down at enqueue -----------------------------------------------------------------------------
class DownCase(NamedTuple):
    """One publish to a down broker: the retry policy on or off, a stored result, publisher confirms."""

    retry: bool
    results: bool
    label: str
    expected: str
    confirm: bool = False


def broker_down(broker: Broker | Target | None, *, with_results: bool = False) -> list[BrokerDown]:
    """``send_task`` while the broker is down: default retry policy, then ``retry=False``; on RabbitMQ
    also with publisher confirms (``confirm_publish``).

    With ``with_results``, one more row: the default policy for a task whose result is stored.
    """
    policy = Celery(set_as_current=False).conf.task_publish_retry_policy
    cases = [
        DownCase(
            True, False, "default retry policy", f"OperationalError after the policy's retries ({policy})"
        ),
        DownCase(False, False, "retry=False", "OperationalError at once"),
    ]
    if broker is not None and as_target(broker).kind == "rabbitmq":
        cases.append(DownCase(True, False, "publisher confirms", "OperationalError, as without confirms",
                              confirm=True))  # fmt: skip
    return _publish_while_down(broker, cases + ([_RESULTS_CASE] if with_results else []))


_RESULTS_CASE = DownCase(True, True, "default policy, result stored", "OperationalError (calling guide)")


def broker_down_with_results(broker: Broker | Target | None) -> BrokerDown:
    """``send_task`` of a task that stores its result, while the broker is down (on Redis the result
    backend is the same server, so it is down too; beside RabbitMQ the backend is a Redis that is up)."""
    return _publish_while_down(broker, [_RESULTS_CASE])[0]


def _publish_while_down(broker: Broker | Target | None, cases: Sequence[DownCase]) -> list[BrokerDown]:
    """Each case timed against one down broker (a private one is stopped, then started again)."""
    conf = Celery(set_as_current=False).conf
    policy, connect = dict(conf.task_publish_retry_policy), float(conf.broker_connection_timeout)
    target = as_target(broker) if broker is not None else None
    kind = target.kind if target is not None else "redis"
    backend = target.backend_url if target is not None else None
    url, bring_back = down_broker_url(target.broker if target is not None else None, kind)
    try:
        return [
            BrokerDown(
                case.label,
                case.expected,
                publish_error_time(
                    url, retry=case.retry, results=case.results, backend_url=backend, confirm=case.confirm
                ),
                policy,
                connect,
                case.results,
                kind,
            )  # fmt: skip
            for case in cases
        ]
    finally:
        bring_back()


# -- 7. redelivery of a long countdown -----------------------------------------------------------------------
def countdown_redelivery(
    broker: Broker | Target,
    pool: str,
    *,
    visibility_timeout: float = VISIBILITY_TIMEOUT,
    countdown: float = COUNTDOWN_SECONDS,
    wall: Clock = time.time,
) -> Observation[CountdownFacts] | Inapplicable:
    """A countdown longer than ``visibility_timeout`` (kombu #337).

    Worker A receives the task at once and holds it, unacknowledged, until its ETA. On Redis, once the
    visibility timeout has passed, any ``restore_visible`` sweep (here: worker B starting) puts the
    message back, B receives it too, and both run it at the ETA. RabbitMQ has no visibility timeout: the
    message stays with A (a channel holds it until it acks), B never sees it, it runs once.
    """
    rabbit = as_target(broker).kind == "rabbitmq"
    return observe(broker, pool, Scenario(
        name="countdown > visibility_timeout (kombu#337)",
        expected="runs once: no visibility timeout, the message stays with the worker that holds it" if rabbit
        else "documented Redis caveat: redelivered after visibility_timeout, runs more than once",
        visibility_timeout=visibility_timeout, settle_timeout=countdown + FAULT_SETTLE_TIMEOUT / 4,
        inject=lambda run: _hold_countdown(run, countdown),
        settle=_ran_once_and_gone if rabbit else _ran_twice,
    ), wall=wall)  # fmt: skip


def _ran_twice(run: Run, facts: CountdownFacts) -> bool:
    return run.executions().starts.get(facts.task_id, 0) >= 2


def _ran_once_and_gone(run: Run, facts: CountdownFacts) -> bool:
    """It ran, and nothing of it is left in the broker (no ready message, no consumer holding one): no
    second run can come."""
    return bool(run.executions().done.get(facts.task_id)) and run.queued() == 0


def _hold_countdown(run: Run, countdown: float) -> CountdownFacts:
    """Publish the countdown task; once worker A holds it and the visibility timeout passed, start B."""
    task_id = run.enqueue(TASK_MARK_RESULT, (run.run,), count=1, countdown=countdown).ids[0]
    received = f"Task {TASK_MARK_RESULT}[{task_id}] received"
    wait_for(lambda: run.queued() == 0 and received in run.workers[0].log(), timeout=FAULT_SETTLE_TIMEOUT,
             what="worker A to hold the countdown task", interval=FAULT_POLL)  # fmt: skip
    run.wait_past_visibility(run.wall())
    run.worker()
    return CountdownFacts(task_id, countdown)


# -- 8. a late-acknowledged task longer than RabbitMQ's consumer_timeout ------------------------------------
CONSUMER_TIMEOUT_SETTINGS = {
    "consumer_timeout": defaults.CONSUMER_TIMEOUT_MS,
    "channel_tick_interval": defaults.CONSUMER_TIMEOUT_TICK_MS,
}
"""What the scenario sets on the private node for its run; :data:`RABBIT_DEFAULTS` puts back after."""

RABBIT_DEFAULTS = {"consumer_timeout": 1_800_000, "channel_tick_interval": 60_000}
"""RabbitMQ 3.10's defaults of the same settings (30 min; a channel checks once a minute)."""

CHANNEL_CLOSED = "PRECONDITION_FAILED"
"""What a worker logs when RabbitMQ closes its channel on the timeout ("delivery acknowledgement on
channel 1 timed out")."""


def consumer_timeout(
    broker: Broker | Target, pool: str, *, task_seconds: float = defaults.CONSUMER_TIMEOUT_TASK_SECONDS
) -> Observation[ConsumerTimeoutFacts] | Inapplicable:
    """A task with ``acks_late`` that runs longer than RabbitMQ's ``consumer_timeout``.

    RabbitMQ's docs: a consumer that does not acknowledge a delivery within the timeout has its channel
    closed with ``PRECONDITION_FAILED`` and the delivery is requeued. Celery's calling guide (ETA and
    countdown) says the worker then terminates with a ``PreconditionFailed`` error. Settled when the
    worker exited (or the task ran again); a replacement then runs what RabbitMQ requeued. The scenario
    lowers the node's ``consumer_timeout`` and ``channel_tick_interval`` (``rabbitmqctl eval``, read by
    new channels) and puts RabbitMQ's defaults back after.
    """
    timeout_s = defaults.CONSUMER_TIMEOUT_MS / 1000
    return observe(broker, pool, Scenario(
        name="acks_late task longer than consumer_timeout",
        expected="the channel is closed (PRECONDITION_FAILED), the worker exits (calling guide) and the "
        "delivery is requeued: it runs again on the next worker, lost 0",
        settings=WorkerSettings(acks_late=True), settle_timeout=task_seconds + FAULT_SETTLE_TIMEOUT / 4,
        prepare=_lower_consumer_timeout,
        inject=lambda run: _outlive_timeout(run, task_seconds, timeout_s),
        settle=lambda run, f: not run.workers[0].alive() or _all_runs_done(run, f.task_id, at_least=2),
        aftermath=_timeout_fate,
        applies=_needs_private_rabbitmq,
    ))  # fmt: skip


def _needs_private_rabbitmq(target: Target, _pool: str) -> str | None:
    if target.kind != "rabbitmq":
        return "RabbitMQ's consumer_timeout: Redis has none (its visibility_timeout: see the countdown row)"
    return (
        None if target.owned else "needs a private RabbitMQ node (the scenario lowers its consumer_timeout)"
    )


def _lower_consumer_timeout(run: Run) -> Callable[[], None]:
    node = run.broker
    node.set_env(CONSUMER_TIMEOUT_SETTINGS)  # type: ignore[attr-defined]
    return lambda: node.set_env(RABBIT_DEFAULTS)  # type: ignore[attr-defined]


def _outlive_timeout(run: Run, task_seconds: float, timeout_s: float) -> ConsumerTimeoutFacts:
    task_id = run.enqueue(TASK_WORK, (run.run, task_seconds, TASK_SECONDS), count=1).ids[0]
    wait_for(lambda: run.executions().starts.get(task_id), timeout=FAULT_SETTLE_TIMEOUT,
             what=f"task {task_id} to start", interval=FAULT_AIM_POLL)  # fmt: skip
    run.mark_fault()
    return ConsumerTimeoutFacts(task_id, timeout_s, task_seconds)


def _all_runs_done(run: Run, task_id: str, *, at_least: int) -> bool:
    """``task_id`` started ``at_least`` times, and every start completed."""
    executions = run.executions()
    starts = executions.starts.get(task_id, 0)
    return starts >= at_least and executions.done.get(task_id, 0) >= starts


def _timeout_fate(run: Run, facts: ConsumerTimeoutFacts, settled: bool) -> ConsumerTimeoutFacts:
    """Read what the worker logged; if it exited, start a replacement and let it run what RabbitMQ
    requeued (bounded); let every started run finish."""
    first = run.workers[0]
    log = first.log()
    closed = CHANNEL_CLOSED in log
    reconnected = closed and "Connected to amqp://" in log.split(CHANNEL_CLOSED, 1)[-1]
    if not first.alive():
        run.worker()
        _poll(lambda: _all_runs_done(run, facts.task_id, at_least=2), "the requeued task to run again")
    _poll(lambda: _all_runs_done(run, facts.task_id, at_least=1), "every run of the task to complete")
    return replace(facts, channel_closed=closed, reconnected=reconnected)
