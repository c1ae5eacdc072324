"""``bench compare``: matching, the ratio, Welch's test, the regression gate, bad input (no server)."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from bench import cli, compare, report
from bench.report import to_json
from tests.unit.sample_run import sample_run


def _doc() -> dict:
    return to_json(sample_run())


def _scaled(doc: dict, scenario: str, factor: float, *, jitter: tuple[float, ...] = ()) -> dict:
    """``doc`` with ``scenario``'s median and round values times ``factor`` (each round also times jitter)."""
    out = copy.deepcopy(doc)
    for row in out["results"]:
        if row["scenario"] == scenario:
            rounds = row["round_values"]
            extra = jitter or (1.0,) * len(rounds)
            row["round_values"] = [v * factor * j for v, j in zip(rounds, extra, strict=True)]
            row["median"] = row["median"] * factor
    return out


def _write(tmp_path, name: str, doc: dict):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _run(tmp_path, a: dict, b: dict, *extra: str) -> int:
    return cli.main(
        ["compare", str(_write(tmp_path, "a.json", a)), str(_write(tmp_path, "b.json", b)), *extra]
    )


def _verdict(comparison: compare.Comparison, scenario: str) -> compare.Verdict:
    return next(v for v in comparison.verdicts if v.a.scenario == scenario)


def test_welch_matches_a_hand_computation():
    t, df = compare.welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert t == pytest.approx(3 / (2 / 3) ** 0.5)
    assert df == pytest.approx(4.0)
    assert compare.significant([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])[0] is True
    assert compare.significant([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])[0] is False


def test_one_round_cannot_be_tested():
    assert compare.significant([1.0], [2.0, 3.0]) == (None, None)


def test_t_critical_falls_towards_the_normal_value():
    values = [compare.t_critical(df) for df in (1, 2, 5, 30, 45, 80, 500, 10_000)]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(12.706) and values[-1] == pytest.approx(1.96)


def test_identical_reports_differ_in_nothing(tmp_path, capsys):
    assert _run(tmp_path, _doc(), _doc()) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "no significant regression beyond 10%" in out
    assert "REGRESSION" not in out


def test_a_significant_latency_slowdown_beyond_the_threshold_exits_1(tmp_path, capsys):
    a = _doc()
    b = _scaled(a, "enqueue.delay", 1.3)
    assert _run(tmp_path, a, b) == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "1.30x slower" in out
    assert "REGRESSION: significantly slower by more than 10%: enqueue.delay" in out


def test_a_faster_figure_is_never_a_regression(tmp_path, capsys):
    a = _doc()
    b = _scaled(a, "enqueue.delay", 0.5)
    assert _run(tmp_path, a, b) == cli.EXIT_OK
    assert "2.00x faster" in capsys.readouterr().out


def test_a_rate_that_drops_is_slower(tmp_path):
    a = _doc()
    b = _scaled(a, "drain", 1 / 1.5)
    comparison = compare.compare_files(_write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b))
    drain = _verdict(comparison, "drain")
    assert drain.ratio == pytest.approx(1.5)
    assert drain.change == pytest.approx(1 / 1.5 - 1)
    assert drain.significant and drain.regression


def test_a_slowdown_within_the_rounds_spread_is_not_significant(tmp_path):
    a = _doc()
    # 30% slower on the median, but one round 1.6x and the other 1.0x: the rounds overlap A's
    b = _scaled(a, "enqueue.delay", 1.3, jitter=(1.6 / 1.3, 1.0 / 1.3))
    comparison = compare.compare_files(_write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b))
    delay = _verdict(comparison, "enqueue.delay")
    assert delay.ratio == pytest.approx(1.3)
    assert delay.significant is False and not delay.regression


def test_the_threshold_decides_which_significant_slowdown_fails(tmp_path):
    a = _doc()
    row = next(r for r in a["results"] if r["scenario"] == "enqueue.delay")
    row["round_values"] = [row["median"] * k for k in (0.999, 1.0, 1.001)]  # tight: 5% is significant
    b = _scaled(a, "enqueue.delay", 1.05)
    assert _run(tmp_path, a, b) == cli.EXIT_OK
    assert _run(tmp_path, a, b, "--threshold", "2") == cli.EXIT_FAILED


def test_single_round_rows_never_gate(tmp_path, capsys):
    a = _doc()
    b = _scaled(a, "e2e.start", 3.0)
    assert _run(tmp_path, a, b) == cli.EXIT_OK
    assert "n/a (1 round)" in capsys.readouterr().out


def test_two_configurations_are_matched_by_figure_and_pool(tmp_path, capsys):
    a = _doc()
    b = copy.deepcopy(a)
    for row in b["results"]:
        row["config"]["settings"] = {"worker_prefetch_multiplier": 16}
    b["context"]["config"]["settings"] = {"worker_prefetch_multiplier": 16}
    assert _run(tmp_path, a, b) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "configurations differ: A tasks, B tasks; worker_prefetch_multiplier=16" in out
    assert out.count("A vs B") == len(a["results"])


