"""The main job's broker-specific parts: one *lane* per broker under test (``bench.scenarios``).

A lane holds what the enqueue, producer and pool measurements need of one broker beyond its
:class:`~bench.brokers.BrokerHandle`: the size (and, for AMQP, the headers) of the message Celery sends,
read back from a scratch queue; the raw floor of that message; how to empty a queue between rounds
(``DEL`` on Redis, ``queue_purge`` on AMQP); the server's version; and, on a broker the user gave, how to
remove what the run created. Results never travel through a lane: the result backend is always Redis
(``bench.scenarios`` passes its URL to every client and worker).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import amqp
import kombu
import redis

from bench import defaults, loadgen, pools
from bench.brokers import BrokerHandle

FLOOR_TITLES = {
    "redis": "redis-py LPUSH {message_bytes} B (floor)",
    "rabbitmq": "py-amqp basic_publish {message_bytes} B + Celery's headers (floor)",
}
"""The title of each broker's floor row (``{message_bytes}``: the size of the message it pushes)."""

PACED_SCENARIOS = ("drain", "drain.io", "e2e.start", "e2e.result")
"""The rows :data:`PACED_NOTE` goes on, for a worker ``bench.pools.synloop_paced`` says is paced."""

PACED_NOTE = (
    f"{pools.SYNLOOP_PACED}, so it drains about 10 tasks/s whatever its concurrency, and an open loop faster "
    "than that queues up; --set broker_heartbeat=0 lifts it (docs/reliability.md)"
)

KNOWN_NOTES: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("rabbitmq", "solo"): (
        ("e2e.start",),
        "solo on AMQP: once a burst fills the prefetch window, the worker's early acks wait in kombu's hub "
        "through an empty poll until its next timer (up to 2 s) and RabbitMQ delivers nothing meanwhile; "
        "such stalls in this row's tail are Celery's and kombu's, not the harness's "
        "(docs/benchmarks.md, celery#7718, kombu#1587)",
    ),
}
"""Known broker-and-pool behaviour that shapes the figures of some rows, noted on those rows of that broker
and pool (``bench.scenarios``): keyed ``(broker kind, pool)``, each the scenarios and the note; measured in
docs/benchmarks.md. (A paced green worker's rows get :data:`PACED_NOTE` instead, from
``bench.pools.synloop_paced``, which knows the settings that lift the pace.)"""


def redis_server_version(conn: redis.Redis) -> str | None:
    """The Redis server's own version (``INFO server``: ``redis_version``); ``None`` if it does not say."""
    try:
        version = conn.info("server").get("redis_version")
    except redis.RedisError:
        return None
    return None if version is None else str(version)


@dataclass
class Lane:
    """One broker under test and the queue names of this run (``queue``, ``queue.floor``, ...)."""

    handle: BrokerHandle
    queue: str
    message_bytes: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    server_version: str | None = None
    client: loadgen.Client | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.handle.kind

    @property
    def suffix(self) -> str:
        """What a label of this broker's figures adds: nothing for Redis (as before), `` on rabbitmq``."""
        return "" if self.kind == "redis" else f" on {self.kind}"

    @property
    def floor_title(self) -> str:
        return FLOOR_TITLES[self.kind].format(message_bytes=self.message_bytes)

    def open(self) -> Lane:
        raise NotImplementedError

    def probe(self, client: loadgen.Client) -> None:
        """Read the message ``client`` sends back from a scratch queue: its size (and headers)."""
        raise NotImplementedError

    def floor(self) -> contextlib.AbstractContextManager[Callable[[], object]]:
        """The raw push of the probed message to ``queue.floor`` (removed on exit)."""
        return self.handle.floor_push(f"{self.queue}.floor", size=self.message_bytes)

    def trim(self, *queues: str) -> None:
        """Empty ``queues`` (no worker consumes them)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """On a broker the user gave: remove the queues this run created (and nothing else)."""

    def close(self) -> None:
        raise NotImplementedError


@dataclass
class RedisLane(Lane):
    conn: redis.Redis | None = field(default=None, repr=False)

    def open(self) -> RedisLane:
        self.conn = redis.Redis.from_url(self.handle.url)
        self.server_version = redis_server_version(self.conn)
        return self

    def probe(self, client: loadgen.Client) -> None:
        assert self.conn is not None
        self.message_bytes = loadgen.celery_message_bytes(client, self.conn)

    def trim(self, *queues: str) -> None:
        assert self.conn is not None
        self.conn.delete(*queues)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class AmqpLane(Lane):
    conn: kombu.Connection | None = field(default=None, repr=False)

    def open(self) -> AmqpLane:
        self.conn = kombu.Connection(self.handle.url, connect_timeout=defaults.AMQP_CONNECT_TIMEOUT)
        self.conn.connect()
        self.server_version = amqp_server_version(self.conn)
        return self

    def probe(self, client: loadgen.Client) -> None:
        """Celery on AMQP carries the task's metadata in headers: the floor publishes them too."""
        from bench.brokers.rabbitmq import get_one

        scratch = f"{self.queue}.sizeprobe"
        try:
            client.noop.apply_async(queue=scratch, ignore_result=True)
            message = get_one(self.handle.url, scratch)
            if message is None:
                raise RuntimeError(f"no Celery message arrived in scratch queue {scratch!r}")
            self.message_bytes, self.headers = len(message.body), dict(message.headers or {})
        finally:
            self._delete(scratch)
            self._delete(scratch, exchange=True)

    @contextlib.contextmanager
    def floor(self) -> Iterator[Callable[[], object]]:
        from bench.brokers.rabbitmq import RabbitMQ

        assert isinstance(self.handle, RabbitMQ)
        with self.handle.floor_push(
            f"{self.queue}.floor", size=self.message_bytes, headers=self.headers
        ) as push:
            yield push

    def trim(self, *queues: str) -> None:
        assert self.conn is not None
        for name in queues:
            self.conn.default_channel.queue_purge(queue=name)

    def cleanup(self) -> None:
        """The run's queues, and the direct exchanges Celery declared for them (each named as its queue)."""
        for name in created_names(self.queue):
            self._delete(name)
            self._delete(name, exchange=True)

    def _delete(self, name: str, *, exchange: bool = False) -> None:
        """Delete queue (or exchange) ``name`` if it is there (a missing one closes the channel: a fresh
        channel each time)."""
        assert self.conn is not None
        with contextlib.suppress(amqp.exceptions.AMQPError, OSError), self.conn.channel() as channel:
            if exchange:
                channel.exchange_delete(exchange=name)
            else:
                channel.queue_delete(queue=name)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.release()
            self.conn = None


def created_names(queue: str) -> tuple[str, ...]:
    """The queues a run creates on an AMQP broker (Celery declares a direct exchange of the same name for
    each of the first, second and fourth; the floor publishes to the default exchange)."""
    return (queue, f"{queue}.idle", f"{queue}.floor", f"{queue}.sizeprobe")


def amqp_server_version(conn: kombu.Connection) -> str | None:
    """The AMQP server's version from the connection's ``server_properties`` (RabbitMQ sends it)."""
    version = getattr(conn.connection, "server_properties", {}).get("version")
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    return None if version is None else str(version)


def lane(handle: BrokerHandle, queue: str) -> Lane:
    """The lane of ``handle`` (not opened)."""
    return RedisLane(handle, queue) if handle.kind == "redis" else AmqpLane(handle, queue)
