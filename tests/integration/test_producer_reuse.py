"""A held producer per thread (``loadgen.Client(reuse_producer=True)``, the sweep's "producer reuse" cell)
goes back to the pool when its thread ends: round after round of new producer threads must not drain
kombu's producer pool (``broker_pool_limit``, 10 by default) and block forever."""

from __future__ import annotations

import threading
import uuid

import pytest

from bench import loadgen
from bench.broker import Broker
from bench.brokers import BrokerHandle

pytestmark = pytest.mark.integration

ROUNDS = 8
THREADS = 2
"""8 rounds x 2 new threads = 16 held producers without the release: more than the pool's 10."""

ROUNDS_TIMEOUT = 120.0
"""Seconds the rounds may take (a few hundred sends on a busy machine); a drained pool blocks forever."""


def test_producers_of_ended_threads_go_back_to_the_pool(
    bench_broker: Broker | BrokerHandle, bench_backend: Broker
):
    queue = f"reuse-{uuid.uuid4().hex[:8]}"
    done: list[int] = []
    with loadgen.Client(
        bench_broker.url, queue, backend_url=bench_backend.url, reuse_producer=True
    ) as client:

        def rounds() -> None:
            for _ in range(ROUNDS):
                calls, _seconds = loadgen.throughput_threads(
                    lambda: client.apply_async_ignore, threads=THREADS, per_thread=5
                )
                done.append(calls)

        runner = threading.Thread(target=rounds, daemon=True)
        runner.start()
        runner.join(ROUNDS_TIMEOUT)
        try:
            assert not runner.is_alive(), f"blocked after {len(done)} of {ROUNDS} rounds: the pool ran dry"
            assert done == [THREADS * 5] * ROUNDS
        finally:
            with client.app.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)  # the Redis list or the AMQP queue
