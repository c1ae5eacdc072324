"""A synthetic :class:`bench.results.Run` for the renderers' unit tests (no server)."""

from __future__ import annotations

from bench import stats
from bench.config import Config
from bench.ledger import ReliabilityRecord
from bench.results import Fidelity, Result, Run

REDIS = {
    "kind": "redis", "url": "redis://:***@127.0.0.1:1234/0", "private": True, "server_version": "7.0.15",
    "message_bytes": 959, "floor": "redis-py LPUSH 959 B (floor)", "start_seconds": [], "stop_seconds": [],
}  # fmt: skip
RABBITMQ = {
    "kind": "rabbitmq", "url": "amqp://bench-1:***@127.0.0.1:5999//", "private": True,
    "server_version": "3.10.8", "message_bytes": 77, "start_seconds": [13.25], "stop_seconds": [1.21],
    "floor": "py-amqp basic_publish 77 B + Celery's headers (floor)",
}  # fmt: skip


def rabbitmq_rows() -> tuple[Result, ...]:
    """The floor, ``delay`` and a drain measured on RabbitMQ (a second broker in the same run)."""
    floor = stats.summarize_latency([[50e-6, 52e-6, 55e-6], [51e-6, 53e-6, 54e-6]], what="floor on rabbitmq")
    delay = stats.summarize_latency([[900e-6, 920e-6, 950e-6], [910e-6, 930e-6, 940e-6]], what="delay")
    drain = stats.summarize_throughput([(499, 1.0), (499, 1.1)])
    return (
        Result(
            "enqueue.floor", RABBITMQ["floor"], None, None, latency=floor, floor_ratio=1.0, broker="rabbitmq",
        ),
        Result(
            "enqueue.delay", "delay()", None, None, latency=delay, broker="rabbitmq",
            floor_ratio=stats.ratio(delay.median, floor.median),
        ),
        Result("drain", "drain", "solo", 1, throughput=drain, broker="rabbitmq"),
    )  # fmt: skip


def sample_run(*, reliability=None, warnings=(), errors=(), rabbitmq=False) -> Run:
    """Two enqueue figures and the floor, a producer rate, one pool's drain and open loop (on Redis;
    with ``rabbitmq``, also a floor, ``delay`` and a drain on RabbitMQ)."""
    floor = stats.summarize_latency([[70e-6, 72e-6, 75e-6], [71e-6, 73e-6, 74e-6]], what="floor")
    delay = stats.summarize_latency([[700e-6, 720e-6, 750e-6], [710e-6, 730e-6, 740e-6]], what="delay")
    e2e = stats.summarize_latency([[0.002, 0.0025, 0.004]], unit="ms")
    drain = stats.summarize_throughput([(499, 0.8), (499, 0.82)])
    producer = stats.summarize_throughput([(600, 0.3), (600, 0.31)])
    results = (
        Result("enqueue.floor", "LPUSH (floor)", None, None, latency=floor, floor_ratio=1.0),
        Result(
            "enqueue.delay", "delay()", None, None, latency=delay,
            floor_ratio=stats.ratio(delay.median, floor.median),
        ),
        Result("producer.1-thread", "1 thread", None, None, throughput=producer),
        Result("drain", "drain", "solo", 1, throughput=drain),
        Result("e2e.start", "enqueue -> start", "solo", 1, latency=e2e, notes=("a note about solo",)),
    )  # fmt: skip
    if rabbitmq:
        results += rabbitmq_rows()
    fidelity = Fidelity(
        timing_overhead=0.004,
        timing_overhead_interval=(-0.006, 0.012),
        timing_overhead_floor=-0.01,
        timing_overhead_floor_interval=(-0.02, 0.003),
        overhead_calls=600,
        overhead_pairs=30,
        overhead_confidence=0.95,
        producer_capacity=producer.median,
        producer_mode="producer.1-thread",
        slowest_pool="solo x1",
        slowest_drain=drain.median,
        capacity_ratio=stats.ratio(producer.median, drain.median),
        generator_lag_max_s=0.002,
    )
    context = {
        "timestamp": "2025-01-01T00:00:00+00:00", "celery": "5.7.0", "kombu": "5.7.0", "redis_py": "6.4.0",
        "python": "3.11.7", "implementation": "CPython", "platform": "Linux", "machine": "x86_64",
        "cpu_count": 2, "git_commit": "abc123", "broker": "redis://:***@127.0.0.1:1234/0",
        "broker_private": True, "pools": {"solo": [1]}, "quick": True, "message_bytes": 959,
        "config": Config().to_json(), "brokers": [REDIS, RABBITMQ] if rabbitmq else [REDIS],
        "result_backend": {k: REDIS[k] for k in ("kind", "url", "private", "server_version")},
    }  # fmt: skip
    return Run(
        context=context,
        results=results,
        fidelity=fidelity,
        warnings=tuple(warnings),
        reliability=reliability,
        duration_s=12.5,
        errors=tuple(errors),
        samples={
            "enqueue.floor": (70e-6, 72e-6, 75e-6),
            "enqueue.delay": (700e-6, 720e-6, 750e-6),
            "e2e.start:solo x1": (0.002, 0.0025, 0.004),
            "e2e.result:solo x1": (0.003, 0.0035, 0.005),
        },
    )


RECORD = ReliabilityRecord(
    "solo", "kill-worker", 100, 0, 97, 0, 3, None, "at-most-once", "ok", "3 lost, as documented"
)
