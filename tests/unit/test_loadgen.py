"""Pacing and timing logic of bench.loadgen with a fake clock: no server, no wall time."""

from __future__ import annotations

import json
import threading

import pytest

from bench import loadgen, stats


class FakeClock:
    """Time moves only when the code under test sleeps or a fake call says it took time."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds

    def costing(self, seconds: float):
        def call(*args: object) -> None:
            self.now += seconds

        return call


def test_open_loop_keeps_the_schedule_when_sends_are_cheap():
    clock = FakeClock()
    gen = loadgen.OpenLoop(clock.costing(0.001), rate=100.0, count=5, clock=clock, sleep=clock.sleep)
    sent = gen.run([f"t{i}" for i in range(5)])
    assert [s.intended - 1_000.0 for s in sent] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])
    assert [s.actual for s in sent] == pytest.approx([s.intended for s in sent])
    assert [s.task_id for s in sent] == ["t0", "t1", "t2", "t3", "t4"]
    assert loadgen.generator_lag(sent) == pytest.approx(0.0)
    assert clock.sleeps == pytest.approx([0.009] * 4)  # interval minus the send's own cost


def test_open_loop_does_not_slip_the_schedule_when_sends_are_slow():
    # Each send takes 30 ms but arrivals are due every 10 ms: the generator falls behind, sends back to
    # back, and the intended times stay on the fixed schedule (no coordinated omission).
    clock = FakeClock()
    gen = loadgen.OpenLoop(clock.costing(0.03), rate=100.0, count=4, clock=clock, sleep=clock.sleep)
    sent = gen.run(["a", "b", "c", "d"])
    assert [s.intended - 1_000.0 for s in sent] == pytest.approx([0.0, 0.01, 0.02, 0.03])
    assert [s.actual - 1_000.0 for s in sent] == pytest.approx([0.0, 0.03, 0.06, 0.09])
    assert loadgen.generator_lag(sent) == pytest.approx(0.06)
    assert clock.sleeps == []


def test_open_loop_latency_counts_from_the_intended_time():
    clock = FakeClock()
    gen = loadgen.OpenLoop(clock.costing(0.03), rate=100.0, count=2, clock=clock, sleep=clock.sleep)
    sent = gen.run(["a", "b"])
    # Both tasks start on the worker at t=+0.10 and their results are seen at t=+0.12.
    outcomes = {
        s.task_id: loadgen.Outcome(s.task_id, seen=1_000.12, status="SUCCESS", result=1_000.10) for s in sent
    }
    to_start, to_result, missing = loadgen.e2e_latencies(sent, outcomes)
    assert to_start == pytest.approx([0.10, 0.09])  # "b" was due at +0.01, though sent at +0.03
    assert to_result == pytest.approx([0.12, 0.11])
    assert missing == []


def test_e2e_latencies_report_missing_and_failed_tasks():
    sent = [
        loadgen.Sent(0, "ok", 10.0, 10.0),
        loadgen.Sent(1, "lost", 10.1, 10.1),
        loadgen.Sent(2, "bad", 10.2, 10.2),
    ]
    outcomes = {
        "ok": loadgen.Outcome("ok", 10.5, "SUCCESS", 10.3),
        "bad": loadgen.Outcome("bad", 10.6, "FAILURE", None),
    }
    to_start, to_result, missing = loadgen.e2e_latencies(sent, outcomes)
    assert to_start == pytest.approx([0.3]) and to_result == pytest.approx([0.5])
    assert missing == ["lost", "bad"]


def test_open_loop_rejects_bad_parameters():
    with pytest.raises(ValueError, match="rate must be positive"):
        loadgen.OpenLoop(lambda task_id: None, rate=0, count=1)
    with pytest.raises(ValueError, match="count must be positive"):
        loadgen.OpenLoop(lambda task_id: None, rate=1, count=0)
    with pytest.raises(ValueError, match="need 2 task ids"):
        loadgen.OpenLoop(lambda task_id: None, rate=1, count=2).run(["only-one"])


def test_sample_calls_times_each_call():
    clock = FakeClock()
    costs = iter([0.001, 0.002, 0.004])
    samples = loadgen.sample_calls(lambda: clock.sleep(next(costs)), n=3, clock=clock)
    assert samples == pytest.approx([0.001, 0.002, 0.004])


def test_measure_latency_warms_up_and_runs_between_rounds():
    clock = FakeClock()
    calls: list[str] = []

    def call() -> None:
        calls.append("call")
        clock.now += 0.5

    rounds = loadgen.measure_latency(
        call, rounds=2, per_round=3, warmup=4, clock=clock, between=lambda: calls.append("between")
    )
    assert rounds == [[0.5] * 3, [0.5] * 3]
    assert calls == ["call"] * 4 + ["call"] * 3 + ["between"] + ["call"] * 3 + ["between"]


def test_measure_interleaved_alternates_the_calls_round_by_round():
    clock = FakeClock()
    order: list[str] = []

    def make(name: str, cost: float):
        def call() -> None:
            order.append(name)
            clock.now += cost

        return call

    out = loadgen.measure_interleaved(
        {"a": make("a", 0.001), "b": make("b", 0.003)}, rounds=2, per_round=2, warmup=1, clock=clock
    )
    assert set(out) == {"a", "b"}
    assert out["a"] == [pytest.approx([0.001] * 2)] * 2
    assert out["b"] == [pytest.approx([0.003] * 2)] * 2
    assert "".join(order) == "a" + "b" + "aa" + "bb" + "aa" + "bb"


def test_timing_overhead_is_zero_when_timing_costs_nothing():
    clock = FakeClock()
    overhead = loadgen.timing_overhead(clock.costing(0.002), blocks=3, per_block=10, clock=clock)
    assert overhead.calls == 30
    assert overhead.harness_mean_s == pytest.approx(0.002) and overhead.bare_mean_s == pytest.approx(0.002)
    assert overhead.ratio == pytest.approx(0.0)
    assert overhead.difference.pairs == 3
    assert overhead.difference.low == pytest.approx(0.0) and overhead.difference.high == pytest.approx(0.0)


def test_timing_overhead_sees_a_clock_that_costs_time():
    # A clock read that itself takes 1 ms is charged once per call inside the timed interval.
    state = {"now": 0.0}

    def slow_clock() -> float:
        state["now"] += 0.001
        return state["now"]

    def call() -> None:
        state["now"] += 0.010

    overhead = loadgen.timing_overhead(call, blocks=1, per_block=100, clock=slow_clock)
    assert overhead.harness_mean_s == pytest.approx(0.011)
    assert overhead.bare_mean_s == pytest.approx(0.010 + 0.001 / 100)
    assert overhead.ratio == pytest.approx(0.011 / 0.01001 - 1)
    assert overhead.difference.low == pytest.approx(overhead.ratio)  # one pair: a point, no spread


def test_throughput_threads_counts_every_call():
    lock = threading.Lock()
    made = {"calls": 0}

    def call() -> None:
        with lock:
            made["calls"] += 1

    ticks = iter([5.0, 7.0])
    count, seconds = loadgen.throughput_threads(
        lambda: call, threads=3, per_thread=50, clock=lambda: next(ticks)
    )
    assert (count, seconds) == (150, 2.0)
    assert made["calls"] == 150 + 3 * loadgen.WARMUP_CALLS


def test_throughput_threads_surfaces_a_failing_call():
    made = {"calls": 0}

    def flaky() -> None:  # fine while warming up, fails once timed
        made["calls"] += 1
        if made["calls"] > loadgen.WARMUP_CALLS:
            raise ConnectionError("broker went away")

    with pytest.raises(RuntimeError, match="broker went away"):
        loadgen.throughput_threads(lambda: flaky, threads=1, per_thread=3)


def _event(task_id: str, seen: float, status: str, result: object = None) -> tuple[float, bytes, bytes]:
    channel = f"{loadgen.RESULT_PREFIX}{task_id}".encode()
    return seen, channel, json.dumps({"status": status, "result": result, "task_id": task_id}).encode()


def test_collector_outcomes_keep_the_first_ready_state():
    collector = loadgen.ResultCollector(conn=None, prefix="p-")  # type: ignore[arg-type]
    collector.events = [
        _event("p-1", 1.0, "STARTED", {"pid": 1}),
        _event("p-1", 2.0, "SUCCESS", 1.5),
        _event("p-2", 3.0, "FAILURE", {"exc_type": "ValueError"}),
        _event("p-1", 4.0, "SUCCESS", 9.9),  # a duplicate publish: the first one counts
    ]
    out = collector.outcomes()
    assert set(out) == {"p-1", "p-2"}
    assert out["p-1"] == loadgen.Outcome("p-1", 2.0, "SUCCESS", 1.5)
    assert out["p-2"].status == "FAILURE"


def test_drain_rate_spans_first_to_last_completion():
    outcomes = {
        str(i): loadgen.Outcome(str(i), seen, "SUCCESS", None) for i, seen in enumerate([4.0, 0.0, 1.0, 2.0])
    }
    assert loadgen.drain_rate(outcomes) == (3, 4.0)
    assert loadgen.drain_rate({"x": loadgen.Outcome("x", 1.0, "SUCCESS", None)}) == (0, 0.0)


def test_drain_span_runs_from_the_first_start_stamp_to_the_last_result():
    outcomes = {
        "a": loadgen.Outcome("a", 10.4, "SUCCESS", 10.1),
        "b": loadgen.Outcome("b", 10.9, "SUCCESS", 10.6),
        "c": loadgen.Outcome("c", 12.0, "FAILURE", {"exc_type": "X"}),  # no stamp: not counted
    }
    assert loadgen.drain_span(outcomes) == pytest.approx(0.8)  # 10.9 - 10.1, not from 10.4 (a's result)
    with pytest.raises(stats.NoSamplesError, match="no successful stamp"):
        loadgen.drain_span({"c": outcomes["c"]})


def test_task_ids_share_the_prefix_and_are_unique():
    ids = loadgen.task_ids("run-e2e-", 500)
    assert len(set(ids)) == 500 and all(i.startswith("run-e2e-") for i in ids)
