"""The one fault runner: a :class:`Scenario` declares its workers, an ``inject`` step and a ``settle``
condition; :func:`observe` owns the rest (queue, client app, workers, ledger reads, accounting, pids,
cleanup) and returns a typed :class:`~bench.faults.observations.Observation`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic

from bench import defaults, ledger, pools
from bench.broker import Broker
from bench.brokers import kind_of_url
from bench.config import Config
from bench.defaults import FAULT_AIM_POLL, FAULT_CLOCK_SLACK, FAULT_POLL, FAULT_SETTLE_TIMEOUT
from bench.faults.injections import Server
from bench.faults.kombu_amqp import AmqpQueues
from bench.faults.kombu_redis import (
    REDIS_PRIORITY_SEP,
    REDIS_PRIORITY_STEPS,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    envelope_id,
    unacked_ids,
)
from bench.faults.observations import F, Inapplicable, Observation, WorkerSettings
from bench.faults.producer import Published, client_app, configured_worker, enqueue, worker_env
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

HEARTBEAT_OFF = (("broker_heartbeat", 0),)
"""The workaround: no AMQP heartbeat, hence no drain of the event connection per delivery."""


def paced(broker: str, pool: str, settings: WorkerSettings) -> bool:
    """Whether a worker of ``pool`` on ``broker`` with ``settings`` runs at the synloop's pace."""
    return pools.synloop_paced(broker, pool, dict(settings.celery))


@dataclass(frozen=True)
class Target:
    """Where a scenario runs: the ``broker`` its workers consume from, and the ``store``, a Redis for
    the ledger and the results (the broker itself when it is a Redis)."""

    broker: Server
    store: Broker

    @property
    def kind(self) -> str:
        """``redis`` or ``rabbitmq`` (from the broker's URL)."""
        return kind_of_url(self.broker.url)

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def owned(self) -> bool:
        return self.broker.owned

    @property
    def backend_url(self) -> str | None:
        """The workers' result backend: None (the broker itself) on Redis, else the store."""
        return None if self.store is self.broker else self.store.url

    def client(self) -> Any:
        """A Redis client to the store (ledger, results)."""
        return self.store.client()


def as_target(broker: Broker | Target) -> Target:
    """A scenario's target: a plain Redis ``Broker`` is its own store."""
    return broker if isinstance(broker, Target) else Target(broker, broker)


