"""Small injections over broker and worker handles: kill a pool child, restart a private broker,
time a publish to a down broker."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import kombu.pools
from kombu import Connection
from kombu.exceptions import OperationalError

from bench import client as bench_client
from bench.broker import BrokerError, free_port
from bench.defaults import FAULT_PUBLISH_ERROR_BOUND
from bench.faults.producer import TASK_MARK
from bench.worker import Worker


# -- injections ----------------------------------------------------------------------------------------
class Server(Protocol):
    """A broker server the scenarios use: a private Redis (``bench.broker.Broker``) or RabbitMQ node
    (``bench.brokers.rabbitmq.RabbitMQ``), or a user's (``owned`` False: never stopped nor restarted)."""

    url: str
    owned: bool

    def start(self) -> Any: ...

    def stop_server(self) -> None: ...


def kill_child(worker: Worker, pid: int) -> None:
    """SIGKILL one prefork child of ``worker`` (the one running a task), not the worker itself."""
    if pid == worker.pid or pid not in worker.child_pids():
        raise ValueError(f"pid {pid} is not a pool child of worker {worker.node} ({worker.child_pids()})")
    os.kill(pid, signal.SIGKILL)


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
    broker: Server,
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
    backend_url: str | None = None,
    confirm: bool = False,
    bound: float = FAULT_PUBLISH_ERROR_BOUND,
    clock: Callable[[], float] = time.perf_counter,
) -> PublishFailure:
    """Time from ``send_task`` to a down broker until it raises (run in a thread, bounded).

    The app has Celery's defaults (the seed's broker and Redis result backend, JSON): the default
    ``task_publish_retry_policy`` and ``broker_connection_timeout``. ``results``: the task stores its
    result (the seed's ``add``), so the client subscribes to it before publishing. ``backend_url``: the
    result backend when it is not the broker (a Redis beside a RabbitMQ). ``confirm``: publisher
    confirms (py-amqp's ``confirm_publish`` transport option: each publish waits for the broker's ack).
    """
    settings: dict[str, Any] = {"broker_transport_options": {"confirm_publish": True}} if confirm else {}
    app = bench_client.client_app(broker_url, name="bench-down", backend=backend_url is None, **settings)
    if backend_url is not None:
        app.conf.result_backend = app.backend_cls = backend_url
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


def down_broker_url(broker: Server | None, kind: str = "redis") -> tuple[str, Callable[[], None]]:
    """A URL whose broker is down, and how to bring things back.

    A private broker is stopped (same URL, same password) and restarted afterwards; otherwise a closed
    loopback port (of a ``kind`` URL) stands for the down broker.
    """
    if broker is not None and broker.owned:
        broker.stop_server()

        def bring_back() -> None:
            broker.start()

        return broker.url, bring_back
    if kind == "rabbitmq":
        return f"amqp://bench:bench@127.0.0.1:{free_port()}//", lambda: None
    return f"redis://127.0.0.1:{free_port()}/0", lambda: None


def policy_sleeps(policy: Mapping[str, Any]) -> list[float]:
    """The sleeps kombu's ``retry_over_time`` takes under ``policy`` (a lower bound of its duration)."""
    start = float(policy.get("interval_start", 0))
    step = float(policy.get("interval_step", 0.2))
    top = float(policy.get("interval_max", 1))
    retries = int(policy.get("max_retries") or 0)
    return [min(start + step * n, top) for n in range(retries)]
