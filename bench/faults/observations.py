"""What a fault scenario measured, as typed frozen records: no verdicts, no prose (see ``judging``).

The runner (:func:`bench.faults.run.observe`) returns an :class:`Observation` whose common fields
(accounting, recovery, the first worker's fate, the broker's leftovers, the pids) every scenario has,
and whose ``facts`` are the scenario's own record (:class:`KillSnapshot`, :class:`ChildFacts` ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bench.defaults import SHUTDOWN_SLACK
from bench.faults.injections import PublishFailure
from bench.faults.producer import Published
from bench.ledger import Executions, Tally

F = TypeVar("F")


@dataclass(frozen=True)
class WorkerSettings:
    """The ``tasks/celery_config.py`` overrides of a scenario's workers (replacements get the same)."""

    acks_late: bool = False
    reject_on_worker_lost: bool = False
    loglevel: str = "INFO"
    celery: tuple[tuple[str, Any], ...] = ()
    """Celery settings on the workers' command line (``celery worker ... -- name=value``)."""
    env: tuple[tuple[str, str], ...] = ()
    """More environment of the workers (e.g. the soft-shutdown settings, ``REMAP_SIGTERM``)."""


@dataclass(frozen=True)
class Observation(Generic[F]):
    """One scenario run on one pool, as measured.

    ``settled``: the scenario's settle condition held within its timeout; ``recovery_seconds`` runs
    from the fault's instant to then (None if it did not settle or the scenario marks no fault).
    ``worker_alive``: the first worker was alive once settled. ``queued_after`` / ``held_after``: what
    was still in the run's queue / kombu's ``unacked`` after every worker stopped.
    """

    scenario: str
    expected: str
    pool: str
    settings: WorkerSettings
    visibility_timeout: float | None
    facts: F
    ids: tuple[str, ...]
    failed: tuple[str, ...]
    executions: Executions
    tally: Tally
    settled: bool
    settle_seconds: float
    recovery_seconds: float | None
    worker_alive: bool
    worker_exit: int | None
    reserve_window: int
    queued_after: int
    held_after: frozenset[str]
    log_tail: str
    pids: tuple[int, ...]
    broker: str = "redis"
    """The broker kind it ran on (``redis``, ``rabbitmq``)."""

    @property
    def lost_ids(self) -> frozenset[str]:
        """Published ids with no completed execution."""
        return frozenset(i for i in self.ids if self.executions.done.get(i, 0) == 0)

    @property
    def twice(self) -> frozenset[str]:
        """Published ids whose body started, or completed, more than once."""
        starts, done = self.executions.starts, self.executions.done
        return frozenset(i for i in self.ids if starts.get(i, 0) > 1 or done.get(i, 0) > 1)

    def starts(self, task_id: str) -> int:
        return self.executions.starts.get(task_id, 0)


@dataclass(frozen=True)
class Inapplicable:
    """A scenario that does not apply to this pool or broker, and why."""

    scenario: str
    expected: str
    pool: str
    reason: str
    broker: str = "redis"


# -- the scenarios' own facts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadFacts:
    """The no-fault load: how many tasks it was to publish, and how long the publishes took."""

    count: int
    publish_seconds: float


@dataclass(frozen=True)
class ChildFacts:
    """A killed prefork child: the task, the victim, how the task ended, whether the worker survived."""

    task_id: str
    acks_late: bool  # the task's options: acks_late and reject_on_worker_lost
    victim: int
    children_before: frozenset[int]
    state: str = ""
    error: str = ""
    worker_alive: bool = False
    child_replaced: bool = False


@dataclass(frozen=True)
class KillSnapshot:
    """Where each task id of a run was at a worker's SIGKILL (read just before and just after it).

    A message is in the queue (not delivered), in kombu's ``unacked`` hash (delivered, not
    acknowledged: it comes back after the visibility timeout), or neither: acknowledged, or popped by
    a BRPOP whose reply the dead worker never read (kombu#1733). The ledger tells started from done.
    """

    ids: frozenset[str]
    queued_before: frozenset[str]
    queued: frozenset[str]
    held: frozenset[str]
    started: frozenset[str]
    done: frozenset[str]

    @property
    def interrupted(self) -> frozenset[str]:
        """Started, not completed: what the kill interrupted."""
        return self.started - self.done

    @property
    def acknowledged(self) -> frozenset[str]:
        """Not completed and gone from the broker: acknowledged (or lost in a BRPOP window)."""
        return self.ids - self.done - self.held - self.queued

    @property
    def popped_unseen(self) -> frozenset[str]:
        """Never started, not completed, gone from the queue and from ``unacked``: with ``acks_late``
        (nothing is acknowledged before its body) only kombu#1733's BRPOP window explains it, a message
        popped but never recorded as unacknowledged. The pop may come before the pre-kill read of the
        queue (``queued_before``), so that read does not bound it."""
        return self.acknowledged - self.started


@dataclass(frozen=True)
class KillFacts:
    """A killed worker: the snapshot at the kill, and what was still held from before it at the end
    (``stuck``: no restore sweep moved it back). ``waited``: seconds from the kill until the replacement
    was started (the scenario waits out ``visibility_timeout`` first); ``startup``: seconds until the
    replacement answered a ping. Both are part of the observation's ``recovery_seconds``."""

    snapshot: KillSnapshot
    killed_wall: float
    stuck: frozenset[str] = frozenset()
    waited: float = 0.0
    startup: float = 0.0


@dataclass(frozen=True)
class WarmFacts:
    """A warm shutdown: its exit code and time, the running tasks and which finished, what was requeued."""

    exit_code: int | None
    stop_seconds: float
    interrupted: frozenset[str]
    finished: frozenset[str]
    requeued: int