def test_rows_only_on_one_side_are_named(tmp_path, capsys):
    a = _doc()
    b = copy.deepcopy(a)
    b["results"] = [r for r in b["results"] if r["scenario"] != "drain"]
    assert _run(tmp_path, a, b) == cli.EXIT_OK
    assert "only in A: drain solo x1" in capsys.readouterr().out


def test_a_version_1_report_is_migrated(tmp_path):
    a = _doc()
    v1 = copy.deepcopy(a)
    v1["schema"] = 1
    del v1["context"]["config"]
    for row in v1["results"]:
        del row["config"]
    comparison = compare.compare_files(_write(tmp_path, "a.json", v1), _write(tmp_path, "b.json", a))
    assert comparison.matched_on_config
    assert len(comparison.verdicts) == len(a["results"])


def _v2(doc: dict) -> dict:
    """``doc`` as a version-2 report wrote it: one Redis, no broker per row or per broker context."""
    v2 = copy.deepcopy(doc)
    v2["schema"] = 2
    for key in ("brokers", "result_backend"):
        del v2["context"][key]
    for row in v2["results"]:
        del row["broker"]
    return v2


def test_a_version_2_report_is_migrated_to_a_valid_version_3(tmp_path):
    a = _doc()
    migrated = report.migrate(_v2(a))
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(migrated)
    assert {row["broker"] for row in migrated["results"]} == {"redis"}
    assert [b["kind"] for b in migrated["context"]["brokers"]] == ["redis"]
    assert migrated["context"]["result_backend"]["url"] == a["context"]["broker"]
    comparison = compare.compare_files(_write(tmp_path, "a.json", _v2(a)), _write(tmp_path, "b.json", a))
    assert comparison.matched_on_config and len(comparison.verdicts) == len(a["results"])


def test_a_redis_row_never_matches_a_rabbitmq_row(tmp_path, capsys):
    a = to_json(sample_run(rabbitmq=True))
    b = copy.deepcopy(a)
    for row in b["results"]:
        if row["broker"] == "rabbitmq" and row["scenario"] == "enqueue.delay":
            row["round_values"] = [v * 2 for v in row["round_values"]]
            row["median"] *= 2
    comparison = compare.compare_files(_write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b))
    slower = {(v.a.scenario, v.a.broker) for v in comparison.verdicts if v.ratio > 1}
    assert slower == {("enqueue.delay", "rabbitmq")}
    assert len(comparison.verdicts) == len(a["results"])
    assert _run(tmp_path, a, b) == cli.EXIT_FAILED
    assert "enqueue.delay on rabbitmq" in " ".join(capsys.readouterr().out.split())
    only_redis = {**a, "results": [r for r in a["results"] if r["broker"] == "redis"]}
    only_rabbitmq = {**a, "results": [dict(r, broker="rabbitmq") for r in only_redis["results"]]}
    assert _run(tmp_path, only_redis, only_rabbitmq) == cli.EXIT_USAGE
    assert "no figure in common (scenario, pool, concurrency, broker)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        (json.dumps({"kind": "something else"}), "not a celery-bench report"),
        (json.dumps({"kind": "celery-bench-report", "schema": 99, "results": []}), "report schema 99"),
        (json.dumps({"kind": "celery-bench-report", "schema": 2, "results": []}), "no results"),
        (
            json.dumps({"kind": "celery-bench-report", "schema": 2, "results": [{"scenario": "x"}]}),
            "results[0]",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content, expected):
    good = _write(tmp_path, "good.json", _doc())
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert cli.main(["compare", str(good), str(bad)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and str(bad) in err


def test_a_negative_threshold_is_refused(tmp_path, capsys):
    good = str(_write(tmp_path, "good.json", _doc()))
    with pytest.raises(SystemExit) as exited:
        cli.main(["compare", good, good, "--threshold", "-5"])
    assert exited.value.code == cli.EXIT_USAGE
    assert "--threshold" in capsys.readouterr().err


def test_the_machine_controls_drift_is_stated_beside_the_figures(tmp_path, capsys):
    a, b = _doc(), _doc()
    a["context"]["machine_control"] = {"cpu_us": [100.0, 100.0], "ipc_us": [40.0, 40.0]}
    b["context"]["machine_control"] = {"cpu_us": [125.0, 125.0], "ipc_us": [40.0, 40.0]}
    for doc in (a, b):
        jsonschema.validate(doc, report.JSON_SCHEMA)
    assert _run(tmp_path, a, b) == 0
    assert "machine controls, B over A: control.cpu x1.25, control.ipc x1.00" in capsys.readouterr().out
    assert _run(tmp_path, _doc(), _doc()) == 0
    assert "machine controls" not in capsys.readouterr().out  # reports without them (older harness)
