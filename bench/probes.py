"""The harness's probe tasks, for any app's worker: ``celery -A yourapp worker --include bench.probes``.

They register with ``shared_task``, so they join whatever app the worker runs, and every worker the
harness starts includes this module (``bench.config.PROBES_MODULE``). The harness sends them by name:

``bench.probes.noop``   does nothing (the drain rate and the enqueue figures);
``bench.probes.stamp``  returns the ``time.time()`` at which it started (open-loop end-to-end latency);
``bench.probes.io_wait`` waits ``bench.defaults.IO_WAIT_S`` (an I/O-bound task: the I/O drain);
``bench.probes.mark`` / ``mark_with_result`` / ``work`` / ``work_late``  record themselves in the
reliability ledger (``bench.ledger``) for the fault scenarios.

Both store their result whatever the app's ``task_ignore_result`` says (the harness reads it from the
result backend it points the worker at), unless the producer's message says to ignore it (a producer
under ``--set task_ignore_result=true``): then they announce their completion on a channel of their
own instead (:func:`_announce`). Importing this module in the harness process is harmless; the
harness itself never calls these functions (it only names them).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import redis
from celery import Task, shared_task

from bench import defaults, ledger, parsers

_TEST_DELAY_S = float(os.environ.get(defaults.TEST_TASK_DELAY_ENV) or 0.0)
"""Test-only (``bench.defaults.TEST_TASK_DELAY_ENV``): a regression on purpose, so that the benchmark gate's
proof (``tests/benchmarks/test_gate.py``) can show the gate fails on a slower worker. 0 in every other run."""


def _test_delay() -> None:
    if _TEST_DELAY_S > 0:
        time.sleep(_TEST_DELAY_S)


@shared_task(name="bench.probes.noop", bind=True, ignore_result=False)
def noop(self: Task, *args: Any, **kwargs: Any) -> None:
    """Do nothing: what is left is Celery's own cost per task (receive, execute, store the result)."""
    _test_delay()
    _announce(self, None)
    return None


@shared_task(name="bench.probes.stamp", bind=True, ignore_result=False)
def stamp(self: Task, *args: Any, **kwargs: Any) -> float:
    """The wall-clock time at which the body started on the worker (same host as the producer)."""
    started = time.time()
    _test_delay()
    _announce(self, started)
    return started


def _announce(task: Task, result: Any) -> None:
    """If this request's result is ignored (``task_ignore_result`` in the producer's app, or
    ``apply_async(ignore_result=True)``: the flag travels in the message and the worker then stores
    nothing), PUBLISH the completion on ``PROBE_DONE_PREFIX<task id>`` of the result backend's Redis, shaped
    as the backend's own message, so that the harness's drain and open-loop rounds still see it
    (``bench.loadgen.ResultCollector``). One PUBLISH, no key: less than the result store it replaces."""
    if not getattr(task.request, "ignore_result", False):
        return
    payload = json.dumps({"status": "SUCCESS", "result": result, "task_id": task.request.id})
    _backend(task).publish(f"{defaults.PROBE_DONE_PREFIX}{task.request.id}", payload)


_backends: dict[tuple[int, int], redis.Redis] = {}


def _backend(task: Task) -> redis.Redis:
    """A Redis client to the worker's result backend (else its broker), one per process and thread."""
    key = (os.getpid(), threading.get_ident())
    with _clients_lock:
        found = _backends.get(key)
        if found is None:
            url = task.app.conf.result_backend or task.app.conf.broker_url
            found = _backends[key] = redis.Redis.from_url(url)
        return found


@shared_task(name="bench.probes.io_wait", ignore_result=False)
def io_wait(*args: Any, **kwargs: Any) -> float:
    """Wait ``defaults.IO_WAIT_S`` as a remote call would, and return the ``time.time()`` at which the body
    started. ``time.sleep`` is what gevent and eventlet patch in their workers, so there the wait yields to
    the pool's other tasks; elsewhere it holds the pool's slot (a process, a thread) for its length."""
    started = time.time()
    time.sleep(defaults.IO_WAIT_S)
    return started


