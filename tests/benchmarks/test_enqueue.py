"""Enqueue latency per call, against the raw redis-py LPUSH floor measured in the same session.

A pytest-benchmark round is a batch of ``BATCH`` calls (pedantic mode); pytest-benchmark's min/median/
... are seconds per batch, and ``extra_info`` carries the per-call percentiles (HDR histogram), the
ratio to the floor, and the versions. No worker consumes the scratch queue: this is the producer's cost.
"""

from __future__ import annotations

import pytest

from bench import loadgen, stats
from tests.benchmarks.conftest import latency_info

# The Redis floor: every figure here is a ratio to a raw redis-py LPUSH on the same Redis. The AMQP
# counterpart (a raw basic_publish beside the Redis floor) is tests/benchmarks/test_rabbitmq.py.
pytestmark = pytest.mark.brokers("redis", reason="ratios to the raw Redis LPUSH floor")

BATCH = 200
ROUNDS = 10


def _per_call(benchmark, call, *, floor, versions, what, between) -> stats.LatencySummary:
    rounds: list[list[float]] = []

    def batch() -> None:
        rounds.append(loadgen.sample_calls(call, n=BATCH))

    for _ in range(loadgen.WARMUP_CALLS):
        call()
    benchmark.pedantic(batch, rounds=ROUNDS, iterations=1, warmup_rounds=1, teardown=between)
    summary = stats.summarize_latency(rounds[1:], what=what)  # the first batch was the warm-up round
    benchmark.extra_info.update(latency_info(summary, floor), batch=BATCH, pool=None, concurrency=None)
    benchmark.extra_info.update(versions)
    return summary


def test_floor_lpush(benchmark, conn, bench_queue, message_bytes, floor, versions, drained):
    scratch = f"{bench_queue}.floor"
    call = loadgen.floor_call(conn, scratch, message_bytes)
    summary = _per_call(
        benchmark, call, floor=floor, versions=versions, what="floor", between=lambda: conn.delete(scratch)
    )
    benchmark.extra_info["message_bytes"] = message_bytes
    assert summary.samples == BATCH * ROUNDS


@pytest.mark.parametrize("method", ["apply_async", "delay"])
def test_enqueue(benchmark, method, client, conn, bench_queue, floor, versions, drained):
    call = client.apply_async_ignore if method == "apply_async" else client.delay
    summary = _per_call(
        benchmark, call, floor=floor, versions=versions, what=method, between=lambda: conn.delete(bench_queue)
    )
    benchmark.extra_info["call"] = (
        "noop.apply_async(ignore_result=True)" if method == "apply_async" else "noop.delay()"
    )
    # Same run, same Redis, same message size: Celery's enqueue does strictly more than one LPUSH.
    assert summary.median > floor.median


@pytest.mark.parametrize("mode", ["1-thread", "threads", "processes"])
def test_producer_throughput(benchmark, mode, bench_broker, bench_queue, client, conn, versions, drained):
    """A round is ``PER_PRODUCER`` sends per producer; extra_info carries tasks/s per round."""
    per = 500
    parallel = 2
    rounds: list[tuple[int, float]] = []

    def once() -> None:
        if mode == "processes":
            rounds.append(
                loadgen.throughput_processes(
                    bench_broker.url, bench_queue, processes=parallel, per_process=per
                )
            )
        else:
            threads = 1 if mode == "1-thread" else parallel
            rounds.append(
                loadgen.throughput_threads(lambda: client.apply_async_ignore, threads=threads, per_thread=per)
            )

    benchmark.pedantic(once, rounds=3, iterations=1, teardown=lambda: conn.delete(bench_queue))
    summary = stats.summarize_throughput(rounds, what=f"producer {mode}")
    benchmark.extra_info.update(
        unit=summary.unit, median_rate=summary.median, rates=list(summary.round_rates),
        cv_rounds=summary.cv_rounds, producers=1 if mode == "1-thread" else parallel, pool=None,
    )  # fmt: skip
    benchmark.extra_info.update(versions)
    assert summary.samples == sum(count for count, _ in rounds) > 0
