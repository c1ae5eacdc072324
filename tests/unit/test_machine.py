"""The machine controls (bench.machine): what they measure, how reports, bench repeat and bench compare
carry them."""

from __future__ import annotations

import json
import math

import psutil
import pytest

from bench import cli, defaults, machine, repeat
from tests.unit.test_repeatability import _report


def _clock(deltas):
    """A clock whose successive start/stop pairs are ``deltas`` apart."""
    times = []
    t = 0.0
    for d in deltas:
        times += [t, t + d]
        t += d + 1.0
    it = iter(times)
    return lambda: next(it)


def test_the_cpu_control_is_the_median_of_its_timings():
    assert machine.cpu_us(repeats=5, clock=_clock([3e-3, 1e-3, 2e-3, 9e-3, 4e-3])) == pytest.approx(3000)


def test_the_pipe_control_measures_a_real_round_trip_and_reaps_its_child():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    value = machine.ipc_us(trips=50)
    assert math.isfinite(value) and value > 0
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_a_report_keeps_start_and_end_and_repeat_reads_their_mean():
    control = machine.merge({"cpu_us": 100.0, "ipc_us": 40.0}, {"cpu_us": 110.0, "ipc_us": 44.0})
    assert control == {"cpu_us": [100.0, 110.0], "ipc_us": [40.0, 44.0]}
    assert machine.figures({"machine_control": control}) == {"control.cpu": 105.0, "control.ipc": 42.0}
    assert machine.figures({}) == {}
    assert machine.text(control) == (
        "machine control: cpu loop 100 / 110 us, pipe round trip 40 / 44 us (start / end of the run)"
    )


def test_drift_is_b_over_a_for_the_controls_both_reports_have():
    a = {"machine_control": {"cpu_us": [100.0, 100.0], "ipc_us": [40.0, 40.0]}}
    b = {"machine_control": {"cpu_us": [120.0, 120.0]}}
    assert machine.drift(a, b) == {"control.cpu": pytest.approx(1.2)}
    assert machine.drift({}, b) == {}


def _with_control(report, cpu, ipc):
    return dict(report, context={"machine_control": {"cpu_us": [cpu, cpu], "ipc_us": [ipc, ipc]}})


def test_repeat_prints_the_controls_cv_under_the_table_and_does_not_gate_on_it(tmp_path, capsys):
    paths = []
    for i, (cpu, ipc) in enumerate(((100, 40), (130, 40), (70, 40))):  # the cpu control varies 30%
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(_with_control(_report(100, 300, 2.0, 10.0), cpu, ipc)))
        paths.append(str(path))
    assert cli.main(["repeat", "--reports", *paths]) == 0  # every figure is steady: the controls never gate
    out = capsys.readouterr().out
    assert "machine controls across the runs" in out and "control.cpu 30.0%" in out
    assert "control.ipc 0.0%" in out
    rows = repeat.control_rows([_with_control(_report(1, 1, 1, 1), 100, 40)] * 2)
    assert [r.figure for r in rows] == ["control.cpu", "control.ipc"]
    assert all(r.target == defaults.REPEAT_CV_TARGET for r in rows)
