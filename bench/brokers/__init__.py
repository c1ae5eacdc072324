"""The broker family: one module per broker behind one small interface.

Every broker the harness can use is a :class:`BrokerHandle`: :meth:`~BrokerHandle.start` (a private
server, or a check that a user's URL answers), :meth:`~BrokerHandle.stop`, :meth:`~BrokerHandle.restart`
(a private server only, for the broker faults), its ``url`` (with the password; ``redacted`` without) and
:meth:`~BrokerHandle.floor_push`, the raw client call that is the floor under one Celery enqueue.

The kinds are data, as pools are (``bench/pools.py``): :func:`support` says whether this machine can
start a private broker of a kind, and why not; :func:`private` and :func:`external` build one.

- ``redis`` — :mod:`bench.brokers.redis`, an adapter over :class:`bench.broker.Broker`;
- ``rabbitmq`` — :mod:`bench.brokers.rabbitmq`, a private RabbitMQ node.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from bench.broker import BrokerError
from bench.procs import is_windows

KINDS = ("redis", "rabbitmq")
"""Every broker kind the harness knows, in the order it runs them."""

_SCHEMES = {
    "redis": "redis",
    "rediss": "redis",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "pyamqp": "rabbitmq",
}


@runtime_checkable
class BrokerHandle(Protocol):
    """What the harness needs of a broker, whatever its kind."""

    @property
    def kind(self) -> str:
        """``redis`` or ``rabbitmq``."""
        ...

    @property
    def owned(self) -> bool:
        """True only for a private server the harness started (and may restart and stop)."""
        ...

    @property
    def url(self) -> str: ...

    @property
    def redacted(self) -> str: ...

    def start(self) -> BrokerHandle: ...

    def stop(self) -> None: ...

    def restart(self) -> None: ...

    def floor_push(self, queue: str, *, size: int) -> AbstractContextManager[Callable[[], object]]:
        """A context giving a callable that pushes one raw ``size``-byte message to ``queue`` with the
        same client library Celery uses for this broker; the context closes the connection and removes
        ``queue``."""
        ...


@dataclass(frozen=True)
class BrokerSupport:
    """Whether a private broker of ``kind`` can be started here, and if not, why (one line)."""

    kind: str
    available: bool
    reason: str = ""


def support(
    kind: str, which: Callable[[str], str | None] = shutil.which, platform: str | None = None
) -> BrokerSupport:
    """Whether this machine can start a private broker of ``kind``."""
    if kind == "redis":
        from bench.broker import find_redis_server

        try:
            find_redis_server()
        except BrokerError as exc:
            return BrokerSupport(kind, False, str(exc))
        return BrokerSupport(kind, True)
    if kind == "rabbitmq":
        from bench.brokers.rabbitmq import WINDOWS_REASON, find_epmd, find_rabbitmq_server

        if is_windows(platform):
            return BrokerSupport(kind, False, WINDOWS_REASON)
        try:
            find_rabbitmq_server(which)
            find_epmd(which)
        except BrokerError as exc:
            return BrokerSupport(kind, False, str(exc))
        return BrokerSupport(kind, True)
    raise ValueError(f"unknown broker {kind!r}: choose one of {', '.join(KINDS)}")


def kind_of_url(url: str) -> str:
    """The broker kind a URL names, from its scheme; a one-line error for any other scheme."""
    scheme = urlsplit(url).scheme
    try:
        return _SCHEMES[scheme]
    except KeyError:
        raise BrokerError(
            f"unsupported broker URL scheme {scheme!r}: use redis://HOST:PORT/DB or amqp://USER:PASSWORD@HOST:PORT//"
        ) from None


def private(kind: str) -> BrokerHandle:
    """A private broker of ``kind`` (not yet started); :class:`BrokerError` naming the fix if this
    machine cannot start one."""
    info = support(kind)
    if not info.available:
        raise BrokerError(info.reason)
    if kind == "redis":
        from bench.brokers.redis import private_redis

        return private_redis()
    from bench.brokers.rabbitmq import private_rabbitmq

    return private_rabbitmq()


def external(url: str) -> BrokerHandle:
    """A user's broker at ``url`` (kind from the scheme); the harness never stops or restarts it."""
    if kind_of_url(url) == "redis":
        from bench.brokers.redis import external as redis_external

        return redis_external(url)
    from bench.brokers.rabbitmq import external as rabbitmq_external

    return rabbitmq_external(url)
