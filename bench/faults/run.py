"""The one fault runner: a :class:`Scenario` declares its workers, an ``inject`` step and a ``settle``
condition; :func:`observe` owns the rest (queue, client app, workers, ledger reads, accounting, pids,
cleanup) and returns a typed :class:`~bench.faults.observations.Observation`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic

from bench import defaults, ledger
from bench.broker import Broker
from bench.defaults import FAULT_AIM_POLL, FAULT_CLOCK_SLACK, FAULT_POLL, FAULT_SETTLE_TIMEOUT
from bench.faults.kombu_redis import (
    REDIS_PRIORITY_SEP,
    REDIS_PRIORITY_STEPS,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    envelope_id,
    unacked_ids,
)
from bench.faults.observations import F, Inapplicable, Observation, WorkerSettings
from bench.faults.producer import Published, client_app, enqueue, worker_env
from bench.procs import wait_for
from bench.worker import Worker

ACKS_AFTER_THE_BODY = frozenset({"solo"})
"""Pools that acknowledge a task only after its body, even without ``task_acks_late`` (celery#3430)."""

NO_RESTORE_SWEEP = frozenset(defaults.GREEN_POOLS)
"""Pools whose workers never run kombu's Redis ``restore_visible`` sweep (celery#4976): what a dead worker
held stays in ``unacked`` until a worker of another pool sweeps. kombu runs the sweep at the event loop's
start and on its timer; a gevent or eventlet worker runs Celery's ``synloop``, where kombu sweeps only
after a poll that saw no event, and the BRPOP's own 1 s timeout reply is an event within every 2 s
``drain_events``."""

NO_RESTORE_SWEEP_ISSUE = "celery#4976: gevent/eventlet workers never run the Redis restore sweep"
"""The short reason the judged notes carry for a ``NO_RESTORE_SWEEP`` pool."""


class Run:
    """One scenario run: a run id, a queue of its own, the client app, the workers it started, what it
    published, and the instant of its fault (``clock`` for durations, ``wall`` for broker scores)."""

    def __init__(
        self,
        broker: Broker,
        pool: str,
        *,
        settings: WorkerSettings | None = None,
        visibility_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.broker, self.pool, self.settings = broker, pool, settings or WorkerSettings()
        self.visibility_timeout = visibility_timeout
        self.clock, self.wall = clock, wall
        self.run = uuid.uuid4().hex[:12]
        self.queue = f"rel.{self.run}"
        self.app = client_app(broker.url, visibility_timeout=visibility_timeout)
        self.redis = broker.client()
        self.workers: list[Worker] = []
        self.pids: set[int] = set()
        self.published: list[Published] = []
        self.fault_at: float | None = None

    # -- acting --------------------------------------------------------------------------------------
    def enqueue(self, task: str, args: Sequence[Any], *, count: int, **options: Any) -> Published:
        """:func:`enqueue` to this run's queue; every id counts in the run's accounting."""
        published = enqueue(self.app, task, args, queue=self.queue, count=count, **options)
        self.published.append(published)
        return published

    def worker(self) -> Worker:
        """Start a worker with the scenario's settings on the run's queue (ready when it answers)."""
        s = self.settings
        env = worker_env(acks_late=s.acks_late, reject_on_worker_lost=s.reject_on_worker_lost,
                         visibility_timeout=self.visibility_timeout)  # fmt: skip
        concurrency = defaults.FAULT_CONCURRENCY if self.pool in defaults.GREEN_POOLS else None
        worker = Worker(self.broker.url, pool=self.pool, concurrency=concurrency, queues=(self.queue,),
                        env=env, loglevel=s.loglevel)  # fmt: skip
        self.workers.append(worker)
        worker.start()
        self.remember(worker)
        return worker

    def remember(self, worker: Worker) -> None:
        """Note the worker's pids (and its pool children's), for the leak check."""
        if worker.process is not None:
            self.pids.add(worker.pid)
            self.pids.update(worker.child_pids())

    def mark_fault(self, at: float | None = None) -> float:
        """The fault's instant (``clock``): recovery is measured from it."""
        self.fault_at = self.clock() if at is None else at
        return self.fault_at

    def stop_workers(self) -> None:
        """Stop every worker (warm, then firmly), newest first; remember their pids first."""
        for worker in reversed(self.workers):
            self.remember(worker)
            worker.stop()

    # -- reading -------------------------------------------------------------------------------------
    def executions(self) -> ledger.Executions:
        return ledger.read(self.redis, self.run)

    def queued(self) -> int:
        return int(self.redis.llen(self.queue))

    def queued_ids(self) -> set[str]:
        """Task ids of the messages waiting in this run's queue (one LRANGE)."""
        return set(filter(None, map(envelope_id, self.redis.lrange(self.queue, 0, -1))))

    def _held(self) -> dict[str, str]:
        """Delivery tag -> task id of this run's messages in kombu's ``unacked`` hash."""
        return unacked_ids(self.redis.hgetall(UNACKED_KEY), self.queue)

    def held_ids(self) -> set[str]:
        """Task ids of this run held unacknowledged (delivered, not acked, not restored yet)."""
        return set(self._held().values())

    def held_since(self, wall: float) -> set[str]:
        """Ids still held from a delivery before ``wall`` (their ``unacked_index`` score is earlier)."""
        held = self._held()
        scores = self.redis.zmscore(UNACKED_INDEX_KEY, list(held)) if held else []
        return {
            held[tag] for tag, score in zip(held, scores, strict=True) if score is not None and score < wall
        }

    def latest_delivery(self) -> float:
        """Wall time of the latest delivery among the held messages (their ``unacked_index`` score)."""
        scores = [self.redis.zscore(UNACKED_INDEX_KEY, tag) for tag in self._held()]
        return max((float(s) for s in scores if s is not None), default=0.0)

    # -- waiting -------------------------------------------------------------------------------------
    def done_count(self) -> int:
        """How many distinct ids completed at least once (one HLEN)."""
        return ledger.done_count(self.redis, self.run)

    def wait_done(self, count: int, *, timeout: float, what: str) -> None:
        wait_for(
            lambda: self.done_count() >= count,
            timeout=timeout, what=f"{count} {what} to complete", interval=FAULT_POLL,
        )  # fmt: skip

    def wait_under_way(self, *, need_ack: bool = False) -> None:
        """Until 2 tasks completed and one more runs; with ``need_ack``, a running one already
        acknowledged (gone from ``unacked``), so that a kill tests what the defaults document."""

        def ready() -> bool:
            executions = self.executions()
            running = ledger.in_flight(executions)
            if len(executions.done) < 2 or not running:
                return False
            return not need_ack or bool(running - self.held_ids())

        what = "the run to be under way (2 done, 1 running" + (", acknowledged)" if need_ack else ")")
        wait_for(ready, timeout=FAULT_SETTLE_TIMEOUT, what=what, interval=FAULT_AIM_POLL)

    def wait_past_visibility(self, since_wall: float) -> None:
        """Until the visibility timeout has passed since ``since_wall`` (so a sweep restores what was
        delivered before it)."""
        vt = self.visibility_timeout or 0.0
        wait_for(lambda: self.wall() > since_wall + vt, timeout=vt + FAULT_CLOCK_SLACK,
                 what="the visibility timeout to pass", interval=FAULT_POLL)  # fmt: skip

    # -- cleanup -------------------------------------------------------------------------------------
    def run_keys(self) -> list[str]:
        """The broker keys this run may have created (besides the ledger's and kombu's ``unacked``)."""
        queues = [self.queue] + [f"{self.queue}{REDIS_PRIORITY_SEP}{p}" for p in REDIS_PRIORITY_STEPS if p]
        task_ids = [i for p in self.published for i in p.ids + p.failed]
        return [
            *queues,
            *(f"{prefix}.{self.queue}" for prefix in ("_kombu.binding", "_kombu.binding_permanent")),
            *(f"{w.node}.celery.pidbox" for w in self.workers),
            *(f"celery-task-meta-{i}" for i in task_ids),
        ]

    def close(self) -> None:
        """Stop the workers, then delete exactly this run's keys (never any other: the broker may be
        a user's): its ledger, queue, binding, results, and its messages left in ``unacked``."""
        self.stop_workers()
        try:
            self._delete_keys()
        except Exception:  # noqa: BLE001,S110 - cleanup of a broker that may be down
            pass
        self.redis.close()
        self.app.close()

    def _delete_keys(self) -> None:
        ledger.forget(self.redis, self.run)
        tags = list(self._held())
        if tags:
            self.redis.hdel(UNACKED_KEY, *tags)
            self.redis.zrem(UNACKED_INDEX_KEY, *tags)
        self.redis.zrem("_kombu.binding_deadlines", self.queue)
        if self.workers:  # the bindings of its workers' control queues (a killed worker leaves its own)
            sep = REDIS_PRIORITY_SEP
            members = [f"{sep}{sep}{w.node}.celery.pidbox" for w in self.workers]
            for key in ("_kombu.binding.celery.pidbox", "_kombu.binding_permanent.celery.pidbox"):
                self.redis.srem(key, *members)
        keys = self.run_keys()
        for start in range(0, len(keys), 1000):
            self.redis.delete(*keys[start : start + 1000])


@contextmanager
def fault_run(broker: Broker, pool: str, **options: Any) -> Iterator[Run]:
    """A :class:`Run` that is always closed (workers stopped, keys deleted)."""
    run = Run(broker, pool, **options)
    try:
        yield run
    finally:
        run.close()


# -- the runner ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario(Generic[F]):
    """What a scenario declares; :func:`observe` runs it.

    ``inject(run)`` publishes, injects the fault (``run.mark_fault()`` at its instant) and returns the
    scenario's facts; ``settle(run, facts)`` is polled (every :data:`FAULT_POLL`, up to
    ``settle_timeout``); ``aftermath(run, facts, settled)``, if any, reads (or repairs) more once it
    settled or timed out, before every worker stops. ``applies(broker, pool)`` returns why it does not.
    """

    name: str
    expected: str
    inject: Callable[[Run], F]
    settle: Callable[[Run, F], bool]
    settings: WorkerSettings = WorkerSettings()
    visibility_timeout: float | None = None
    settle_timeout: float = FAULT_SETTLE_TIMEOUT
    aftermath: Callable[[Run, F, bool], F] | None = None
    applies: Callable[[Broker, str], str | None] = lambda broker, pool: None


def observe(
    broker: Broker,
    pool: str,
    scenario: Scenario[F],
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> Observation[F] | Inapplicable:
    """Run ``scenario`` on ``pool``: one worker, inject, settle (bounded), aftermath, stop, account."""
    if reason := scenario.applies(broker, pool):
        return Inapplicable(scenario.name, scenario.expected, pool, reason)
    with fault_run(broker, pool, settings=scenario.settings, visibility_timeout=scenario.visibility_timeout,
                   clock=clock, wall=wall) as run:  # fmt: skip
        first = run.worker()
        facts = scenario.inject(run)
        started = clock()
        try:
            wait_for(lambda: scenario.settle(run, facts), timeout=scenario.settle_timeout,
                     what=f"{scenario.name} to settle", interval=FAULT_POLL)  # fmt: skip
            settled = True
        except TimeoutError:
            settled = False
        ended = clock()
        alive = first.alive()
        if scenario.aftermath is not None:
            facts = scenario.aftermath(run, facts, settled)
        recovery = ended - run.fault_at if settled and run.fault_at is not None else None
        return _account(run, scenario, facts, first, settled=settled, settle_seconds=ended - started,
                        recovery=recovery, alive=alive)  # fmt: skip


def _account(
    run: Run,
    scenario: Scenario[F],
    facts: F,
    first: Worker,
    *,
    settled: bool,
    settle_seconds: float,
    recovery: float | None,
    alive: bool,
) -> Observation[F]:
    """Stop every worker (nothing can execute any more), then read the ledger and the broker."""
    tail = log_tail(first)  # before the stop, which removes the log
    run.stop_workers()
    executions = run.executions()
    ids = tuple(i for p in run.published for i in p.ids)
    failed = tuple(i for p in run.published for i in p.failed)
    return Observation(
        scenario=scenario.name, expected=scenario.expected, pool=run.pool, settings=run.settings,
        visibility_timeout=run.visibility_timeout, facts=facts, ids=ids, failed=failed,
        executions=executions, tally=ledger.account(ids, executions, failed=failed), settled=settled,
        settle_seconds=settle_seconds, recovery_seconds=recovery, worker_alive=alive,
        worker_exit=None if alive else first.returncode(),
        reserve_window=defaults.PREFETCH_MULTIPLIER * (first.concurrency or 1),
        queued_after=run.queued(), held_after=frozenset(run.held_ids()), log_tail=tail,
        pids=tuple(sorted(run.pids)),
    )  # fmt: skip


def log_tail(worker: Worker) -> str:
    """The worker log's last lines but the per-task ones (for a failed test's message)."""
    lines = worker.log().splitlines()[-400:]
    kept = "\n".join(line for line in lines if "] received" not in line and "succeeded in" not in line)
    return kept[-3000:]
