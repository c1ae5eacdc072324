"""What the scenarios read of a RabbitMQ queue, through py-amqp (the library Celery's ``amqp://`` uses).

AMQP shows no message to a client that does not take it: a queue's ``queue.declare(passive=True)``
gives its count of *ready* messages and of consumers, never the delivered-but-unacknowledged ones
(those are only in the management plugin, which the private node does not run). So where the Redis
scenarios read kombu's ``unacked`` hash, these read the queue once nothing consumes it: RabbitMQ puts
a consumer's unacknowledged messages back the moment its channel closes (a worker killed, stopped or
cut off), marked ``redelivered``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import amqp
import kombu

from bench import defaults

T = TypeVar("T")


@dataclass(frozen=True)
class QueueState:
    """A passive declare's answer: ready messages and consumers (0, 0 for a queue that does not exist)."""

    ready: int
    consumers: int


@dataclass(frozen=True)
class Peeked:
    """The task ids in a queue, split by the ``redelivered`` flag (delivered before, not acknowledged)."""

    fresh: frozenset[str]
    redelivered: frozenset[str]

    @property
    def ids(self) -> frozenset[str]:
        return self.fresh | self.redelivered


class AmqpQueues:
    """One connection for a run's reads of its queue; reconnects once after the broker restarted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: kombu.Connection | None = None

    def _connection(self) -> kombu.Connection:
        if self._conn is None:
            self._conn = kombu.Connection(self.url, connect_timeout=defaults.AMQP_CONNECT_TIMEOUT)
            self._conn.connect()
        return self._conn

    def _call(self, action: Callable[[amqp.Channel], T]) -> T:
        for attempt in (1, 2):
            try:
                channel = self._connection().channel()
                try:
                    return action(channel)
                finally:
                    _close_quietly(channel)
            except (OSError, amqp.exceptions.ConnectionError, amqp.exceptions.RecoverableConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def state(self, queue: str) -> QueueState:
        def declare(channel: amqp.Channel) -> QueueState:
            try:
                _, ready, consumers = channel.queue_declare(queue=queue, passive=True)
            except amqp.exceptions.NotFound:
                return QueueState(0, 0)
            return QueueState(int(ready), int(consumers))

        return self._call(declare)

    def peek(self, queue: str) -> Peeked:
        """Every task id in ``queue``, taken unacknowledged and put back when the channel closes (call
        it only while nothing consumes the queue: a consumer would not see them meanwhile)."""

        def take(channel: amqp.Channel) -> Peeked:
            fresh: set[str] = set()
            again: set[str] = set()
            try:
                while (message := channel.basic_get(queue=queue, no_ack=False)) is not None:
                    task_id = (message.headers or {}).get("id")
                    if isinstance(task_id, str):
                        (again if message.delivery_info.get("redelivered") else fresh).add(task_id)
            except amqp.exceptions.NotFound:
                pass
            return Peeked(frozenset(fresh), frozenset(again))

        return self._call(take)

    def delete(self, queue: str) -> None:
        """Delete ``queue`` and the direct exchange of the same name Celery declared for it."""

        def remove(channel: amqp.Channel) -> None:
            channel.queue_delete(queue=queue)
            channel.exchange_delete(exchange=queue)

        try:
            self._call(remove)
        except amqp.exceptions.NotFound:
            pass

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.release()
            except Exception:  # noqa: BLE001,S110 - closing a connection to a broker that may be gone
                pass
            self._conn = None


def _close_quietly(channel: amqp.Channel) -> None:
    try:
        channel.close()
    except Exception:  # noqa: BLE001,S110 - a channel the broker closed (404) is already gone
        pass
