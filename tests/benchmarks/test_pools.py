"""Per pool: the drain time of a pre-filled queue, and the open-loop end-to-end latency.

The **timed value** of each round (what ``--benchmark-compare-fail`` gates) is the figure itself, read
through :data:`~tests.benchmarks.conftest.MEASURED` rather than the wall clock around the round:

* ``test_drain[pool]``: seconds from the first task's start on the worker to the last result seen, for
  ``DRAIN_TASKS`` queued ``stamp`` tasks (the queue is filled in the untimed setup). The control commands
  that switch the worker onto the queue, and the polling that waits for the results, are outside it.
* ``test_drain_io[pool]``: the same for I/O-bound tasks (``bench.probes.io_wait``, each waiting
  ``defaults.IO_WAIT_S``): ``defaults.IO_WAVES`` per slot of the pool, at most ``DRAIN_TASKS``, so a round
  is about as long on every pool whose size bounds it. What green-thread pools are for: gevent and eventlet
  wait on many at once, solo on one.
* ``test_e2e_open_loop[pool]``: the round's median enqueue -> result-available latency, over one open-loop
  batch of ``E2E_TASKS`` arrivals at ``E2E_RATE`` (the batch's wall time is the schedule, ~3 s, whatever
  the worker does, so it cannot be the gated value).

``extra_info`` carries the rest: tasks/s per round, and the per-task percentiles (p90, p99) that are not
gated (p99 of 300 arrivals is the third-largest value: too noisy for a 25% gate on a shared machine).
"""

from __future__ import annotations

import uuid

import pytest

from bench import defaults, loadgen, scenarios, stats
from tests.benchmarks.conftest import MEASURED, latency_info

DRAIN_TASKS = 500
DRAIN_ROUNDS = 5
E2E_RATE = 100.0
E2E_TASKS = 300
E2E_ROUNDS = 5

pytestmark = [
    pytest.mark.benchmark(timer=MEASURED),
    # Redis-only: the fixtures pre-fill and trim the Redis list of the scratch queue and collect results
    # from it, and the CI gate's baseline (test_gate.py) is these figures on Redis. Drain and end-to-end
    # latency on RabbitMQ are the main job's (python -m bench run --broker rabbitmq).
    pytest.mark.brokers("redis", reason="the Redis list of the scratch queue; the CI gate's baseline"),
]


def test_drain(benchmark, pool, load_worker, control, producer, conn, bench_queue, versions, drained):
    spans, summary = _timed_drains(
        benchmark, pool, load_worker, control, producer, conn, bench_queue, task=loadgen.STAMP,
        tasks=DRAIN_TASKS, what="drain",
    )  # fmt: skip
    benchmark.extra_info.update(
        timed="seconds from the first task start to the last result (the drain alone)"
    )
    benchmark.extra_info.update(versions)
    assert summary.samples == DRAIN_ROUNDS * (DRAIN_TASKS - 1)
    # The gated value is the drain alone: what the benchmark timed is what the stamps say.
    assert benchmark.stats.stats.data == pytest.approx(spans)


def test_drain_io(benchmark, pool, load_worker, control, producer, conn, bench_queue, versions, drained):
    tasks = min(DRAIN_TASKS, defaults.IO_WAVES * (load_worker.concurrency or 1))
    spans, summary = _timed_drains(
        benchmark, pool, load_worker, control, producer, conn, bench_queue, task=loadgen.IO_WAIT,
        tasks=tasks, what="drain.io",
    )  # fmt: skip
    benchmark.extra_info.update(
        timed="seconds from the first I/O task's start to the last result (the drain alone)",
        wait_s=defaults.IO_WAIT_S,
    )
    benchmark.extra_info.update(versions)
    assert summary.samples == DRAIN_ROUNDS * (tasks - 1)
    # Every task waits IO_WAIT_S: the pool's slots, side by side, bound each round's span from below.
    waves = tasks / (load_worker.concurrency or 1)
    assert min(spans) >= (waves - 1) * defaults.IO_WAIT_S, spans
    assert benchmark.stats.stats.data == pytest.approx(spans)