# -- the reliability ledger (bench.ledger's key layout; the fault scenarios send these) ---------------
# Each execution records itself with atomic Redis operations under ``rel:<run>:*`` on the worker's own
# broker (the harness's Redis), or on its result backend when the broker is not a Redis (RabbitMQ):
# ``start`` and ``done`` count executions per task id, ``pid`` is the process that started it last (to
# kill that child), ``parser`` each process's redis-py reply parser. Same layout as
# ``tasks/reliability.py``.
LEDGER_TTL_SECONDS = 24 * 3600
"""Ledger keys expire after a day, so a run against a user's broker leaves nothing for good."""

_clients: dict[tuple[int, int], redis.Redis] = {}
_clients_lock = threading.Lock()
_parsers: dict[int, str] = {}


def _parser(client: redis.Redis) -> str:
    """:func:`bench.parsers.of_client` of this process, computed once."""
    found = _parsers.get(os.getpid())
    if found is None:
        found = _parsers[os.getpid()] = parsers.of_client(client)
    return found


def ledger_url(broker_url: str, result_backend: str | None) -> str:
    """Where the ledger lives: the worker's broker if it is a Redis, else its (Redis) result backend."""
    if broker_url.startswith(("redis://", "rediss://")) or not result_backend:
        return broker_url
    return result_backend


def _ledger(task: Task) -> redis.Redis:
    """A Redis client to the ledger's Redis, one per process and thread (fork-safe)."""
    key = (os.getpid(), threading.get_ident())
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            conf = task.app.conf
            found = _clients[key] = redis.Redis.from_url(ledger_url(conf.broker_url, conf.result_backend))
        return found


def _count(task: Task, run: str, *kinds: str, pid: bool = False) -> list[int]:
    """Add one to each of ``kinds`` for this task id in one MULTI/EXEC; ``pid``: note this process."""
    pipe = _ledger(task).pipeline(transaction=True)
    for kind in kinds:
        pipe.hincrby(ledger.key(run, kind), task.request.id, 1)
    if pid:
        pipe.hset(ledger.key(run, "pid"), task.request.id, os.getpid())
        pipe.hset(ledger.key(run, "parser"), str(os.getpid()), _parser(_ledger(task)))
    for kind in (*kinds, "pid", "parser") if pid else kinds:
        pipe.expire(ledger.key(run, kind), LEDGER_TTL_SECONDS)
    return [int(n) for n in pipe.execute()[: len(kinds)]]


@shared_task(name="bench.probes.mark", bind=True, ignore_result=True)
def mark(self: Task, run: str) -> int:
    """Record one execution at once (start and done in one MULTI/EXEC). No result stored."""
    return _count(self, run, "start", "done")[1]


@shared_task(name="bench.probes.mark_with_result", bind=True, ignore_result=False)
def mark_with_result(self: Task, run: str) -> int:
    """As :func:`mark`, with a stored result (a redelivered countdown task is inspected by state)."""
    return _count(self, run, "start", "done")[1]


def _work(task: Task, run: str, seconds: float, then: float | None) -> int:
    attempt = _count(task, run, "start", pid=True)[0]
    time.sleep(seconds if attempt == 1 or then is None else then)  # the work: a fault hits it
    return _count(task, run, "done")[0]


@shared_task(name="bench.probes.work", bind=True, ignore_result=False)
def work(self: Task, run: str, seconds: float, then: float | None = None) -> int:
    """Record a start, work ``seconds`` (a redelivery: ``then``), record the completion; the worker's
    delivery settings (``task_acks_late`` ...) apply."""
    return _work(self, run, seconds, then)


@shared_task(name="bench.probes.work_late", bind=True, acks_late=True, reject_on_worker_lost=True)
def work_late(self: Task, run: str, seconds: float, then: float | None = None) -> int:
    """As :func:`work`, acknowledged after it returns and requeued if its worker process dies."""
    return _work(self, run, seconds, then)
