"""What a property runs against: a Celery client app, the worker node that consumes its messages, and
the queue they travel through; plus the side-effect ledger the worker's tasks write.

The pool tests build a :class:`Target` from the ``app`` / ``worker`` fixtures (default queue); the
defect meta-test builds one for a deliberately broken worker listening on a queue of its own.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import kombu
import redis
from celery import Celery
from celery.canvas import Signature
from celery.result import AsyncResult
from kombu.transport.redis import PRIORITY_STEPS, Channel

from bench import defaults
from bench.procs import wait_for
from tasks import ledger

RESULT_TIMEOUT = defaults.RESULT_TIMEOUT
"""Seconds a property waits for one result (a bound on waiting, never an expected duration)."""

IDLE_TIMEOUT = 30.0
"""Seconds the worker has to become idle (queue empty, nothing active, reserved or scheduled)."""

INSPECT_TIMEOUT = 1.0
"""Seconds one ``inspect`` call waits for the node's reply (a busy solo worker answers late)."""


class ResultTimeout(Exception):
    """What a property waited for (a result, a ledger record, an idle worker) never came in its bound.

    A property failure, like an assertion: a defect can make a result never arrive. Kept apart from
    the builtin ``TimeoutError`` (``OSError``), which a socket or an unreachable server also raises.
    """


def wait_until(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    """``bench.procs.wait_for``, its own timeout raised as :class:`ResultTimeout`.

    An error ``condition`` raises (a ``TimeoutError`` from a socket included) passes through as it is.
    """
    polling = False

    def polled() -> object:
        nonlocal polling
        polling = True
        value = condition()
        polling = False
        return value

    try:
        return wait_for(polled, timeout=timeout, what=what)
    except TimeoutError as error:
        if polling:
            raise
        raise ResultTimeout(str(error)) from None


def new_key(label: str) -> str:
    """A ledger key no other example, test or run can produce."""
    return f"prop:{label}:{uuid.uuid4().hex}"


@lru_cache(maxsize=8)
def _broker_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


@contextlib.contextmanager
def waiting_messages(url: str, queue: str) -> Iterator[Callable[[], int]]:
    """A callable counting the messages waiting in ``queue`` on the broker at ``url`` (not those a
    worker has taken: ``inspect reserved`` shows them). On Redis, the lengths of the lists kombu keeps
    for the queue and its priority steps; on AMQP, a passive ``queue.declare``'s message count."""
    if kombu.Connection(url).transport.driver_type == "redis":
        client = _broker_client(url)
        keys = [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]
        yield lambda: sum(int(client.llen(k)) for k in keys)
        return
    with kombu.Connection(url, connect_timeout=defaults.AMQP_CONNECT_TIMEOUT) as conn:
        channel = conn.channel()
        try:
            yield lambda: int(channel.queue_declare(queue=queue, passive=True).message_count)
        finally:
            channel.close()


@dataclass(frozen=True)
class Target:
    """A worker to run properties against: messages go to ``queue`` (None: the app's default)."""

    app: Celery
    node: str
    queue: str | None = None
    options: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", {"queue": self.queue} if self.queue else {})

    @property
    def queue_name(self) -> str:
        return self.queue or self.app.conf.task_default_queue

    def send(self, sig: Signature) -> AsyncResult:
        """Start a signature / chain / group / chord on this target's queue."""
        return sig.apply_async(**self.options)

    def wait_idle(self, timeout: float = IDLE_TIMEOUT) -> None:
        """Block until the worker has nothing left to do for this queue.

        Lets a property assert that something *never* ran (a chain's later steps after a failure):
        anything that was going to run has run once the queue is empty and the node reports no
        active, reserved or scheduled (ETA) task.
        """
        inspect = self.app.control.inspect([self.node], limit=1, timeout=INSPECT_TIMEOUT)
        with waiting_messages(self.app.conf.broker_url, self.queue_name) as waiting:

            def idle() -> bool:
                if waiting():
                    return False
                for ask in (inspect.active, inspect.reserved, inspect.scheduled):
                    reply = ask()
                    if reply is None or self.node not in reply or reply[self.node]:
                        return False
                return True

            what = f"worker {self.node} to become idle on {self.queue_name}"
            wait_until(idle, timeout=timeout, what=what)


def records(key: str) -> list[str]:
    """The ledger list ``key`` (what the worker's tasks recorded, in order)."""
    return [item.decode() for item in ledger.client().lrange(key, 0, -1)]


def attempts(key: str) -> list[dict[str, Any]]:
    """The start records of a retrying task's executions (``tasks.canvas._attempt``)."""
    return [json.loads(item) for item in records(key)]


def raised_at(key: str) -> list[float]:
    """When each failing execution of a retrying task raised (``tasks.canvas._raised``)."""
    return [json.loads(item)["raised"] for item in records(f"{key}:raised")]


def lineage(result: AsyncResult) -> list[AsyncResult]:
    """A chain's results from its first step to its last, following the ``parent`` links."""
    chain: list[AsyncResult] = []
    node: AsyncResult | None = result
    while node is not None:
        chain.append(node)
        node = node.parent
    return chain[::-1]
