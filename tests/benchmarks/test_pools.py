"""Per pool: the drain rate of a pre-filled queue, and the open-loop end-to-end latency.

A pytest-benchmark round is one batch: the drain of ``DRAIN_TASKS`` queued no-op tasks (the queue is
filled in the untimed setup), or one open-loop batch of ``E2E_TASKS`` arrivals at ``E2E_RATE``.
``extra_info`` carries tasks/s or the per-task percentiles, with the pool and its concurrency.
"""

from __future__ import annotations

import uuid

from bench import loadgen, scenarios, stats
from tests.benchmarks.conftest import latency_info

DRAIN_TASKS = 500
DRAIN_ROUNDS = 3
E2E_RATE = 100.0
E2E_TASKS = 300
E2E_ROUNDS = 3


def test_drain(benchmark, pool, load_worker, control, producer, conn, bench_queue, versions, drained):
    rounds: list[tuple[int, float]] = []
    state: dict[str, loadgen.ResultCollector] = {}

    def fill():
        prefix = f"drain-{pool}-{uuid.uuid4().hex[:8]}-"
        for task_id in loadgen.task_ids(prefix, DRAIN_TASKS):
            producer.send(loadgen.NOOP, task_id)
        state["collector"] = loadgen.ResultCollector(conn, prefix).start()
        return (), {}

    def drain() -> None:
        collector = state["collector"]
        try:
            with scenarios.consuming(control, load_worker, bench_queue):
                scenarios.wait_results(collector, DRAIN_TASKS, scenarios.DRAIN_TIMEOUT, f"{pool} drain")
        finally:
            collector.stop()
        rounds.append(loadgen.drain_rate(collector.outcomes()))

    benchmark.pedantic(drain, setup=fill, rounds=DRAIN_ROUNDS, iterations=1)
    summary = stats.summarize_throughput(rounds, what=f"drain {pool}")
    benchmark.extra_info.update(
        unit=summary.unit, median_rate=summary.median, rates=list(summary.round_rates),
        cv_rounds=summary.cv_rounds, tasks_per_round=DRAIN_TASKS, pool=pool,
        concurrency=load_worker.concurrency,
    )  # fmt: skip
    benchmark.extra_info.update(versions)
    assert summary.samples == DRAIN_ROUNDS * (DRAIN_TASKS - 1)


def test_e2e_open_loop(benchmark, pool, load_worker, control, producer, conn, bench_queue, versions, drained):
    to_start: list[list[float]] = []
    to_result: list[list[float]] = []
    lags: list[float] = []

    def batch() -> None:
        prefix = f"e2e-{pool}-{uuid.uuid4().hex[:8]}-"
        ids = loadgen.task_ids(prefix, E2E_TASKS)
        gen = loadgen.OpenLoop(
            lambda task_id: producer.send(loadgen.STAMP, task_id), rate=E2E_RATE, count=E2E_TASKS
        )
        with loadgen.ResultCollector(conn, prefix) as collector:
            with scenarios.consuming(control, load_worker, bench_queue):
                sent = gen.run(ids)
                scenarios.wait_results(collector, E2E_TASKS, scenarios.E2E_GRACE, f"{pool} open-loop results")
        start, result, missing = loadgen.e2e_latencies(sent, collector.outcomes())
        assert missing == [], f"{len(missing)} open-loop tasks had no successful result"
        to_start.append(start)
        to_result.append(result)
        lags.append(loadgen.generator_lag(sent))

    benchmark.pedantic(batch, rounds=E2E_ROUNDS, iterations=1)
    start = stats.summarize_latency(to_start, unit="ms", what=f"e2e.start {pool}")
    result = stats.summarize_latency(to_result, unit="ms", what=f"e2e.result {pool}")
    benchmark.extra_info.update(
        {f"start_{k}": v for k, v in latency_info(start).items()}
        | {f"result_{k}": v for k, v in latency_info(result).items()}
    )
    benchmark.extra_info.update(
        rate=E2E_RATE, tasks_per_round=E2E_TASKS, generator_lag_max_s=max(lags), pool=pool,
        concurrency=load_worker.concurrency,
    )  # fmt: skip
    benchmark.extra_info.update(versions)
    assert result.median >= start.median
