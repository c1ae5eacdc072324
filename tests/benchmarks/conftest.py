"""Fixtures of the pytest-benchmark suite: a client app, a scratch queue, a worker per pool.

Benchmarks are skipped by the default test run (``--benchmark-skip`` in pyproject.toml); run them with
``tox -e bench`` or ``pytest tests/benchmarks --benchmark-only --benchmark-enable``.

The fixtures below that read or trim the broker (``conn``, ``floor``, ``drained``) speak Redis: the tests
using them are marked ``brokers("redis")`` (they measure against the Redis LPUSH floor). On a Redis broker
``bench_broker`` is the ``bench_backend`` Redis itself; ``test_rabbitmq.py`` brings its own AMQP node.
"""

from __future__ import annotations

import platform
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery
import kombu
import pytest
import redis

from bench import loadgen, scenarios, stats
from bench.broker import Broker
from bench.config import Config
from bench.worker import Worker, control_app

FLOOR_ROUNDS = 5
FLOOR_PER_ROUND = 200


class MeasuredClock:
    """A pytest-benchmark timer that reads what a round measured, not the wall time around it.

    pytest-benchmark times a round as ``timer()`` after the target minus ``timer()`` before it, and
    ``--benchmark-compare-fail=median:25%`` compares the median of those values with the baseline's. This
    clock stands still except when a round calls :meth:`record`, so a round's timed value is exactly the
    figure it recorded (an end-to-end latency, a drain time) in seconds. Set per test with the documented
    marker ``@pytest.mark.benchmark(timer=MEASURED)``.
    """

    def __init__(self, name: str) -> None:
        self.__name__ = name  # what pytest-benchmark prints and saves as the timer's name
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def record(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"a measured figure must be >= 0 seconds, got {seconds!r}")
        self.now += seconds


MEASURED = MeasuredClock("measured")
"""The timer of the benchmarks whose gated value is a figure they measure, not their wall time."""


@pytest.fixture(scope="session")
def bench_queue() -> str:
    """A queue name of this session only: no other test's worker consumes it."""
    return f"celery-bench.benchmarks.{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def conn(bench_broker: Broker) -> Iterator[redis.Redis]:
    client = bench_broker.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def client(
    bench_broker: Broker, bench_backend: Broker, bench_queue: str, bench_config: Config
) -> Iterator[loadgen.Client]:
    """A client app with the Redis result backend, as the seed's client.py has."""
    settings = bench_config.producer_settings
    with loadgen.Client(bench_broker.url, bench_queue, backend_url=bench_backend.url, settings=settings) as c:
        yield c


@pytest.fixture(scope="session")
def producer(bench_broker: Broker, bench_queue: str, bench_config: Config) -> Iterator[loadgen.Client]:
    """A client app without a result backend (pre-fills and open-loop sends subscribe to nothing)."""
    settings = bench_config.producer_settings
    with loadgen.Client(bench_broker.url, bench_queue, backend=False, settings=settings) as c:
        yield c


@pytest.fixture(scope="session")
def message_bytes(client: loadgen.Client, conn: redis.Redis) -> int:
    return loadgen.celery_message_bytes(client, conn)


@pytest.fixture(scope="session")
def floor(conn: redis.Redis, bench_queue: str, message_bytes: int) -> stats.LatencySummary:
    """The raw LPUSH floor, measured once per session on the same Redis with a same-size message."""
    scratch = f"{bench_queue}.floor"
    call = loadgen.floor_call(conn, scratch, message_bytes)
    rounds = loadgen.measure_latency(
        call, rounds=FLOOR_ROUNDS, per_round=FLOOR_PER_ROUND, between=lambda: conn.delete(scratch)
    )
    conn.delete(scratch)
    return stats.summarize_latency(rounds, what="floor")


@pytest.fixture(scope="session")
def versions(bench_config: Config) -> dict[str, Any]:
    """Versions and the configuration under test, for every benchmark's ``extra_info``."""
    return {
        "config": bench_config.to_json(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "python": platform.python_version(),
    }


@pytest.fixture
def drained(conn: redis.Redis, bench_queue: str) -> Iterator[None]:
    """The scratch queue is empty before and after each benchmark."""
    conn.delete(bench_queue)
    yield
    conn.delete(bench_queue)


@pytest.fixture(scope="module")
def load_worker(
    pool: str, bench_broker: Broker, bench_backend: Broker, bench_queue: str, bench_config: Config
) -> Iterator[Worker]:
    """A worker for ``pool`` idling on a queue of its own; benchmarks switch it onto the scratch queue."""
    worker = Worker(
        bench_broker.url,
        backend_url=bench_backend.url,
        **bench_config.on(pool, None).worker_kwargs(),
        queues=(f"{bench_queue}.idle",),
        loglevel=scenarios.WORKER_LOGLEVEL,
        name=f"bench-{pool}-{uuid.uuid4().hex[:6]}",
    )
    with worker:
        yield worker


@pytest.fixture(scope="module")
def control(bench_broker: Broker) -> Iterator[celery.Celery]:
    app = control_app(bench_broker.url)
    yield app
    app.close()


def latency_info(summary: stats.LatencySummary, floor: stats.LatencySummary | None = None) -> dict[str, Any]:
    """Per-call figures for ``benchmark.extra_info`` (pytest-benchmark's own stats are per batch)."""
    info = {
        "unit": summary.unit,
        "samples": summary.samples,
        "median": summary.median,
        "iqr": summary.iqr,
        "mad": summary.mad,
        "p50": summary.p50,
        "p90": summary.p90,
        "p99": summary.p99,
        "p99.9": summary.p999,  # None below 1,000 samples: it would be the max
        "max": summary.max,
        "cv_rounds": summary.cv_rounds,
    }
    if floor is not None:
        info["floor_median"] = floor.median
        info["floor_ratio"] = stats.ratio(summary.median, floor.median)
    if summary.warning:
        info["warning"] = summary.warning
    return info


def pytest_configure(config: pytest.Config) -> None:
    """pytest-benchmark does not create the directory of ``--benchmark-json`` (tox -e bench: reports/)."""
    path = config.getoption("benchmark_json", None)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
