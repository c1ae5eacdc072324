"""bench.progress: the estimate of the time left (a fake clock), the plain lines, the rich bar, the choice."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from rich.console import Console

from bench import cli, progress, scenarios
from bench.progress import Estimate, PlannedStep
from tests.unit.sample_run import sample_run


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PLAN = (PlannedStep("a", 10.0), PlannedStep("b", 20.0), PlannedStep("c", 30.0))
P = progress.PRIOR_SECONDS


def test_before_any_step_the_estimate_is_the_plan():
    clock = FakeClock()
    e = Estimate(PLAN, clock=clock)
    assert (e.begun, e.total, e.remaining(), e.fraction()) == (0, 3, 60.0, 0.0)


def test_within_a_step_on_schedule_the_estimate_counts_down():
    clock = FakeClock()
    e = Estimate(PLAN, clock=clock)
    e.begin_next()
    clock.advance(5)
    assert e.remaining() == pytest.approx(55.0)
    assert e.fraction() == pytest.approx(5 / 60)


def test_a_slow_step_slows_the_whole_estimate_even_before_it_ends():
    clock = FakeClock()
    e = Estimate(PLAN, clock=clock)
    e.begin_next()
    clock.advance(20)  # twice its planned 10 s, still running
    overrun_pace = (20 + P) / (10 + P)
    assert e.pace() == pytest.approx(overrun_pace)
    assert e.remaining() == pytest.approx(50 * overrun_pace)
    e.begin_next()  # it ends now: the same pace, so no jump in the estimate
    assert e.remaining() == pytest.approx(50 * overrun_pace)
    clock.advance(10)  # b takes 10 s of its planned 20: the pace recovers
    e.begin_next()
    assert e.pace() == pytest.approx((30 + P) / (30 + P))
    assert e.remaining() == pytest.approx(30.0)
    clock.advance(30)
    assert (e.remaining(), e.fraction()) == (pytest.approx(0.0), pytest.approx(1.0))


def test_on_a_real_plan_the_estimate_converges_on_a_uniformly_slower_run():
    """Every step takes 1.5x its weight: from half-way through, the estimate is within 5 % of the truth."""
    plan = scenarios.plan_steps(scenarios.Options(pools=("solo", "prefork", "threads"), reliability=False))
    clock = FakeClock()
    e = Estimate(plan, clock=clock)
    total = sum(s.weight for s in plan)
    done = 0.0
    for step in plan:
        e.begin_next()
        if done >= total / 2:
            truth = 1.5 * (total - done)
            assert e.remaining() == pytest.approx(truth, rel=0.05), step.label
        clock.advance(1.5 * step.weight)
        done += step.weight
    assert e.remaining() == pytest.approx(0.0, abs=1e-9)


def test_a_plan_needs_steps_with_non_negative_weights():
    with pytest.raises(ValueError, match="at least one step"):
        Estimate(())
    with pytest.raises(ValueError, match="weights must be >= 0"):
        Estimate((PlannedStep("a", -1.0),))


def test_the_plan_has_one_step_per_reported_step():
    """The order of ``scenarios.run``'s reports: the quick run on three pools reports 20 steps."""
    options = scenarios.Options(pools=("solo", "prefork", "threads"), quick=True)
    plan = scenarios.plan_steps(options)
    assert len(plan) == 20 and all(s.weight > 0 for s in plan)
    assert [s.label for s in plan[6:10]] == [
        "solo x1 start", "solo x1 drain", "solo x1 I/O drain", "solo x1 open loop",
    ]  # fmt: skip
    assert plan[-2].label == "reliability" and plan[-1].label == "done"
    without = scenarios.plan_steps(dataclasses.replace(options, reliability=False))
    assert [s.label for s in without] == [s.label for s in plan if s.label != "reliability"]
    full = scenarios.plan_steps(dataclasses.replace(options, quick=False, reliability=False))
    assert sum(s.weight for s in full) > 5 * sum(s.weight for s in without)


# -- renderers -----------------------------------------------------------------------------------------
def test_plain_lines_are_todays_lines():
    clock, lines = FakeClock(), []
    plain = progress.PlainLines(lines.append, clock=clock)
    plain.started(PLAN)
    plain.step("broker: starting a private Redis")
    clock.advance(1.25)
    plain.note("reliability [solo]: no faults")
    clock.advance(10)
    plain.step("done")
    assert lines == [
        "[ 1/3] +  0.0s  broker: starting a private Redis",
        "        +  1.2s  reliability [solo]: no faults",
        "[ 2/3] + 11.2s  done",
    ]


def test_a_step_before_the_plan_is_a_usage_error():
    with pytest.raises(RuntimeError, match="before started"):
        progress.PlainLines(print).step("x")