def _timed_drains(
    benchmark, pool, load_worker, control, producer, conn, bench_queue, *, task, tasks, what
) -> tuple[list[float], stats.ThroughputSummary]:
    """``DRAIN_ROUNDS`` drains of ``tasks`` queued ``task``s (filled in the untimed setup), each timed by
    its span (first start to last result); the spans and the rates' summary (also in ``extra_info``)."""
    spans: list[float] = []
    rates: list[tuple[int, float]] = []
    state: dict[str, loadgen.ResultCollector] = {}

    def fill():
        prefix = f"{what}-{pool}-{uuid.uuid4().hex[:8]}-"
        loadgen.fill(producer, prefix, tasks, task=task)
        state["collector"] = loadgen.ResultCollector(conn, prefix).start()
        return (), {}

    def drain() -> None:
        collector = state["collector"]
        try:
            outcomes = loadgen.await_results(
                collector, tasks, lambda: scenarios.consuming(control, load_worker, bench_queue),
                timeout=defaults.DRAIN_TIMEOUT, what=f"{pool} {what}",
            )  # fmt: skip
        finally:
            collector.stop()
        spans.append(loadgen.drain_span(outcomes))
        rates.append(loadgen.drain_rate(outcomes))
        MEASURED.record(spans[-1])

    benchmark.pedantic(drain, setup=fill, rounds=DRAIN_ROUNDS, iterations=1)
    summary = stats.summarize_throughput(rates, what=f"{what} {pool}")
    benchmark.extra_info.update(
        unit=summary.unit, median_rate=summary.median, rates=list(summary.round_rates),
        drain_seconds=spans, cv_rounds=summary.cv_rounds, tasks_per_round=tasks, pool=pool,
        concurrency=load_worker.concurrency,
    )  # fmt: skip
    return spans, summary


def test_e2e_open_loop(benchmark, pool, load_worker, control, producer, conn, bench_queue, versions, drained):
    to_start: list[list[float]] = []
    to_result: list[list[float]] = []
    lags: list[float] = []

    def batch() -> None:
        sent, outcomes = loadgen.open_loop_round(
            producer, conn, f"e2e-{pool}-{uuid.uuid4().hex[:8]}-", rate=E2E_RATE, count=E2E_TASKS,
            consume=lambda: scenarios.consuming(control, load_worker, bench_queue),
            grace=defaults.E2E_GRACE, what=f"{pool} open-loop results",
        )  # fmt: skip
        start, result, missing = loadgen.e2e_latencies(sent, outcomes)
        assert missing == [], f"{len(missing)} open-loop tasks had no successful result"
        to_start.append(start)
        to_result.append(result)
        lags.append(loadgen.generator_lag(sent))
        MEASURED.record(stats.quantile(result, 0.5))

    benchmark.pedantic(batch, rounds=E2E_ROUNDS, iterations=1)
    start = stats.summarize_latency(to_start, unit="ms", what=f"e2e.start {pool}")
    result = stats.summarize_latency(to_result, unit="ms", what=f"e2e.result {pool}")
    benchmark.extra_info.update(
        {f"start_{k}": v for k, v in latency_info(start).items()}
        | {f"result_{k}": v for k, v in latency_info(result).items()}
    )
    benchmark.extra_info.update(
        timed="median enqueue -> result-available latency of the round's open-loop arrivals, seconds",
        rate=E2E_RATE, tasks_per_round=E2E_TASKS, generator_lag_max_s=max(lags), pool=pool,
        concurrency=load_worker.concurrency,
    )  # fmt: skip
    benchmark.extra_info.update(versions)
    assert result.median >= start.median
    # The gated value is the latency: each round's timed value is that round's median, in seconds.
    medians_s = [m / 1e3 for m in result.round_medians]
    assert benchmark.stats.stats.data == pytest.approx(medians_s)