class Run:
    """One scenario run: a run id, a queue of its own, the client app, the workers it started, what it
    published, and the instant of its fault (``clock`` for durations, ``wall`` for broker scores)."""

    def __init__(
        self,
        broker: Broker | Target,
        pool: str,
        *,
        settings: WorkerSettings | None = None,
        visibility_timeout: float | None = None,
        config: Config | None = None,
        worker_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.target = as_target(broker)
        self.broker, self.kind = self.target.broker, self.target.kind
        self.pool, self.settings = pool, settings or WorkerSettings()
        self.visibility_timeout = visibility_timeout
        self.config = config
        """``None``: the seed app with ``settings`` (the fault tier); else this configuration's app and
        settings for workers and producer (``bench sweep``'s delivery probe)."""
        self.extra_env = dict(worker_env or {})
        self.clock, self.wall = clock, wall
        self.run = uuid.uuid4().hex[:12]
        self.queue = f"rel.{self.run}"
        self.app = self.client_app()
        self.redis = self.target.client()
        self.amqp = AmqpQueues(self.broker.url) if self.kind == "rabbitmq" else None
        self.workers: list[Worker] = []
        self.pids: set[int] = set()
        self.published: list[Published] = []
        self.fault_at: float | None = None

    # -- acting --------------------------------------------------------------------------------------
    def client_app(self) -> Any:
        """A producer app for the run's broker and store (again after a broker restart)."""
        return client_app(self.broker.url, backend_url=self.target.store.url,
                          visibility_timeout=self.visibility_timeout, config=self.config)  # fmt: skip

    def enqueue(self, task: str, args: Sequence[Any], *, count: int, **options: Any) -> Published:
        """:func:`enqueue` to this run's queue; every id counts in the run's accounting."""
        published = enqueue(self.app, task, args, queue=self.queue, count=count, **options)
        self.published.append(published)
        return published

    def worker(self, *, wait: bool = True) -> Worker:
        """Start a worker with the scenario's settings on the run's queue (ready when it answers)."""
        s = self.settings
        env = worker_env(acks_late=s.acks_late, reject_on_worker_lost=s.reject_on_worker_lost,
                         visibility_timeout=self.visibility_timeout)  # fmt: skip
        env = env | dict(s.env) | self.extra_env
        kwargs = {} if self.config is None else configured_worker(self.config, self.visibility_timeout)
        kwargs["settings"] = dict(kwargs.get("settings") or {}) | dict(s.celery)
        kwargs["pool"] = self.pool
        if self.pool in defaults.GREEN_POOLS:  # 100 green threads would run every task at once
            kwargs.setdefault("concurrency", defaults.FAULT_CONCURRENCY)
        worker = Worker(self.broker.url, queues=(self.queue,), env=env, loglevel=s.loglevel,
                        backend_url=self.target.backend_url, **kwargs)  # fmt: skip
        self.workers.append(worker)
        worker.start(wait=wait)
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
        """Messages waiting in this run's queue (Redis: LLEN; AMQP: the ready count of a passive declare)."""
        if self.amqp is not None:
            return self.amqp.state(self.queue).ready
        return int(self.redis.llen(self.queue))

    def queued_ids(self) -> set[str]:
        """Task ids of the messages waiting in this run's queue (Redis: one LRANGE). AMQP shows none
        without taking them: empty there while a worker consumes (see :meth:`kept_ids`)."""
        if self.amqp is not None:
            return set()
        return set(filter(None, map(envelope_id, self.redis.lrange(self.queue, 0, -1))))

    def consumers(self) -> int:
        """Consumers of the run's queue (AMQP only; 0 on Redis, which has no such count)."""
        return self.amqp.state(self.queue).consumers if self.amqp is not None else 0

    def kept_ids(self) -> tuple[frozenset[str], frozenset[str]]:
        """What the broker still has of this run once nothing consumes it: ``(queued, held)``. Redis: the
        queue, and kombu's ``unacked`` (back after the visibility timeout). AMQP: the queue, split by the
        ``redelivered`` flag (held: delivered to a consumer that is gone, put back by RabbitMQ)."""
        if self.amqp is not None:
            wait_for(lambda: self.consumers() == 0, timeout=FAULT_SETTLE_TIMEOUT,
                     what="RabbitMQ to drop the dead consumer", interval=FAULT_POLL)  # fmt: skip
            peeked = self.amqp.peek(self.queue)
            return peeked.fresh, peeked.redelivered
        return frozenset(self.queued_ids()), frozenset(self.held_ids())

    def _held(self) -> dict[str, str]:
        """Delivery tag -> task id of this run's messages in kombu's ``unacked`` hash (none on AMQP:
        RabbitMQ keeps them per channel and returns them when it closes)."""
        if self.amqp is not None:
            return {}
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
        if self.amqp is not None:
            self.amqp.close()

    def _delete_keys(self) -> None:
        ledger.forget(self.redis, self.run)
        if self.amqp is not None:  # the queue and its exchange; results and ledger live in the store
            self.amqp.delete(self.queue)
            task_ids = [i for p in self.published for i in p.ids + p.failed]
            for start in range(0, len(task_ids), 1000):
                self.redis.delete(*(f"celery-task-meta-{i}" for i in task_ids[start : start + 1000]))
            return
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
def fault_run(broker: Broker | Target, pool: str, **options: Any) -> Iterator[Run]:
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
    settled or timed out, before every worker stops. ``applies(target, pool)`` returns why it does not
    apply (a :class:`Target`: its ``kind`` and ``owned``). ``prepare(run)``, if any, runs before the
    first worker starts and returns how to undo it (e.g. a broker setting), called at the end.
    ``first_worker``: False when ``inject`` starts the worker itself.
    """

    name: str
    expected: str
    inject: Callable[[Run], F]
    settle: Callable[[Run, F], bool]
    settings: WorkerSettings = WorkerSettings()
    visibility_timeout: float | None = None
    settle_timeout: float = FAULT_SETTLE_TIMEOUT
    aftermath: Callable[[Run, F, bool], F] | None = None
    applies: Callable[[Target, str], str | None] = lambda target, pool: None
    prepare: Callable[[Run], Callable[[], None]] | None = None
    first_worker: bool = True


def observe(
    broker: Broker | Target,
    pool: str,
    scenario: Scenario[F],
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    config: Config | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> Observation[F] | Inapplicable:
    """Run ``scenario`` on ``pool``: one worker, inject, settle (bounded), aftermath, stop, account.
    ``config`` / ``worker_env``: the workers' app and settings, and environment, if not the seed's."""
    target = as_target(broker)
    if reason := scenario.applies(target, pool):
        return Inapplicable(scenario.name, scenario.expected, pool, reason, target.kind)
    with fault_run(target, pool, settings=scenario.settings, visibility_timeout=scenario.visibility_timeout,
                   clock=clock, wall=wall, config=config, worker_env=worker_env) as run:  # fmt: skip
        undo = scenario.prepare(run) if scenario.prepare is not None else None
        try:
            return _observe(run, scenario)
        finally:
            if undo is not None:
                undo()


def _observe(run: Run, scenario: Scenario[F]) -> Observation[F]:
    clock = run.clock
    if scenario.first_worker:
        run.worker()
    facts = scenario.inject(run)
    first = run.workers[0]
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
        scenario=scenario.name, expected=scenario.expected, pool=run.pool, broker=run.kind,
        settings=run.settings,
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