def test_the_bar_shows_step_elapsed_estimate_and_message_and_keeps_the_history():
    clock, stream = FakeClock(), io.StringIO()
    bar = progress.RichBar(stream, clock=clock)
    bar.started(PLAN)
    bar.step("broker: starting")
    clock.advance(20)
    bar.step("enqueue latency")
    clock.advance(4)
    out = Console(file=io.StringIO(), width=120, color_system=None)
    out.print(bar.view())
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "[ 2/3]" in text and "enqueue latency" in text
    assert "elapsed 0:24" in text
    pace = (20 + P) / (10 + P)
    assert f"left ~{progress.clock_text(20 * pace - 4 + 30 * pace)}" in text
    assert re.search(r"✓ \[ 1/3\] broker: starting 20\.0s", stream.getvalue())


def test_a_step_cut_short_is_not_ticked_off():
    clock, stream = FakeClock(), io.StringIO()
    with pytest.raises(KeyboardInterrupt), progress.RichBar(stream, clock=clock) as bar:
        bar.started(PLAN)
        bar.step("solo x1: drain")
        clock.advance(3)
        raise KeyboardInterrupt
    assert "✗ [ 1/3] solo x1: drain 3.0s (stopped)" in stream.getvalue()
    assert "✓" not in stream.getvalue()


def test_the_bar_shows_messages_verbatim_square_brackets_included():
    clock, stream = FakeClock(), io.StringIO()
    bar = progress.RichBar(stream, clock=clock)
    bar.started(PLAN)
    bar.step("reliability [solo]: [bold]no faults")
    bar.note("reliability [prefork]: child killed")
    bar.step("next")
    out = Console(file=io.StringIO(), width=120, color_system=None)
    out.print(bar.view())
    assert "› next" in out.file.getvalue()  # type: ignore[attr-defined]
    history = stream.getvalue()
    assert "reliability [prefork]: child killed" in history
    assert "[ 1/3] reliability [solo]: [bold]no faults" in history


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_line_chooses_the_bar_only_on_a_terminal():
    assert isinstance(cli.progress_renderer(_Tty()), progress.RichBar)
    with cli.progress_renderer(io.StringIO()) as listener:
        assert isinstance(listener, progress.PlainLines)


def test_a_run_whose_stderr_is_not_a_terminal_prints_the_plain_lines(monkeypatch, capsys, tmp_path):
    def fake_run(options, progress):
        progress.started(scenarios.plan_steps(options))
        progress.step("broker: starting a private Redis")
        progress.note("something inside the step")
        progress.step("enqueue latency")
        return sample_run()

    monkeypatch.setattr(scenarios, "run", fake_run)
    path = tmp_path / "r.json"
    assert (
        cli.main(
            [
                "run",
                "--quick",
                "--no-reliability",
                "--no-plots",
                "--pool",
                "solo",
                "--broker",
                "redis",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.splitlines()
    total = len(scenarios.plan_steps(scenarios.Options(pools=("solo",), quick=True, reliability=False)))
    assert re.fullmatch(rf"\[ 1/{total}\] \+ +\d+\.\ds  broker: starting a private Redis", err[1]), err
    assert re.fullmatch(r" {8}\+ +\d+\.\ds  something inside the step", err[2]), err
    assert re.fullmatch(rf"\[ 2/{total}\] \+ +\d+\.\ds  enqueue latency", err[3]), err
    assert not any("\x1b[" in line for line in err)  # no terminal control codes in a log


def test_the_io_drain_is_planned_per_pool_and_concurrency_by_what_bounds_it():
    """One I/O drain step per cell; a round is ``io_waves`` waits long where the pool's slots bound it,
    and costs at least as many no-ops where they do not (a green pool's 100 slots)."""
    plan = scenarios.QUICK
    assert [plan.io_tasks(c) for c in (1, 2, 8, 100)] == [
        plan.io_waves, 2 * plan.io_waves, 8 * plan.io_waves, plan.drain_tasks,
    ]  # fmt: skip
    options = scenarios.Options(pools=("solo", "gevent"), quick=True, reliability=False)
    steps = {s.label: s.weight for s in scenarios.plan_steps(options)}
    assert {"solo x1 I/O drain", "gevent x100 I/O drain"} <= steps.keys()
    solo_round = plan.io_waves * scenarios.STEP_SECONDS["io_task_slot"]
    assert steps["solo x1 I/O drain"] >= plan.io_rounds * solo_round
    green_round = plan.drain_tasks * scenarios.STEP_SECONDS["drain_task"]
    assert steps["gevent x100 I/O drain"] >= plan.io_rounds * green_round
    full = scenarios.plan_steps(dataclasses.replace(options, quick=True, plan=scenarios.FULL))
    assert [s.label for s in full if "I/O" in s.label] == [
        "solo x1 I/O drain", "gevent x10 I/O drain", "gevent x100 I/O drain",
    ]  # fmt: skip
