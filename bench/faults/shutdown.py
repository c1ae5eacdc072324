"""Shutdown semantics: a worker signalled while idle, while running tasks, or holding an ETA task.

Celery 5.5 put a *soft* shutdown between warm and cold (``apps/worker.py``, docs "Workers Guide →
Stopping the worker"): SIGTERM is a warm shutdown (running tasks finish; SIGTERM remapped by
``REMAP_SIGTERM=SIGQUIT`` becomes a cold one), SIGQUIT a cold one, which first waits up to
``worker_soft_shutdown_timeout`` while requests run (``worker_enable_soft_shutdown_on_idle``: even when
none do), then cancels what runs and exits. The worker exits 0 after a warm shutdown and 1
(``EX_FAILURE``) after a cold one. Unacknowledged messages go back to the broker (Redis: kombu
restores its ``unacked`` at close; RabbitMQ: the channel closes), so only a task acknowledged before it
completed and then cancelled can be lost, and only an interrupted task can run twice.

Each case starts one worker, brings it to the state, sends the signals (the second once the worker
logged the first), waits (bounded) for it to exit and reads where every message is. No replacement
worker runs: what the broker has back is what would run again.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from typing import NamedTuple

from celery.result import AsyncResult

from bench import defaults
from bench.broker import Broker
from bench.defaults import FAULT_AIM_POLL, FAULT_POLL, FAULT_SETTLE_TIMEOUT
from bench.faults.observations import Inapplicable, Observation, ShutdownCase, ShutdownFacts, WorkerSettings
from bench.faults.producer import TASK_MARK, TASK_WORK
from bench.faults.run import Run, Scenario, Target, observe
from bench.procs import is_windows, wait_for
from bench.worker import Worker

SHUTDOWN_TASKS = 6
"""Tasks of a ``running`` case: some run at the signal, the rest are reserved or queued."""

_SOFT = defaults.SOFT_SHUTDOWN_TIMEOUT
SHUTDOWN_CASES = (
    ShutdownCase("TERM, idle", ("SIGTERM",), "idle"),
    ShutdownCase("TERM, running", ("SIGTERM",), "running"),
    ShutdownCase("TERM then QUIT, running", ("SIGTERM", "SIGQUIT"), "running"),
    ShutdownCase("QUIT, running", ("SIGQUIT",), "running"),
    ShutdownCase("QUIT, running, acks_late", ("SIGQUIT",), "running", acks_late=True),
    ShutdownCase(
        f"TERM as QUIT, soft {_SOFT:g}s, running",
        ("SIGTERM",),
        "running",
        soft_timeout=_SOFT,
        remap_sigterm=True,
    ),  # fmt: skip
    ShutdownCase("TERM, ETA task reserved", ("SIGTERM",), "eta"),
    ShutdownCase(
        f"TERM as QUIT, soft {_SOFT:g}s on idle, ETA task reserved",
        ("SIGTERM",),
        "eta",
        soft_timeout=_SOFT,
        remap_sigterm=True,
        soft_on_idle=True,
    ),  # fmt: skip
)
"""The signal sequences x task states the shutdown scenarios run (names are the table's rows)."""

SHUTDOWN_LOGGED = ("Warm shutdown", "Cold shutdown", "Hitting Ctrl+C again will terminate")
"""What a worker prints when a shutdown signal reached it: ``worker: Warm shutdown (MainProcess)``, or
the cold handler's first line (its ``Cold shutdown`` line comes after a soft wait)."""


def shutdown_settings(case: ShutdownCase) -> WorkerSettings:
    """The case's worker: soft-shutdown settings on its command line, ``REMAP_SIGTERM`` and
    ``TASKS_LOG_ACCEPTED`` (see :data:`ACCEPTED`) in its env."""
    celery: list[tuple[str, object]] = []
    if case.soft_timeout:
        celery.append(("worker_soft_shutdown_timeout", case.soft_timeout))
    if case.soft_on_idle:
        celery.append(("worker_enable_soft_shutdown_on_idle", True))
    env = (("TASKS_LOG_ACCEPTED", "1"),) + ((("REMAP_SIGTERM", "SIGQUIT"),) if case.remap_sigterm else ())
    return WorkerSettings(acks_late=case.acks_late, celery=tuple(celery), env=env)


ACCEPTED = re.compile(r"Task accepted: [\w.]+\[([\w-]+)\]")
"""Celery's DEBUG line when the pool takes a task (``Request.on_accepted``, which acknowledges it then
unless ``acks_late``): ``Task accepted: bench.probes.work[<id>] pid:<pid>``. The shutdown workers log
it (``TASKS_LOG_ACCEPTED``, see ``tasks.reliability.log_accepted``)."""

RECEIVED = re.compile(r"Task [\w.]+\[([\w-]+)\] received")
"""Celery's INFO line when the consumer got a task message (reserved, not yet taken by the pool)."""

CRASH = re.compile(r"Unrecoverable error: (.+)|(\S*BlockingSwitchOutError: .+)")
"""What a worker logs when an exception escaped its consumer (CRITICAL, it then stops), or gevent's hub
when one escaped a signal handler it ran (the traceback's last line)."""

HANDLED = {False: "worker: Warm shutdown (MainProcess)", True: "worker: Cold shutdown (MainProcess)"}
"""What the warm (False) or cold (True) shutdown signal handler prints once its callback returned (the
cold one's: after it cancelled what ran)."""


class LogFacts(NamedTuple):
    """What a shutdown worker's log says (see :class:`ShutdownFacts`)."""

    accepted: frozenset[str]
    accepted_later: frozenset[str]
    received: frozenset[str]
    crash: str
    handled: bool


def read_log(log: str, *, cold: bool = True) -> LogFacts:
    """The ids accepted before the first shutdown line and after it, the ids received at all, the error
    the worker died on (``''`` if none), and whether the handler of a ``cold`` (or warm) shutdown
    returned."""
    first = min((i for i in (log.find(s) for s in SHUTDOWN_LOGGED) if i >= 0), default=len(log))
    crash = CRASH.search(log)
    return LogFacts(
        frozenset(ACCEPTED.findall(log[:first])), frozenset(ACCEPTED.findall(log[first:])),
        frozenset(RECEIVED.findall(log)), next(g for g in crash.groups() if g).strip() if crash else "",
        HANDLED[cold] in log,
    )  # fmt: skip


def shutdown(
    broker: Broker | Target,
    pool: str,
    case: ShutdownCase,
    *,
    task_seconds: float = defaults.SHUTDOWN_TASK_SECONDS,
) -> Observation[ShutdownFacts] | Inapplicable:
    """Run one shutdown case on ``pool`` (see the module docstring and ``judging.judge_shutdown``)."""
    lost = (
        "the running tasks not acknowledged late may be lost"
        if case.cold and not case.acks_late
        else "lost 0"
    )
    return observe(broker, pool, Scenario(
        name=f"shutdown: {case.label}",
        expected=("exits" if case.cold else "exits 0") + f" within {case.bound(task_seconds):g}s; what was "
        f"unacknowledged is back in the broker; {lost}; only interrupted tasks run twice; no completed "
        "task marked FAILURE",
        settings=shutdown_settings(case),
        inject=lambda run: _signal(run, case, task_seconds),
        settle=lambda run, facts: True,
        applies=lambda _target, _pool: "POSIX signals" if is_windows() else None,
    ))  # fmt: skip


def _signal(run: Run, case: ShutdownCase, task_seconds: float) -> ShutdownFacts:
    worker = run.workers[0]
    _bring_to(run, case.state, task_seconds)
    run.remember(worker)
    began = run.mark_fault()
    at_signal = None
    for name in case.signals:
        if worker.alive():
            os.kill(worker.pid, getattr(signal, name))
        _until_logged(worker)  # the handler ran: what started by now started before the shutdown
        at_signal = at_signal or run.executions()
    hung = not _exited(worker)
    seconds = run.clock() - began
    if hung:
        worker.kill()
    code = worker.returncode()
    queued, held = run.kept_ids()
    after = run.executions()
    assert at_signal is not None
    logged = read_log(worker.log(), cold=case.cold)._asdict()
    facts = ShutdownFacts(
        case, task_seconds, code, seconds, hung, frozenset(at_signal.starts), frozenset(at_signal.done),
        frozenset(after.starts), frozenset(after.done), queued | held, held, **logged,
    )  # fmt: skip
    return _results(run, facts)


def _results(run: Run, facts: ShutdownFacts) -> ShutdownFacts:
    """The completed ids whose result says FAILURE, and the errors of the interrupted ones that failed."""
    states = {i: AsyncResult(i, app=run.app) for i in facts.started_after}
    marked = frozenset(i for i in facts.done_after if states[i].state == "FAILURE")
    errors = frozenset(
        type(r.result).__name__ for i, r in states.items()
        if i not in facts.done_after and r.state == "FAILURE" and isinstance(r.result, BaseException)
    )  # fmt: skip
    return replace(facts, failure_marked=marked, errors=errors)


def _bring_to(run: Run, state: str, task_seconds: float) -> None:
    """Idle after two tasks ran; ``running``: tasks running (and more reserved); ``eta``: an ETA task
    received and held."""
    if state == "idle":
        run.enqueue(TASK_MARK, (run.run,), count=2)
        run.wait_done(2, timeout=FAULT_SETTLE_TIMEOUT, what="the tasks before the idle shutdown")
    elif state == "running":
        run.enqueue(TASK_WORK, (run.run, task_seconds), count=SHUTDOWN_TASKS)
        wait_for(lambda: bool(run.executions().starts), timeout=FAULT_SETTLE_TIMEOUT,
                 what="a task to be running", interval=FAULT_AIM_POLL)  # fmt: skip
    else:
        task_id = run.enqueue(TASK_MARK, (run.run,), count=1, countdown=defaults.SHUTDOWN_ETA_COUNTDOWN).ids[
            0
        ]
        received = f"[{task_id}] received"
        wait_for(lambda: received in run.workers[0].log(), timeout=FAULT_SETTLE_TIMEOUT,
                 what="the worker to hold the ETA task", interval=FAULT_POLL)  # fmt: skip


def _until_logged(worker: Worker) -> None:
    """Until the worker logged a shutdown line (or exited)."""
    wait_for(
        lambda: not worker.alive() or any(s in worker.log() for s in SHUTDOWN_LOGGED),
        timeout=FAULT_SETTLE_TIMEOUT, what="the worker to log its shutdown", interval=FAULT_AIM_POLL,
    )  # fmt: skip


def _exited(worker: Worker) -> bool:
    try:
        wait_for(lambda: not worker.alive(), timeout=defaults.SHUTDOWN_EXIT_TIMEOUT,
                 what="the worker to exit", interval=FAULT_AIM_POLL)  # fmt: skip
    except TimeoutError:
        return False
    return True
