"""Fault injection with loss accounting, per pool.

Small injections over broker and worker handles (:func:`kill_child`, :func:`kill_worker`,
:func:`warm_stop`, :func:`restart_broker`, :func:`publish_error_time`, :func:`push_raw`), and the
scenarios built from them. Each scenario starts its own worker(s) on a queue of its own, enqueues
tasks of ``tasks.reliability`` *by name* (this module never imports ``tasks``), injects one fault,
waits (bounded) for the system to settle, stops every process it started, and accounts for every
task id with :mod:`bench.ledger`. :func:`reliability_section` runs them for ``python -m bench run``.

Where Redis keeps unacknowledged messages (kombu's ``transport/redis.py``): a delivered message is
copied into the ``unacked`` hash with the delivery time as its score in ``unacked_index``. Only
``QoS.restore_visible`` reads ``visibility_timeout``: it moves back to their queue the messages
delivered more than ``visibility_timeout`` seconds ago. It runs in every process that *consumes*
from the broker: when a worker's event loop starts (``on_poll_init``: a new worker restores at once),
every ``unacked_restore_interval`` x ``unacked_restore_throttle`` seconds (10 x 10 by default) in a
running worker, and on every empty ``drain_events`` of a synchronous consumer (a client waiting for
control replies, e.g. ``app.control.ping``). So every worker *and* every client app must carry the
same ``visibility_timeout`` (a client with a shorter one would requeue messages that workers still
hold): the workers get it through ``TASKS_VISIBILITY_TIMEOUT`` (``broker_transport_options`` and
``result_backend_transport_options`` in ``tasks/celery_config.py``), the client app here through
:func:`client_app`. A warm shutdown puts the unacknowledged messages back at once
(``restore_at_shutdown``); a killed worker leaves them for the next ``restore_visible`` sweep.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu.pools
from celery import Celery
from celery.result import AsyncResult
from kombu import Connection
from kombu.exceptions import OperationalError

from bench import client as bench_client
from bench import defaults, ledger, pools
from bench.broker import Broker, BrokerError, free_port, from_option
from bench.ledger import ReliabilityRecord, Tally
from bench.procs import wait_for
from bench.worker import Worker

# -- tasks (by name) ----------------------------------------------------------------------------------
TASK_MARK = "tasks.reliability.mark"
TASK_MARK_RESULT = "tasks.reliability.mark_with_result"
TASK_WORK = "tasks.reliability.work"
TASK_WORK_LATE = "tasks.reliability.work_late"

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

DRAIN_TIMEOUT = 240.0
"""Seconds the 10,000-task load may take to execute (a busy 2-core machine manages ~1,000/s)."""

SETTLE_TIMEOUT = 60.0
"""Seconds a fault scenario's tasks have to run after the fault (recovery included)."""

STALL_TIMEOUT = 45.0
"""Seconds a worker has to consume again after its broker came back (longer: it stalled)."""

PUBLISH_ERROR_BOUND = 40.0
"""Seconds ``apply_async`` to a down broker may take before the harness calls it hung."""

WARM_TIMEOUT = defaults.WARM_STOP_TIMEOUT
"""Seconds a worker has to finish its running tasks after SIGTERM."""

POLL = 0.05
"""Seconds between two reads of the ledger."""

PREFETCH_MULTIPLIER = 4
"""``worker_prefetch_multiplier`` of the scenarios' workers (Celery's default, set explicitly: a
worker reserves at most this x its concurrency messages, which bounds what a broker restart can lose)."""


# -- the client side ------------------------------------------------------------------------------------
def client_app(broker_url: str, *, visibility_timeout: float | None = None) -> Celery:
    """A producer app for ``broker_url`` (JSON only), with the workers' ``visibility_timeout``."""
    settings: dict[str, Any] = {}
    if visibility_timeout is not None:
        settings["broker_transport_options"] = {"visibility_timeout": visibility_timeout}
        settings["result_backend_transport_options"] = {"visibility_timeout": visibility_timeout}
    return bench_client.client_app(broker_url, name="bench-reliability", **settings)


