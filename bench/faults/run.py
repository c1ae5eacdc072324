"""One scenario run (its queue, client app, workers and ledger), its outcome, and the kill snapshot."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench import ledger
from bench.broker import Broker
from bench.defaults import FAULT_POLL, FAULT_SETTLE_TIMEOUT
from bench.faults.kombu_redis import (
    REDIS_PRIORITY_SEP,
    REDIS_PRIORITY_STEPS,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    envelope_id,
    unacked_ids,
)
from bench.faults.producer import Published, client_app, enqueue, worker_env
from bench.ledger import ReliabilityRecord, Tally
from bench.procs import wait_for
from bench.worker import Worker


# -- scenario plumbing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A scenario's row, its accounting, what the tests check beyond counts, and the pids it started."""

    record: ReliabilityRecord
    tally: Tally | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    pids: tuple[int, ...] = ()


class Run:
    """One scenario run: a run id, a queue of its own, the client app, the workers it started."""

    def __init__(self, broker: Broker, pool: str, *, visibility_timeout: float | None = None) -> None:
        self.broker = broker
        self.pool = pool
        self.run = uuid.uuid4().hex[:12]
        self.queue = f"rel.{self.run}"
        self.visibility_timeout = visibility_timeout
        self.app = client_app(broker.url, visibility_timeout=visibility_timeout)
        self.redis = broker.client()
        self.workers: list[Worker] = []
        self.pids: set[int] = set()
        self.task_ids: set[str] = set()  # every id this run published (or tried to): its keys to delete

    def enqueue(self, task: str, args: Sequence[Any], *, count: int, **options: Any) -> Published:
        """:func:`enqueue` to this run's queue, remembering the ids (for :meth:`close`)."""
        published = enqueue(self.app, task, args, queue=self.queue, count=count, **options)
        self.task_ids.update(published.ids + published.failed)
        return published

    def worker(self, *, loglevel: str = "INFO", **env_options: Any) -> Worker:
        env = worker_env(visibility_timeout=self.visibility_timeout, **env_options)
        worker = Worker(self.broker.url, pool=self.pool, queues=(self.queue,), env=env, loglevel=loglevel)
        self.workers.append(worker)
        worker.start()
        self.remember(worker)
        return worker

    def remember(self, worker: Worker) -> None:
        if worker.process is not None:
            self.pids.add(worker.pid)
            self.pids.update(worker.child_pids())

    def executions(self) -> ledger.Executions:
        return ledger.read(self.redis, self.run)

    def wait_done(self, count: int, *, timeout: float, what: str) -> None:
        wait_for(
            lambda: ledger.done_count(self.redis, self.run) >= count,
            timeout=timeout, what=f"{count} {what} to complete", interval=FAULT_POLL,
        )  # fmt: skip

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

    def run_keys(self) -> list[str]:
        """The broker keys this run may have created (besides the ledger's and kombu's ``unacked``)."""
        queues = [self.queue] + [f"{self.queue}{REDIS_PRIORITY_SEP}{p}" for p in REDIS_PRIORITY_STEPS if p]
        return [
            *queues,
            *(f"{prefix}.{self.queue}" for prefix in ("_kombu.binding", "_kombu.binding_permanent")),
            *(f"{w.node}.celery.pidbox" for w in self.workers),
            *(f"celery-task-meta-{i}" for i in self.task_ids),
        ]

    def close(self) -> None:
        """Stop the workers, then delete exactly this run's keys (never any other: the broker may be
        a user's): its ledger, queue, binding, results, and its messages left in ``unacked``."""
        for worker in reversed(self.workers):
            self.remember(worker)
            worker.stop()
        try:
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
        except Exception:  # noqa: BLE001,S110 - cleanup of a broker that may be down
            pass
        self.redis.close()
        self.app.close()


@contextmanager
def fault_run(broker: Broker, pool: str, *, visibility_timeout: float | None = None) -> Iterator[Run]:
    run = Run(broker, pool, visibility_timeout=visibility_timeout)
    try:
        yield run
    finally:
        run.close()


def stopped_and_read(run: Run) -> ledger.Executions:
    """Stop every worker (warm), then read the ledger: nothing can execute any more."""
    for worker in run.workers:
        run.remember(worker)
        worker.stop()
    return run.executions()


def wait_mid_run(run: Run, *, done: int, what: str) -> None:
    """Until ``done`` tasks completed and at least one more is running (bounded)."""

    def mid_run() -> bool:
        executions = run.executions()
        return len(executions.done) >= done and bool(ledger.in_flight(executions))

    wait_for(mid_run, timeout=FAULT_SETTLE_TIMEOUT, what=what, interval=0.01)


ACKS_AFTER_THE_BODY = frozenset({"solo"})
"""Pools that acknowledge a task only after its body, even without ``task_acks_late`` (celery#3430)."""


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


def kill_and_snapshot(run: Run, ids: Sequence[str]) -> KillSnapshot:
    """SIGKILL the run's first worker and read where every id was (queue, ``unacked``, ledger)."""
    queued_before = run.queued_ids()
    run.workers[0].kill()
    executions = run.executions()
    return KillSnapshot(
        ids=frozenset(ids), queued_before=frozenset(queued_before), queued=frozenset(run.queued_ids()),
        held=frozenset(run.held_ids()), started=frozenset(executions.starts), done=frozenset(executions.done),
    )  # fmt: skip


def wait_kill_point(run: Run, *, acks_late: bool) -> None:
    """Mid-run (2 done, one running); without acks_late, one running task already acknowledged (on a
    pool that acknowledges before the body), so that the kill tests what the setting documents."""
    need_ack = not acks_late and run.pool not in ACKS_AFTER_THE_BODY

    def ready() -> bool:
        executions = run.executions()
        running = ledger.in_flight(executions)
        if len(executions.done) < 2 or not running:
            return False
        return not need_ack or bool(running - run.held_ids())

    what = "the run to be under way (2 done, 1 running" + (", acknowledged)" if need_ack else ")")
    wait_for(ready, timeout=FAULT_SETTLE_TIMEOUT, what=what, interval=0.01)
