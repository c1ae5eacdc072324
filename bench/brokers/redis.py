"""Redis in the broker family: an adapter over :class:`bench.broker.Broker` (which stays the one owner
of a private ``redis-server``) that adds the family's ``kind`` and :meth:`RedisBroker.floor_push`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench import broker as redis_broker
from bench.loadgen import floor_call


@dataclass
class RedisBroker:
    """A :class:`bench.broker.Broker` behind the family's interface (``.broker`` is the original)."""

    broker: redis_broker.Broker
    kind = "redis"

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def redacted(self) -> str:
        return self.broker.redacted

    @property
    def owned(self) -> bool:
        return self.broker.owned

    def start(self) -> RedisBroker:
        self.broker.start()
        return self

    def stop(self) -> None:
        self.broker.stop()

    def restart(self) -> None:
        self.broker.restart()

    def __enter__(self) -> RedisBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def floor_push(self, queue: str, *, size: int) -> Iterator[Callable[[], object]]:
        """A raw redis-py ``LPUSH`` of ``size`` bytes to ``queue`` (the harness's Redis floor)."""
        conn = self.broker.client()
        try:
            yield floor_call(conn, queue, size)
        finally:
            conn.delete(queue)
            conn.close()


def private_redis(*, appendonly: bool = False) -> RedisBroker:
    return RedisBroker(redis_broker.private_redis(appendonly=appendonly))


def external(url: str) -> RedisBroker:
    return RedisBroker(redis_broker.external(url))