def worker_env(
    *,
    acks_late: bool = False,
    reject_on_worker_lost: bool = False,
    visibility_timeout: float | None = None,
    prefetch_multiplier: int = PREFETCH_MULTIPLIER,
) -> dict[str, str]:
    """The ``tasks/celery_config.py`` overrides of a scenario's worker."""
    env = {
        "TASKS_ACKS_LATE": "1" if acks_late else "0",
        "TASKS_REJECT_ON_WORKER_LOST": "1" if reject_on_worker_lost else "0",
        "TASKS_PREFETCH_MULTIPLIER": str(prefetch_multiplier),
    }
    if visibility_timeout is not None:
        env["TASKS_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
    return env


@dataclass(frozen=True)
class Published:
    """What a producer sent: ids whose publish returned, ids whose publish raised, and its time."""

    ids: tuple[str, ...]
    failed: tuple[str, ...]
    seconds: float
    errors: tuple[str, ...] = ()


def enqueue(
    app: Celery,
    task: str,
    args: Sequence[Any],
    *,
    queue: str,
    count: int,
    retry: bool | None = None,
    countdown: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Published:
    """Publish ``count`` tasks at the producer's full speed, one connection, ids chosen up front."""
    ids = [uuid.uuid4().hex for _ in range(count)]
    sent: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    started = clock()
    with app.producer_or_acquire() as producer:
        for task_id in ids:
            try:
                app.send_task(
                    task, tuple(args), task_id=task_id, queue=queue, producer=producer,
                    retry=retry, countdown=countdown, ignore_result=task == TASK_MARK,
                )  # fmt: skip
            except OperationalError as exc:
                failed.append(task_id)
                errors.append(str(exc))
                continue
            sent.append(task_id)
    return Published(tuple(sent), tuple(failed), clock() - started, tuple(errors[:3]))


# -- injections ----------------------------------------------------------------------------------------
def kill_child(worker: Worker, pid: int) -> None:
    """SIGKILL one prefork child of ``worker`` (the one running a task), not the worker itself."""
    if pid == worker.pid or pid not in worker.child_pids():
        raise ValueError(f"pid {pid} is not a pool child of worker {worker.node} ({worker.child_pids()})")
    os.kill(pid, signal.SIGKILL)


def kill_worker(worker: Worker) -> None:
    """SIGKILL the whole worker tree at once (a crash: nothing is acknowledged or restored)."""
    worker.kill()


def warm_stop(worker: Worker, *, timeout: float = WARM_TIMEOUT) -> int | None:
    """SIGTERM: the worker finishes its running tasks, requeues its prefetched ones, exits."""
    return worker.stop(warm=timeout, cold=None)


def forget_pooled_connections(url: str) -> int:
    """Close and drop kombu's process-wide pooled connections to ``url`` (after its server restarted).

    Every app of this process shares ``kombu.pools`` (keyed by connection), so connections made to
    the old server would fail their next user with ``Connection closed by server``. Pools of other
    brokers are left alone. Returns how many pools were dropped.
    """
    conn = Connection(url)
    target = (conn.hostname, conn.password, conn.port)
    dropped = 0
    for group in (kombu.pools.connections, kombu.pools.producers):
        for key in list(group.keys()):
            # Keys are [transport, hostname, userid, password, virtual_host, port, options].
            fields = list(key) if isinstance(key, list | tuple) else []
            if len(fields) >= 6 and (fields[1], fields[3], fields[5]) == target:
                pool = group.pop(key)
                pool.force_close_all()
                dropped += 1
    return dropped


def restart_broker(
    broker: Broker,
    *,
    while_down: Callable[[], object] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[float, float]:
    """Stop a private broker, call ``while_down``, start it again on the same port and directory.

    Drops this process's pooled connections to it (see :func:`forget_pooled_connections`). Returns
    the ``clock`` instants at which it went down and answered again.
    """
    if not broker.owned:
        raise BrokerError("refusing to restart a broker the harness did not start")
    down_at = clock()
    broker.stop_server()
    try:
        while_down()
    finally:
        broker.start()
    up_at = clock()
    forget_pooled_connections(broker.url)
    return down_at, up_at


@dataclass(frozen=True)
class PublishFailure:
    """How ``apply_async`` to a down broker ended: the error (None if it did not raise) and when."""

    retry: bool
    seconds: float
    error: str | None
    hung: bool


def publish_error_time(
    broker_url: str,
    *,
    retry: bool,
    results: bool = False,
    bound: float = PUBLISH_ERROR_BOUND,
    clock: Callable[[], float] = time.perf_counter,
) -> PublishFailure:
    """Time from ``send_task`` to a down broker until it raises (run in a thread, bounded).

    The app has Celery's defaults (the seed's broker and Redis result backend, JSON): the default
    ``task_publish_retry_policy`` and ``broker_connection_timeout``. ``results``: the task stores its
    result (the seed's ``add``), so the client subscribes to it before publishing.
    """
    app = bench_client.client_app(broker_url, name="bench-down")
    box: dict[str, Any] = {}

    def publish() -> None:
        started = clock()
        try:
            app.send_task(TASK_MARK, ("down",), queue="rel.down", retry=retry, ignore_result=not results)
        except OperationalError as exc:
            box["error"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            box["error"] = f"unexpected {type(exc).__name__}: {exc}"
        box["seconds"] = clock() - started

    thread = threading.Thread(target=publish, name="publish-to-down-broker", daemon=True)
    started = clock()
    thread.start()
    thread.join(bound)
    hung = thread.is_alive()
    app.close()
    if hung:
        return PublishFailure(retry, clock() - started, None, True)
    return PublishFailure(retry, float(box["seconds"]), box.get("error"), False)


def protocol2_message(
    task: str,
    task_id: str,
    args: Sequence[Any],
    *,
    queue: str,
    body: bytes,
    content_type: str,
    content_encoding: str,
) -> bytes:
    """A kombu Redis-transport envelope of a Celery protocol-2 task message, with ``body`` as given."""
    headers = {
        "lang": "py", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
        "group": None, "shadow": None, "eta": None, "expires": None, "retries": 0,
        "timelimit": [None, None], "argsrepr": repr(tuple(args)), "kwargsrepr": "{}",
        "origin": "bench.faults", "ignore_result": False,
    }  # fmt: skip
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid.uuid4().hex,
        },
    }
    return json.dumps(envelope).encode()


def json_task_message(task: str, task_id: str, args: Sequence[Any], *, queue: str) -> bytes:
    """A JSON task message built by hand (the control for :func:`pickle_task_message`)."""
    body = json.dumps([list(args), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return protocol2_message(
        task, task_id, args, queue=queue, body=body.encode(),
        content_type="application/json", content_encoding="utf-8",
    )  # fmt: skip


class _Touch:
    """Unpickling this creates ``path``: proof of whether a worker deserialised the message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def pickle_task_message(
    task: str, task_id: str, args: Sequence[Any], *, queue: str, canary: Path | None = None
) -> bytes:
    """A pickled task message (``application/x-python-serialize``), as a JSON-only worker must refuse.

    With ``canary``, the pickle also carries an object whose unpickling creates that file.
    """
    embed: dict[str, Any] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    kwargs: dict[str, Any] = {"canary": _Touch(canary)} if canary is not None else {}
    body = pickle.dumps((tuple(args), kwargs, embed), protocol=2)
    return protocol2_message(
        task, task_id, args, queue=queue, body=body,
        content_type="application/x-python-serialize", content_encoding="binary",
    )  # fmt: skip


def push_raw(broker: Broker, queue: str, message: bytes) -> None:
    """LPUSH a raw message into ``queue`` as the Redis transport does, bypassing Celery's producer."""
    client = broker.client()
    try:
        client.lpush(queue, message)
    finally:
        client.close()


# -- scenario plumbing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A scenario's row, its accounting, what the tests check beyond counts, and the pids it started."""

    record: ReliabilityRecord
    tally: Tally | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    pids: tuple[int, ...] = ()


REDIS_PRIORITY_SEP = "\x06\x16"
"""kombu's Redis separator (of priority queue names, and of a binding's routing key/pattern/queue)."""
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's Redis transport keeps priority ``p`` of queue ``q`` in key ``q + SEP + p`` (``p`` > 0)."""


def _envelope_id(raw: bytes | str) -> str | None:
    """The task id of a kombu Redis envelope (None if it is not a task message)."""
    try:
        task_id = json.loads(raw)["headers"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return task_id if isinstance(task_id, str) else None


def unacked_ids(unacked: Mapping[bytes, bytes], queue: str) -> dict[str, str]:
    """Delivery tag -> task id of ``queue``'s messages in a read of kombu's ``unacked`` hash
    (each value is ``[envelope, exchange, routing_key]``; anything else is skipped)."""
    held: dict[str, str] = {}
    for tag, raw in unacked.items():
        try:
            message, _exchange, routing_key = json.loads(raw)
            task_id = message["headers"]["id"] if routing_key == queue else None
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(task_id, str):
            held[tag.decode()] = task_id
    return held


class _Run:
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
            timeout=timeout, what=f"{count} {what} to complete", interval=POLL,
        )  # fmt: skip

    def queued(self) -> int:
        return int(self.redis.llen(self.queue))

    def queued_ids(self) -> set[str]:
        """Task ids of the messages waiting in this run's queue (one LRANGE)."""
        return set(filter(None, map(_envelope_id, self.redis.lrange(self.queue, 0, -1))))

    def _held(self) -> dict[str, str]:
        """Delivery tag -> task id of this run's messages in kombu's ``unacked`` hash."""
        return unacked_ids(self.redis.hgetall("unacked"), self.queue)

    def held_ids(self) -> set[str]:
        """Task ids of this run held unacknowledged (delivered, not acked, not restored yet)."""
        return set(self._held().values())

    def held_since(self, wall: float) -> set[str]:
        """Ids still held from a delivery before ``wall`` (their ``unacked_index`` score is earlier)."""
        held = self._held()
        scores = self.redis.zmscore("unacked_index", list(held)) if held else []
        return {
            held[tag] for tag, score in zip(held, scores, strict=True) if score is not None and score < wall
        }

    def latest_delivery(self) -> float:
        """Wall time of the latest delivery among the held messages (their ``unacked_index`` score)."""
        scores = [self.redis.zscore("unacked_index", tag) for tag in self._held()]
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
                self.redis.hdel("unacked", *tags)
                self.redis.zrem("unacked_index", *tags)
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
def _scenario(broker: Broker, pool: str, *, visibility_timeout: float | None = None) -> Iterator[_Run]:
    run = _Run(broker, pool, visibility_timeout=visibility_timeout)
    try:
        yield run
    finally:
        run.close()


def _stopped_and_read(run: _Run) -> ledger.Executions:
    """Stop every worker (warm), then read the ledger: nothing can execute any more."""
    for worker in run.workers:
        run.remember(worker)
        worker.stop()
    return run.executions()


def _wait_mid_run(run: _Run, *, done: int, what: str) -> None:
    """Until ``done`` tasks completed and at least one more is running (bounded)."""

    def mid_run() -> bool:
        executions = run.executions()
        return len(executions.done) >= done and bool(ledger.in_flight(executions))

    wait_for(mid_run, timeout=SETTLE_TIMEOUT, what=what, interval=0.01)


# -- 1. no faults, under load --------------------------------------------------------------------------
def no_faults(broker: Broker, pool: str, *, count: int = LOAD_TASKS) -> Outcome:
    """``count`` tasks at the producer's full speed to one worker: lost 0, duplicated 0."""
    with _scenario(broker, pool) as run:
        run.worker(loglevel="WARNING")
        published = run.enqueue(TASK_MARK, (run.run,), count=count)
        started = time.perf_counter()
        run.wait_done(len(published.ids), timeout=DRAIN_TIMEOUT, what="load tasks")
        drained = time.perf_counter() - started
        executions = _stopped_and_read(run)
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
    with _scenario(broker, pool) as run:
        worker = run.worker()
        task = TASK_WORK_LATE if acks_late else TASK_WORK
        args = (run.run, LONG_TASK_SECONDS, TASK_SECONDS)
        published = run.enqueue(task, args, count=1)
        task_id = published.ids[0]
        wait_for(lambda: run.executions().pids.get(task_id), timeout=SETTLE_TIMEOUT,
                 what=f"task {task_id} to start in a pool child", interval=0.01)  # fmt: skip
        victim = run.executions().pids[task_id]
        children_before = set(worker.child_pids())
        run.remember(worker)
        kill_child(worker, victim)
        killed_at = clock()
        result = AsyncResult(task_id, app=run.app)
        wait_for(lambda: result.state in ("SUCCESS", "FAILURE"), timeout=SETTLE_TIMEOUT,
                 what=f"task {task_id} to end after its child was killed", interval=POLL)  # fmt: skip
        recovery = clock() - killed_at
        state = result.state
        error = result.result
        error_name = type(error).__name__ if isinstance(error, BaseException) else ""
        worker_alive = worker.alive() and worker.ping(timeout=2.0)
        run.remember(worker)
        replaced = bool(set(worker.child_pids()) - children_before)
        executions = _stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        starts = executions.starts.get(task_id, 0)
        if acks_late:
            ok = state == "SUCCESS" and starts == 2 and tally.lost == 0 and tally.duplicated == 1
        else:
            ok = state == "FAILURE" and error_name == "WorkerLostError" and starts == 1 and tally.lost == 1
        ok = ok and worker_alive
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


# -- 3. the whole worker killed mid-run ----------------------------------------------------------------
BRPOP_LOSS_ISSUES = "kombu#1733, kombu#305: a BRPOP answered while the connection closes loses its message"

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
        """Queued just before the kill, never started, gone from queue and ``unacked`` after it:
        kombu#1733's BRPOP window (a message popped but never recorded as unacknowledged)."""
        return (self.acknowledged & self.queued_before) - self.started


def kill_and_snapshot(run: _Run, ids: Sequence[str]) -> KillSnapshot:
    """SIGKILL the run's first worker and read where every id was (queue, ``unacked``, ledger)."""
    queued_before = run.queued_ids()
    kill_worker(run.workers[0])
    executions = run.executions()
    return KillSnapshot(
        ids=frozenset(ids), queued_before=frozenset(queued_before), queued=frozenset(run.queued_ids()),
        held=frozenset(run.held_ids()), started=frozenset(executions.starts), done=frozenset(executions.done),
    )  # fmt: skip


def _wait_kill_point(run: _Run, *, acks_late: bool) -> None:
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
    wait_for(ready, timeout=SETTLE_TIMEOUT, what=what, interval=0.01)


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
        else "at most once: lost = the tasks in flight at the kill, the prefetched ones restored"
    )
    with _scenario(broker, pool, visibility_timeout=visibility_timeout) as run:
        run.worker(acks_late=acks_late)
        published = run.enqueue(TASK_WORK, (run.run, TASK_SECONDS), count=count)
        _wait_kill_point(run, acks_late=acks_late)
        killed_at, killed_wall = clock(), wall()
        snap = kill_and_snapshot(run, published.ids)
        # Every message the dead worker held was delivered before the kill: once the visibility
        # timeout has passed since then, a starting worker's restore_visible moves them all back.
        wait_for(lambda: wall() > killed_wall + visibility_timeout, timeout=visibility_timeout + 5,
                 what="the visibility timeout to pass", interval=POLL)  # fmt: skip
        run.worker(acks_late=acks_late)
        must_run = snap.held | snap.queued
        try:
            wait_for(lambda: must_run <= set(run.executions().done), timeout=SETTLE_TIMEOUT,
                     what="what the killed worker left in the broker to run", interval=POLL)  # fmt: skip
            recovery: float | None = clock() - killed_at
        except TimeoutError:
            recovery = None
        stuck = frozenset(run.held_since(killed_wall))  # never restored: no sweep moved them back
        executions = _stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        lost_ids = frozenset(i for i in published.ids if executions.done.get(i, 0) == 0)
        twice = frozenset(
            i for i in published.ids if executions.starts.get(i, 0) > 1 or executions.done.get(i, 0) > 1
        )
        if acks_late:
            ok = tally.lost == 0 and snap.interrupted <= twice
        else:
            ok = lost_ids == snap.acknowledged and bool(snap.interrupted & lost_ids) and twice <= snap.held
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
        note += f"; not settled within {SETTLE_TIMEOUT:g}s"
    return note


# -- 4. warm shutdown mid-run ----------------------------------------------------------------------
def warm_shutdown(
    broker: Broker, pool: str, *, count: int = RUN_TASKS, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """SIGTERM a worker mid-run: it finishes its running tasks, requeues the rest; nothing is lost."""
    expected = "running tasks finish, prefetched ones requeued: lost 0, duplicated 0"
    with _scenario(broker, pool) as run:
        first = run.worker()
        published = run.enqueue(TASK_WORK, (run.run, TASK_SECONDS), count=count)
        _wait_mid_run(run, done=2, what="the run to be under way (2 done, 1 running)")
        stopped_at = clock()
        interrupted = ledger.in_flight(run.executions())
        run.remember(first)
        code = warm_stop(first)
        stop_seconds = clock() - stopped_at
        finished = {i for i in interrupted if run.executions().done.get(i, 0) > 0}
        requeued = run.queued()
        run.worker()
        try:
            run.wait_done(count, timeout=SETTLE_TIMEOUT, what="tasks of the stopped worker's run")
            recovery: float | None = clock() - stopped_at
        except TimeoutError:
            recovery = None
        executions = _stopped_and_read(run)
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
    completing (longer than :data:`STALL_TIMEOUT`: the worker stalled). Messages the worker held
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
    with _scenario(broker, pool, visibility_timeout=visibility_timeout) as run:
        worker = run.worker()
        before = run.enqueue(TASK_MARK, (run.run,), count=count)
        run.wait_done(count // 4, timeout=SETTLE_TIMEOUT, what="tasks before the restart")
        refused: list[Published] = []
        queued_at_stop = frozenset(run.queued_ids())  # what Redis itself must keep across the restart
        down_at, up_at = restart_broker(
            broker, clock=clock,
            while_down=lambda: refused.append(run.enqueue(TASK_MARK, (run.run,), count=3, retry=False)),
        )  # fmt: skip
        during = refused[0]
        run.app.close()
        run.app = client_app(broker.url, visibility_timeout=visibility_timeout)
        after = run.enqueue(TASK_MARK, (run.run,), count=count)
        ids = before.ids + during.ids + after.ids
        failed = before.failed + during.failed + after.failed
        try:
            wait_for(lambda: any(i in run.executions().done for i in after.ids), timeout=STALL_TIMEOUT,
                     what="the worker to run a task published after the restart", interval=POLL)  # fmt: skip
            recovery: float | None = clock() - up_at
        except TimeoutError:
            recovery = None
        stalled = recovery is None
        worker_alive = worker.alive()
        crashed = not worker_alive and all(s in worker.log() for s in CRASH_SYMPTOM)
        if stalled or not worker_alive:
            run.worker()  # drains what the first one left: the loss count is about the broker, not the crash
        log_tail = "\n".join(
            line
            for line in worker.log().splitlines()[-400:]
            if "] received" not in line and "succeeded in" not in line
        )[-3000:]

        def settled() -> bool:
            done = run.executions().done
            missing = {i for i in ids if i not in done}
            return run.queued() == 0 and missing <= run.held_ids()

        try:
            wait_for(settled, timeout=SETTLE_TIMEOUT, what="the worker to run all it was not holding",
                     interval=POLL)  # fmt: skip
        except TimeoutError:
            pass  # some ids are neither done, queued nor held: counted lost below
        held = run.held_ids()
        if held:
            latest = run.latest_delivery()
            wait_for(lambda: wall() > latest + visibility_timeout, timeout=visibility_timeout + 5,
                     what="the visibility timeout of the held messages", interval=POLL)  # fmt: skip
            run.worker()
            try:
                wait_for(lambda: not run.held_ids() and run.queued() == 0 and
                         all(i in run.executions().done for i in ids), timeout=SETTLE_TIMEOUT,
                         what="the held messages to be restored and run", interval=POLL)  # fmt: skip
            except TimeoutError:
                pass  # counted lost below
        executions = _stopped_and_read(run)
        tally = ledger.account(ids, executions, failed=failed)
        lost_ids = frozenset(i for i in ids if executions.done.get(i, 0) == 0)
        # kombu#1733's symptom: popped before the restart (no longer in the queue just before the stop),
        # never started, neither queued nor held. An id still queued at the stop and lost: Redis lost it.
        brpop_loss = (
            bool(lost_ids) and lost_ids <= set(before.ids) - queued_at_stop and run.queued() == 0
            and not any(executions.starts.get(i, 0) for i in lost_ids) and not lost_ids & run.held_ids()
        )  # fmt: skip
        ok = tally.lost == 0 and not stalled and worker_alive
        note = f"broker down {up_at - down_at:.1f}s; {len(during.failed)} publishes refused while down"
        if held:
            note += (f"; {len(held)} messages held unacknowledged across the restart ran only after "
                     f"visibility_timeout ({visibility_timeout:g}s here, 3600s by default)")  # fmt: skip
        if not worker_alive:
            note += f"; the worker exited with {worker.returncode()}"
            if crashed:
                note += " on AttributeError at the connection loss (kombu#582 / celery#10205 family)"
        if brpop_loss:
            note += (f"; {tally.lost} popped from the queue but never run nor held unacknowledged "
                     f"({BRPOP_LOSS_ISSUES})")  # fmt: skip
        elif tally.lost:
            note += f"; {tally.lost} never ran"
        if stalled:
            note += f"; worker stalled: idle {STALL_TIMEOUT:g}s after the broker was back ({STALL_ISSUES})"
        if before.failed or after.failed:
            note += f"; {len(before.failed) + len(after.failed)} publishes failed while the broker was up"
        return Outcome(
            ledger.record(tally, pool=pool, scenario=scenario, recovery_seconds=recovery,
                          expected=expected, ok=ok, note=note),
            tally,
            {"stalled": stalled, "refused_while_down": len(during.failed), "worker_alive": worker_alive,
             "downtime": up_at - down_at, "held": held, "log_tail": log_tail, "crash_symptom": crashed,
             "lost_ids": lost_ids, "before_ids": frozenset(before.ids), "brpop_loss": brpop_loss,
             "queued_at_stop": queued_at_stop,
             "reserve_window": PREFETCH_MULTIPLIER * (worker.concurrency or 1)},
            tuple(run.pids),
        )  # fmt: skip


# -- 6. broker down at enqueue ---------------------------------------------------------------------
def down_broker_url(broker: Broker | None) -> tuple[str, Callable[[], None]]:
    """A URL whose broker is down, and how to bring things back.

    A private broker is stopped (same URL, same password) and restarted afterwards; otherwise a closed
    loopback port stands for the down broker.
    """
    if broker is not None and broker.owned:
        broker.stop_server()

        def bring_back() -> None:
            broker.start()

        return broker.url, bring_back
    return f"redis://127.0.0.1:{free_port()}/0", lambda: None


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
    bound = PUBLISH_ERROR_BOUND
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


def policy_sleeps(policy: Mapping[str, Any]) -> list[float]:
    """The sleeps kombu's ``retry_over_time`` takes under ``policy`` (a lower bound of its duration)."""
    start = float(policy.get("interval_start", 0))
    step = float(policy.get("interval_step", 0.2))
    top = float(policy.get("interval_max", 1))
    retries = int(policy.get("max_retries") or 0)
    return [min(start + step * n, top) for n in range(retries)]


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
    with _scenario(broker, pool, visibility_timeout=visibility_timeout) as run:
        run.worker()
        published = run.enqueue(TASK_MARK_RESULT, (run.run,), count=1, countdown=countdown)
        task_id = published.ids[0]
        wait_for(lambda: run.queued() == 0 and f"Task {TASK_MARK_RESULT}[{task_id}] received" in
                 run.workers[0].log(), timeout=SETTLE_TIMEOUT, what="worker A to hold the countdown task",
                 interval=POLL)  # fmt: skip
        received_wall = wall()
        wait_for(lambda: wall() > received_wall + visibility_timeout, timeout=visibility_timeout + 5,
                 what="the visibility timeout to pass", interval=POLL)  # fmt: skip
        run.worker()
        try:
            wait_for(lambda: run.executions().starts.get(task_id, 0) >= 2,
                     timeout=countdown + SETTLE_TIMEOUT / 4, what=f"task {task_id} to run twice",
                     interval=POLL)  # fmt: skip
        except TimeoutError:
            pass
        executions = _stopped_and_read(run)
        tally = ledger.account(published.ids, executions, failed=published.failed)
        runs = executions.starts.get(task_id, 0)
        ok = tally.lost == 0 and runs >= 2
        note = f"ran {runs}x; countdown {countdown:g}s, visibility_timeout {visibility_timeout:g}s"
        return Outcome(
            ledger.record(tally, pool=pool, scenario=scenario, recovery_seconds=None,
                          expected=expected, ok=ok, note=note),
            tally, {"runs": runs}, tuple(run.pids),
        )  # fmt: skip


# -- the main job's section --------------------------------------------------------------------------
def reliability_section(
    pools_: list[str],
    *,
    broker_url: str | None,
    quick: bool,
    progress: Callable[[str], None],
) -> list[ReliabilityRecord]:
    """Run the fault scenarios on each pool; one record per scenario and pool (see docs/reliability.md).

    ``broker_url`` None: a private Redis with append-only persistence (the restart scenario needs it).
    ``quick``: the load scenario with :data:`QUICK_LOAD_TASKS`, the child and worker kills with the
    at-least-once settings only, and the broker-down timing; the rest is skipped.
    """
    if not pools_:
        raise ValueError("reliability_section needs at least one pool; pass e.g. ['solo']")
    for name in pools_:
        info = pools.support(name)
        if not info.available:
            raise ValueError(f"pool {name!r} is unavailable here: {info.reason}")
    records: list[ReliabilityRecord] = []
    with from_option(broker_url, appendonly=True) as broker:
        for pool in pools_:
            records.extend(_pool_scenarios(broker, pool, quick=quick, progress=progress))
        progress("reliability: broker down at enqueue")
        records.extend(o.record for o in broker_down(broker, with_results=not quick))
    return records


def _pool_scenarios(
    broker: Broker, pool: str, *, quick: bool, progress: Callable[[str], None]
) -> Iterator[ReliabilityRecord]:
    count = QUICK_LOAD_TASKS if quick else LOAD_TASKS
    steps: list[tuple[str, Callable[[], Outcome]]] = [
        (f"no faults, {count:,} tasks", lambda: no_faults(broker, pool, count=count)),
        ("child killed (acks_late)", lambda: child_killed(broker, pool, acks_late=True)),
        ("worker killed (acks_late)", lambda: worker_killed(broker, pool, acks_late=True)),
    ]
    if not quick:
        steps += [
            ("child killed (defaults)", lambda: child_killed(broker, pool, acks_late=False)),
            ("worker killed (defaults)", lambda: worker_killed(broker, pool, acks_late=False)),
            ("warm shutdown", lambda: warm_shutdown(broker, pool)),
            ("broker restart", lambda: broker_restart(broker, pool)),
            ("countdown redelivery", lambda: countdown_redelivery(broker, pool)),
        ]
    for label, step in steps:
        progress(f"reliability [{pool}]: {label}")
        yield step().record


def format_table(records: Sequence[ReliabilityRecord]) -> str:
    """The reliability table as plain text (pool, scenario, counts, recovery, verdict)."""
    header = ("pool", "scenario", "enqueued", "lost", "dup", "pub.err", "recovery s", "verdict")
    rows = [header] + [
        (
            r.pool, r.scenario, str(r.enqueued), str(r.lost), str(r.duplicated), str(r.publish_errors),
            "-" if r.recovery_seconds is None else f"{r.recovery_seconds:.2f}", r.verdict,
        )
        for r in records
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"- {r.pool} / {r.scenario}: {r.note}" for r in records if r.note]
    return "\n".join([*lines, "", *notes])


def print_table(
    *, quick: bool = True, pools_: list[str] | None = None, broker_url: str | None = None
) -> None:
    """Run the reliability section and print its table (the command in docs/reliability.md)."""
    chosen = pools.select(pools_)
    records = reliability_section(chosen, broker_url=broker_url, quick=quick, progress=print)
    print(format_table(records))
