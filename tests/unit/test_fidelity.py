"""The fidelity figures: the capacity ratio compares like with like, the overhead check reads its interval."""

from __future__ import annotations

import dataclasses

from bench import loadgen, scenarios, stats
from tests.unit.sample_run import sample_run


def _producer(name: str, rate: float) -> scenarios.Result:
    return scenarios.Result(name, name, None, None, throughput=stats.summarize_throughput([(int(rate), 1.0)]))


def _overhead(a: list[float], b: list[float]) -> loadgen.Overhead:
    return loadgen.Overhead(calls=20 * len(a), harness_mean_s=0.0, bare_mean_s=0.0,
                            difference=stats.paired_difference(a, b))  # fmt: skip


def test_capacity_ratio_uses_the_one_thread_producer_the_generator_is():
    producers = [
        _producer("producer.1-thread", 1800), _producer("producer.2-threads", 1750),
        _producer("producer.2-processes", 3300),
    ]  # fmt: skip
    quiet = _overhead([1.0] * 5, [1.0] * 5)
    drains = {("redis", "solo", 1): 600.0, ("redis", "threads", 2): 540.0}
    f = scenarios._fidelity((quiet, quiet), producers, drains, 0.001)
    assert f.producer_mode == "producer.1-thread" and f.producer_capacity == 1800
    assert f.slowest_pool == "threads x2" and f.capacity_ratio == 1800 / 540  # not 3300 / 540


def test_overhead_warning_reads_the_interval_not_the_point():
    f = sample_run().fidelity
    assert scenarios._overhead_warning(f) is None  # interval -0.6% .. +1.2%: within +-2%
    wide = dataclasses.replace(f, timing_overhead=0.001, timing_overhead_interval=(-0.05, 0.04))
    assert "cannot bound the per-call timing within 2%" in (scenarios._overhead_warning(wide) or "")
    beyond = dataclasses.replace(f, timing_overhead=0.06, timing_overhead_interval=(0.03, 0.09))
    assert "beyond the 2% target" in (scenarios._overhead_warning(beyond) or "")
