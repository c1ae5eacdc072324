"""A private RabbitMQ node: its start and stop times, and enqueue latency against the AMQP floor.

The floor for AMQP is a raw ``basic_publish`` through the same client library Celery uses (py-amqp via
kombu) of the same message: the body and headers of a real ``noop.apply_async()`` read back from the
queue. The Redis floor (a raw ``LPUSH`` of the Celery message's size) is measured in the same interleaved
rounds, so the two ratios to their floors come from one run. No worker consumes: this is the producer's
cost. Run with ``pytest tests/benchmarks/test_rabbitmq.py --benchmark-only --benchmark-enable``.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterator

import kombu
import pytest
import redis

from bench import brokers, loadgen, stats
from bench.broker import Broker
from bench.brokers.rabbitmq import RabbitMQ, get_one, private_rabbitmq
from bench.brokers.redis import RedisBroker

RABBITMQ = brokers.support("rabbitmq")
pytestmark = pytest.mark.skipif(not RABBITMQ.available, reason=RABBITMQ.reason)
LIFECYCLES = 3
ROUNDS = 10
PER_ROUND = 200


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitMQ]:
    with private_rabbitmq() as node:
        yield node


def test_rabbitmq_start_and_stop(benchmark):
    """A round is one fresh private node started (until an AMQP login succeeds) and stopped."""
    starts: list[float] = []
    stops: list[float] = []

    def cycle() -> None:
        node = private_rabbitmq()
        try:
            node.start()
        finally:
            node.stop()
        starts.extend(node.start_seconds)
        stops.extend(node.stop_seconds)

    benchmark.pedantic(cycle, rounds=LIFECYCLES, iterations=1)
    assert len(starts) == len(stops) == LIFECYCLES
    benchmark.extra_info.update(
        start_s=starts,
        stop_s=stops,
        start_median_s=statistics.median(starts),
        stop_median_s=statistics.median(stops),
    )


def _amqp_message(client: loadgen.Client, url: str, queue: str) -> tuple[int, dict[str, object]]:
    """Body size and headers of the message ``noop.apply_async()`` publishes, read back from ``queue``."""
    client.noop.apply_async(queue=queue, ignore_result=True)
    message = get_one(url, queue)
    if message is None:
        raise RuntimeError(f"no Celery message arrived in scratch queue {queue!r}")
    return len(message.body), dict(message.headers or {})


def test_enqueue_vs_floor_amqp_and_redis(benchmark, rabbit: RabbitMQ, bench_backend: Broker):
    """The session's private Redis (``bench_backend``, always there) is the Redis side of the comparison."""
    tag = uuid.uuid4().hex[:8]
    amqp_q, redis_q = f"celery-bench.rabbit.{tag}", f"celery-bench.redis.{tag}"
    conn = bench_backend.client()
    with (
        loadgen.Client(rabbit.url, amqp_q, backend=False) as amqp_client,
        loadgen.Client(bench_backend.url, redis_q, backend=False) as redis_client,
        kombu.Connection(rabbit.url) as purger,
    ):
        size, headers = _amqp_message(amqp_client, rabbit.url, amqp_q)
        redis_size = loadgen.celery_message_bytes(redis_client, conn)
        with (
            rabbit.floor_push(f"{amqp_q}.floor", size=size, headers=headers) as amqp_floor,
            RedisBroker(bench_backend).floor_push(f"{redis_q}.floor", size=redis_size) as redis_floor,
        ):
            calls = {
                "amqp.floor": amqp_floor,
                "amqp.apply_async": amqp_client.apply_async_ignore,
                "redis.floor": redis_floor,
                "redis.apply_async": redis_client.apply_async_ignore,
            }
            channel = purger.default_channel

            def trim() -> None:  # keep the queues small between rounds (no worker consumes them)
                for queue in (amqp_q, f"{amqp_q}.floor"):
                    channel.queue_purge(queue=queue)
                conn.delete(redis_q, f"{redis_q}.floor")

            measured: dict[str, list[list[float]]] = {}

            def run() -> None:
                measured.update(
                    loadgen.measure_interleaved(calls, rounds=ROUNDS, per_round=PER_ROUND, between=trim)
                )

            benchmark.pedantic(run, rounds=1, iterations=1)
        channel.queue_delete(queue=amqp_q)
    _record(benchmark, measured, amqp_bytes=size, redis_bytes=redis_size, conn=conn)


def _record(benchmark, measured, *, amqp_bytes: int, redis_bytes: int, conn: redis.Redis) -> None:
    summaries = {name: stats.summarize_latency(rounds, what=name) for name, rounds in measured.items()}
    medians = {name: s.median for name, s in summaries.items()}
    amqp_ratio = stats.ratio(medians["amqp.apply_async"], medians["amqp.floor"])
    redis_ratio = stats.ratio(medians["redis.apply_async"], medians["redis.floor"])
    benchmark.extra_info.update(
        unit=summaries["amqp.floor"].unit,
        median=medians,
        iqr={name: s.iqr for name, s in summaries.items()},
        cv_rounds={name: s.cv_rounds for name, s in summaries.items()},
        samples={name: s.samples for name, s in summaries.items()},
        amqp_floor_ratio=amqp_ratio,
        redis_floor_ratio=redis_ratio,
        amqp_body_bytes=amqp_bytes,
        redis_message_bytes=redis_bytes,
    )
    conn.close()
    # Same run, same message: Celery's enqueue does strictly more than the one raw publish under it.
    assert medians["amqp.apply_async"] > medians["amqp.floor"]
    assert medians["redis.apply_async"] > medians["redis.floor"]
