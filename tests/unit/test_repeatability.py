"""Repeatability: the median's interval, the adaptive rounds (fake clock), the report's precision, and
``bench repeat``'s CV table (from synthetic reports; no server)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from bench import cli, defaults, html, loadgen, repeat, report, scenarios, stats
from tests.unit.sample_run import sample_run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the interval of a median over rounds -------------------------------------------------------------
def test_the_median_interval_is_deterministic_and_holds_the_median():
    values = [10.0, 11.0, 9.5, 10.4, 12.0, 9.9, 10.2]
    first = stats.median_interval(values)
    assert first == stats.median_interval(values)
    median, low, high = first
    assert median == 10.2 and low <= median <= high and low >= min(values) and high <= max(values)


def test_the_interval_narrows_with_rounds_and_widens_with_spread():
    spread = [10.0, 10.5, 9.5, 10.2, 9.8]
    few = stats.precision(spread, statistic="median", target=0.05)
    many = stats.precision(spread * 4, statistic="median", target=0.05)
    wide = stats.precision([v * 3 - 20 for v in spread], statistic="median", target=0.05)
    assert many.half_width < few.half_width < wide.half_width
    assert (many.rounds, few.rounds) == (20, 5)


def test_a_precision_is_reached_only_within_its_target_and_with_two_rounds():
    values = [100.0, 101.0, 99.0, 100.5, 99.5]
    half = stats.precision(values, statistic="median", target=1.0).half_width
    assert stats.precision(values, statistic="median", target=half).reached
    assert not stats.precision(values, statistic="median", target=half * 0.99).reached
    assert not stats.precision([100.0], statistic="median", target=1.0).reached  # one round pins nothing
    assert stats.precise(values, half) and not stats.precise(values, half, min_rounds=6)


def test_a_median_interval_of_nothing_is_an_error():
    with pytest.raises(stats.NoSamplesError):
        stats.median_interval([])


# -- adaptive rounds -----------------------------------------------------------------------------------
def _driver(values, *, seconds_per_round=1.0):
    """A round appends the next of ``values`` and takes ``seconds_per_round`` on the fake clock."""
    clock, got = FakeClock(), []
    feed = iter(values)

    def one_round() -> None:
        got.append(next(feed))
        clock.now += seconds_per_round

    return clock, got, one_round


def test_steady_rounds_stop_at_the_minimum():
    clock, got, one = _driver([100.0] * 50)
    budget = loadgen.Budget(min_rounds=4, max_rounds=50, seconds=1e9)
    assert loadgen.rounds_until_precise(one, lambda: {"x": got}, {"x": 0.01}, budget, clock=clock) == 4


def test_noisy_rounds_run_until_precise_or_the_maximum():
    noisy = [100.0, 130.0, 80.0, 120.0, 90.0] * 20
    clock, got, one = _driver(noisy)
    budget = loadgen.Budget(min_rounds=3, max_rounds=12, seconds=1e9)
    assert loadgen.rounds_until_precise(one, lambda: {"x": got}, {"x": 0.01}, budget, clock=clock) == 12
    # The same noise with a looser target stops early: more rounds narrowed the interval enough.
    clock, got, one = _driver(noisy)
    budget = dataclasses.replace(budget, max_rounds=100)
    used = loadgen.rounds_until_precise(one, lambda: {"x": got}, {"x": 0.10}, budget, clock=clock)
    assert 3 < used < 100 and stats.precise(got, 0.10) and not stats.precise(got[:-1], 0.10)


def test_the_time_budget_stops_before_a_round_that_would_overrun_it():
    clock, got, one = _driver([100.0, 150.0] * 50, seconds_per_round=1.0)
    budget = loadgen.Budget(min_rounds=1, max_rounds=50, seconds=3.5)
    # After 3 rounds (3 s) the next would end at 4 s > 3.5 s.
    assert loadgen.rounds_until_precise(one, lambda: {"x": got}, {"x": 0.001}, budget, clock=clock) == 3


def test_every_compared_series_must_be_precise():
    clock, got, one = _driver([100.0] * 40)
    noisy = iter([100.0, 150.0, 70.0] * 20)
    other: list[float] = []

    def both() -> None:
        one()
        other.append(next(noisy))

    budget = loadgen.Budget(min_rounds=2, max_rounds=9, seconds=1e9)
    series = lambda: {"steady": got, "noisy": other}  # noqa: E731
    assert (
        loadgen.rounds_until_precise(both, series, {"steady": 0.01, "noisy": 0.01}, budget, clock=clock) == 9
    )


def test_a_budget_needs_sensible_rounds():
    with pytest.raises(ValueError, match="min"):
        loadgen.Budget(min_rounds=5, max_rounds=4, seconds=1.0)
    with pytest.raises(ValueError, match="min"):
        loadgen.Budget(min_rounds=0, max_rounds=4, seconds=1.0)


def test_the_plans_budgets_come_from_defaults_and_never_undercut_the_minimum():
    quick = scenarios.QUICK
    assert quick.budget("enqueue").seconds == defaults.QUICK_BUDGET_S["enqueue"]
    assert quick.budget("e2e").min_rounds == quick.e2e_rounds
    raised = dataclasses.replace(quick, enqueue_rounds=1000)  # e.g. --rounds 1000
    assert raised.budget("enqueue").min_rounds == raised.budget("enqueue").max_rounds == 1000
    assert scenarios.FULL.budget("drain").seconds == defaults.FULL_BUDGET_S["drain"]


# -- the report says when a target was not reached ----------------------------------------------------
def _with_precision(reached_delay: bool):
    run = sample_run()
    results = []
    for r in run.results:
        if r.latency is not None and r.scenario.startswith("enqueue."):
            target = 0.5 if (r.scenario == "enqueue.floor" or reached_delay) else 1e-6
            p = stats.precision(r.latency.round_medians, statistic="median", target=target)
            r = dataclasses.replace(r, precision=(p,))
        results.append(r)
    return dataclasses.replace(run, results=tuple(results))


def test_the_report_marks_a_missed_target_and_the_json_carries_it():
    run = _with_precision(reached_delay=False)
    delay = next(r for r in run.results if r.scenario == "enqueue.delay")
    assert report.precision_text(delay).endswith(f"{report.NOT_REACHED} (2)")
    text = report.text(run)
    assert "±95% (rounds)" in text and "did not pin this figure within its target" in text
    doc = json.loads(json.dumps(report.to_json(run)))
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)
    row = next(r for r in doc["results"] if r["scenario"] == "enqueue.delay")
    assert row["precision"][0]["reached"] is False and row["precision"][0]["rounds"] == 2
    assert "precision" not in next(r for r in doc["results"] if r["scenario"] == "drain")
    warnings = scenarios._precision_warnings(list(run.results))
    assert len(warnings) == 1 and warnings[0].startswith("enqueue.delay: the median over 2 rounds")


def test_a_run_that_reached_every_target_has_no_mark_and_no_warning():
    run = _with_precision(reached_delay=True)
    assert report.NOT_REACHED not in report.table(run)
    assert "did not pin" not in report.text(run)
    assert scenarios._precision_warnings(list(run.results)) == []


def test_the_page_has_a_precision_column_marked_where_a_target_was_missed():
    page = html.page(_with_precision(reached_delay=False), figure=lambda run, section: None)
    assert html.PRECISION_HEADER in page
    assert f"{report.NOT_REACHED} (2)</td>" in page and 'class="num wide" data-value=' in page
    assert html.PRECISION_HEADER not in html.page(sample_run(), figure=lambda run, section: None)


# -- bench repeat ----------------------------------------------------------------------------------------
def _report(floor: float, drain: float, p50: float, p99: float, *, estimate: float | None = None):
    precision = [] if estimate is None else [{"statistic": "p50", "estimate": estimate}]
    return {
        "duration_s": 60.0,
        "results": [
            {"scenario": "enqueue.floor", "pool": None, "unit": "us", "median": floor},
            {"scenario": "drain", "pool": "solo", "concurrency": 1, "unit": "tasks/s", "median": drain},
            {"scenario": "e2e.start", "pool": "solo", "concurrency": 1, "unit": "ms", "median": p50,
             "p50": p50, "p99": p99, "precision": precision},
        ],
    }  # fmt: skip


def test_repeat_tabulates_the_cv_of_each_headline_across_runs():
    reports = [_report(100, 300, 2.0, 10.0), _report(102, 330, 2.0, 10.5), _report(98, 270, 2.0, 9.5)]
    rows = {r.figure: r for r in repeat.table_rows(reports)}
    assert list(rows) == ["enqueue.floor", "drain solo x1", "e2e.start solo x1 p50", "e2e.start solo x1 p99"]
    assert rows["enqueue.floor"].cv == pytest.approx(0.02)
    assert rows["enqueue.floor"].within and rows["drain solo x1"].within is False  # 10% > 5%
    assert rows["e2e.start solo x1 p99"].target == defaults.REPEAT_CV_TARGET_TAIL
    assert rows["e2e.start solo x1 p99"].within
    text = repeat.render(list(rows.values()), durations=[60, 61, 62])
    assert "drain solo x1" in text and "NO" in text and "10.0%" in text and "60-62 s" in text


def test_repeat_prefers_the_adaptive_estimate_when_a_row_has_one():
    figures = repeat.figures(_report(100, 300, 2.0, 10.0, estimate=2.2))
    assert figures["e2e.start solo x1 p50"] == (2.2, "ms")
    assert figures["e2e.start solo x1 p99"] == (10.0, "ms")


def test_repeat_reads_saved_reports_and_exits_1_when_a_figure_misses(tmp_path, capsys):
    paths = []
    for i, drain in enumerate((300, 330, 270)):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(_report(100, drain, 2.0, 10.0)))
        paths.append(str(path))
    assert cli.main(["repeat", "--reports", *paths]) == 1
    assert "drain solo x1" in capsys.readouterr().out


def test_repeat_refuses_a_single_run(capsys):
    assert cli.main(["repeat", "--runs", "1", "--", "--quick"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_the_page_states_the_plans_round_ranges():
    plan = dataclasses.asdict(scenarios.QUICK)
    line = html._plan_line(plan)
    assert "enqueue 5-40 rounds" in line and "open loop 100/s, 3-8 rounds of 2 s" in line
    assert "enqueue 5 rounds" in html._plan_line({"enqueue_rounds": 5})  # a report from before


def test_repeat_alternates_this_checkout_with_the_other(tmp_path, monkeypatch, capsys):
    """With --against, the sessions alternate (this 1, that 1, this 2, ...); each side gets its table."""
    other = tmp_path / "old"
    (other / "bench").mkdir(parents=True)
    (other / "bench" / "__main__.py").write_text("")
    calls = []

    def fake_run(cmd, *, cwd, stdout, check):
        path = Path(cmd[cmd.index("--json") + 1])
        calls.append((cwd, path.name))
        drain = 300 if cwd is None else 300 + 40 * len(calls)  # this one steady, the other not
        path.write_text(json.dumps(_report(100, drain, 2.0, 10.0)))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(repeat.subprocess, "run", fake_run)
    argv = ["repeat", "--runs", "2", "--out", str(tmp_path / "out"), "--against", str(other), "--", "--quick"]
    assert cli.main(argv) == 0  # only this checkout's figures decide the exit status
    assert calls == [(None, "run-1.json"), (other, "run-1-against.json"), (None, "run-2.json"),
                     (other, "run-2-against.json")]  # fmt: skip
    out = capsys.readouterr().out
    assert out.index("== this checkout") < out.index(f"== {other}") and out.count("drain solo x1") == 2


def test_repeat_rejects_a_directory_that_is_no_checkout(tmp_path, capsys):
    assert cli.main(["repeat", "--against", str(tmp_path), "--", "--quick"]) == 2
    assert "not a checkout of this harness" in capsys.readouterr().err


def test_repeat_tabulates_each_enqueue_calls_floor_ratio_beside_its_median():
    def run(floor: float, delay: float) -> dict:
        doc = _report(floor, 300, 2.0, 10.0)
        doc["results"].append({"scenario": "enqueue.delay", "pool": None, "unit": "us", "median": delay,
                               "floor_ratio": delay / floor})  # fmt: skip
        return doc

    # the machine twice as slow in the second run: both medians double, the ratio stays
    rows = {r.figure: r for r in repeat.table_rows([run(50, 500), run(100, 1000), run(50, 500)])}
    assert rows["enqueue.delay"].cv == pytest.approx(0.4330, rel=1e-3)
    assert (
        rows["enqueue.delay / floor"].values == (10.0, 10.0, 10.0) and rows["enqueue.delay / floor"].cv == 0
    )
    assert rows["enqueue.delay / floor"].unit == "x" and "enqueue.floor / floor" not in rows