@dataclass(frozen=True)
class RestartFacts:
    """A broker restart: what was published before, during and after it, and when it was down.

    ``held``: ids held unacknowledged across the restart (they ran only after the visibility timeout);
    ``crashed``: the worker died with the known AttributeError (kombu#582 / celery#10205 family)."""

    before: Published
    during: Published
    after: Published
    queued_at_stop: frozenset[str]
    down_at: float
    up_at: float
    held: frozenset[str] = frozenset()
    crashed: bool = False

    @property
    def downtime(self) -> float:
        return self.up_at - self.down_at

    @property
    def refused_while_down(self) -> int:
        return len(self.during.failed)


@dataclass(frozen=True)
class CountdownFacts:
    """A countdown past the visibility timeout: the task and its countdown."""

    task_id: str
    countdown: float


@dataclass(frozen=True)
class ConsumerTimeoutFacts:
    """A late-acknowledged task that runs longer than RabbitMQ's ``consumer_timeout``: the task, the
    timeout and the task's length, and what the worker's log said (the channel closed by the broker)."""

    task_id: str
    timeout_seconds: float
    task_seconds: float
    channel_closed: bool = False
    reconnected: bool = False


@dataclass(frozen=True)
class ShutdownCase:
    """One shutdown: the signals sent to the worker (the second once the first was logged), the task
    state at the first (``idle``, ``running``, ``eta``: an ETA task reserved), and the settings."""

    label: str
    signals: tuple[str, ...]
    state: str
    soft_timeout: float = 0.0
    remap_sigterm: bool = False
    soft_on_idle: bool = False
    acks_late: bool = False

    @property
    def cold(self) -> bool:
        """A cold shutdown (SIGQUIT, or SIGTERM remapped to it), soft first if ``soft_timeout``."""
        return "SIGQUIT" in self.signals or self.remap_sigterm

    @property
    def soft_waits(self) -> bool:
        """Whether the soft shutdown waits its timeout (only with requests, or ``soft_on_idle``)."""
        return self.cold and self.soft_timeout > 0 and (self.state == "running" or self.soft_on_idle)

    @property
    def expected_exit(self) -> int:
        """0 after a warm shutdown, ``EX_FAILURE`` (1) after a cold one (``celery/apps/worker.py``)."""
        return 1 if self.cold else 0

    def bound(self, task_seconds: float) -> float:
        """The most the worker may take to exit: what the shutdown must wait for (the soft timeout, or
        a warm shutdown's running tasks), plus ``SHUTDOWN_SLACK``."""
        waits = 0.0
        if self.soft_waits:
            waits = self.soft_timeout
        elif not self.cold and self.state == "running":
            waits = task_seconds
        return waits + SHUTDOWN_SLACK


@dataclass(frozen=True)
class ShutdownFacts:
    """A signalled worker: how long it took to exit and with which code; the ids started and completed
    at the first signal (read just after it) and after the exit; what the broker has back (``kept``;
    ``held``: of it, delivered before, i.e. Redis's ``unacked`` or RabbitMQ's ``redelivered``); the
    completed ids whose result says FAILURE (celery#9505), and the errors of interrupted ones.

    From the worker's log: ``accepted``, the ids the pool had taken before the first signal was handled
    (Celery's ``Task accepted`` line, written where it acknowledges a task without ``acks_late``), and
    ``accepted_later`` after it; ``received``, every id its consumer got (``Task ... received``);
    ``crash``, the error the worker or its signal handler died on, if any;
    ``handled``, whether the handler printed its ``Warm/Cold shutdown (MainProcess)`` (it returned)."""

    case: ShutdownCase
    task_seconds: float
    exit_code: int | None
    seconds: float
    hung: bool
    started: frozenset[str]
    done: frozenset[str]
    started_after: frozenset[str]
    done_after: frozenset[str]
    kept: frozenset[str]
    held: frozenset[str]
    failure_marked: frozenset[str] = frozenset()
    errors: frozenset[str] = frozenset()
    accepted: frozenset[str] = frozenset()
    accepted_later: frozenset[str] = frozenset()
    received: frozenset[str] = frozenset()
    crash: str = ""
    handled: bool = True

    @property
    def interrupted(self) -> frozenset[str]:
        """Running at the first signal: what the shutdown hit."""
        return self.started - self.done

    @property
    def taken_unstarted(self) -> frozenset[str]:
        """Taken by the pool (accepted) before the first signal, their body not started yet: without
        ``acks_late`` already acknowledged, so a cold shutdown that cancels them loses them (the
        documented early-ack window, which the ledger alone cannot tell from a task still queued)."""
        return self.accepted - self.started

    @property
    def seen(self) -> frozenset[str]:
        """What the worker got at all: received, taken by the pool, or started."""
        return self.received | self.accepted | self.accepted_later | self.started_after

    @property
    def taken_later(self) -> frozenset[str]:
        """Taken by the pool after the first signal (a shutdown should take nothing new), started or not."""
        return self.accepted_later | self.started_later

    @property
    def started_later(self) -> frozenset[str]:
        """Started after the first signal (a shutdown should start nothing new)."""
        return self.started_after - self.started

    @property
    def cancels(self) -> bool:
        """Whether the shutdown cancels running tasks: cold, and no soft wait lets them finish first."""
        return self.case.cold and not (self.case.soft_waits and self.case.soft_timeout >= self.task_seconds)


@dataclass(frozen=True)
class BrokerDown:
    """``send_task`` to a down broker (producer side, no worker): how it ended, under which policy."""

    label: str
    expected: str
    failure: PublishFailure
    policy: Mapping[str, Any] = field(default_factory=dict)
    connect_timeout: float = 0.0
    results: bool = False
    broker: str = "redis"
