"""bench.report: the JSON report against its schema, the table, the plots (a synthetic run, no server)."""

from __future__ import annotations

import copy
import dataclasses
import json

import jsonschema
import pytest

from bench import report, stats
from tests.unit.sample_run import RECORD, sample_run


def _validate(doc: dict) -> None:
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(report.JSON_SCHEMA)


def test_report_validates_and_round_trips_through_json():
    doc = json.loads(json.dumps(report.to_json(sample_run(reliability=(RECORD,)))))
    _validate(doc)
    assert doc["schema"] == report.SCHEMA_VERSION
    rows = {(r["scenario"], r["pool"]): r for r in doc["results"]}
    delay = rows[("enqueue.delay", None)]
    assert delay["kind"] == "latency" and delay["unit"] == "us" and delay["samples"] == 6
    assert delay["median"] == pytest.approx(725.0)
    assert delay["floor_ratio"] == pytest.approx(725.0 / 72.5)
    assert delay["round_values"] == pytest.approx([720.0, 730.0])
    drain = rows[("drain", "solo")]
    assert drain["kind"] == "throughput" and drain["unit"] == "tasks/s" and drain["concurrency"] == 1
    on_solo = dict(doc["context"]["config"], pool="solo", concurrency=None)
    assert doc["reliability"] == [dict(RECORD.__dict__, config=on_solo)]
    assert doc["fidelity"]["capacity_ratio"] == pytest.approx(producer_rate() / drain["median"])


def producer_rate() -> float:
    return stats.summarize_throughput([(600, 0.3), (600, 0.31)]).median


def test_a_failed_section_is_reported_as_an_error():
    run = sample_run(errors=("reliability section failed: TimeoutError: too slow",))
    doc = report.to_json(run)
    _validate(doc)
    assert doc["errors"] == ["reliability section failed: TimeoutError: too slow"]
    assert "ERROR: reliability section failed: TimeoutError: too slow" in report.text(run)
    assert report.to_json(sample_run())["errors"] == []


def test_skipped_reliability_is_null():
    doc = report.to_json(sample_run(reliability=None))
    _validate(doc)
    assert doc["reliability"] is None


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.update(schema=99),
        lambda d: d.pop("context"),
        lambda d: d["context"].update(broker="redis://:s3cret@127.0.0.1:1234/0"),
        lambda d: d["context"].update(broker_server=7),
        lambda d: d["results"].clear(),
        lambda d: d["results"][0].pop("samples"),
        lambda d: d["results"][0].update(samples=0),
        lambda d: d["results"][0].pop("p99"),
        lambda d: d["results"][2].update(unit="us"),
        lambda d: d["fidelity"].pop("capacity_ratio"),
        lambda d: d["fidelity"].update(timing_overhead_interval=[0.01]),
        lambda d: d.pop("errors"),
        lambda d: d.update(reliability=[{"pool": "solo"}]),
        lambda d: d["reliability"][0].update(verdict="fine"),
    ],
    ids=[
        "wrong-version", "no-context", "password-in-broker-url", "broker-server-not-a-string", "no-results",
        "no-sample-count",
        "zero-samples", "latency-without-p99", "throughput-in-us", "no-capacity-ratio",
        "overhead-interval-not-a-pair", "no-errors-list",
        "reliability-record-missing-fields", "unknown-verdict",
    ],
)  # fmt: skip
def test_schema_rejects_broken_reports(breakage):
    doc = copy.deepcopy(report.to_json(sample_run(reliability=(RECORD,))))
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def test_p999_is_null_and_blank_below_a_thousand_samples():
    run = sample_run()  # six enqueue samples per figure
    doc = report.to_json(run)
    assert all(r["p999"] is None for r in doc["results"] if r["kind"] == "latency")
    _validate(doc)
    big = stats.summarize_latency([[i * 1e-6 for i in range(1, 1001)]], what="floor")
    results = (dataclasses.replace(run.results[0], latency=big), *run.results[1:])
    doc = report.to_json(dataclasses.replace(run, results=results))
    assert doc["results"][0]["p999"] == pytest.approx(999, rel=2e-3) and doc["results"][1]["p999"] is None
    _validate(doc)
    lines = report.table(dataclasses.replace(run, results=results)).splitlines()
    column = lines[0].split().index("p99.9")
    assert lines[2].split()[column] == "999" and lines[3].split()[column] == "-"


def test_table_has_one_row_per_result_with_units_and_floor_ratio():
    run = sample_run()
    lines = report.table(run).splitlines()
    assert lines[0].split()[:5] == ["scenario", "pool", "broker", "n", "median"]
    body = lines[2:]
    assert len(body) == len(run.results)
    delay = next(line for line in body if line.startswith("enqueue.delay"))
    assert "us" in delay.split() and "10.00" in delay.split()  # 725 us / 72.5 us
    drain = next(line for line in body if line.startswith("drain"))
    assert "solo x1" in drain and "tasks/s" in drain and "redis" in drain.split()


def test_two_brokers_are_side_by_side_each_against_its_own_floor():
    run = sample_run(rabbitmq=True)
    body = report.table(run).splitlines()[2:]
    rows = {(line.split()[0], line.split()[2]) for line in body if line.startswith("enqueue.")}
    assert {("enqueue.floor", "redis"), ("enqueue.floor", "rabbitmq"), ("enqueue.delay", "rabbitmq")} <= rows
    delay = next(line for line in body if line.startswith("enqueue.delay") and "rabbitmq" in line.split())
    assert "17.62" in delay.split()  # 925 us / 52.5 us: RabbitMQ's own floor, not Redis's 72.5 us
    text = report.text(run)
    assert (
        "broker: rabbitmq 3.10.8 amqp://bench-1:***@127.0.0.1:5999// (private: started in 13.2 s, "
        "stopped in 1.2 s)"
    ) in text
    assert "result backend: Redis 7.0.15 redis://:***@127.0.0.1:1234/0 (private), for every broker" in text
    assert "enqueue on redis vs its own floor (floor 72.5 us): delay 725 us = x10.0" in text
    assert "enqueue on rabbitmq vs its own floor (floor 52.5 us): delay 925 us = x17.6" in text
    doc = report.to_json(run)
    _validate(doc)
    assert [(r["scenario"], r["broker"]) for r in doc["results"]][-3:] == [
        ("enqueue.floor", "rabbitmq"), ("enqueue.delay", "rabbitmq"), ("drain", "rabbitmq"),
    ]  # fmt: skip
    assert [b["kind"] for b in doc["context"]["brokers"]] == ["redis", "rabbitmq"]


def test_text_report_shows_fidelity_notes_warnings_and_reliability():
    out = report.text(sample_run(reliability=(RECORD,), warnings=("something is off",)))
    assert (
        "per-call timing vs a bare loop, median of 30 block pairs [95% interval]: "
        "apply_async +0.40% [-0.60% .. +1.20%], floor -1.00% [-2.00% .. +0.30%]"
    ) in out
    assert "not the result collector thread, the polling loops or the worker" in out
    assert "(producer.1-thread, as the generator sends) =" in out and "x the slowest drain (solo x1" in out
    assert "note: e2e.start solo x1: a note about solo" in out
    assert "WARNING: something is off" in out
    reliability = out.split("RELIABILITY\n", 1)[1].splitlines()
    assert reliability[0].split() == [f for f in report.RELIABILITY_FIELDS if f not in report.PROSE_FIELDS]
    assert reliability[2].split()[:3] == ["solo", "kill-worker", "100"]


def test_reliability_sentences_go_under_the_table():
    deviation = dataclasses.replace(RECORD, verdict="deviation", note="ran twice")
    table = report.reliability_table([RECORD, deviation]).splitlines()
    assert "expected" not in table[0] and "note" not in table[0]
    assert table[-1] == "  solo / kill-worker: deviation: ran twice (expected: at-most-once)"
    assert len(table) == 5  # header, rule, two rows, one sentence (the 'ok' row says nothing more)


def test_reliability_table_is_generic():
    table = report.reliability_table([{"pool": "threads", "scenario": "x", "extra": 1.25}])
    header = table.splitlines()[0].split()
    assert header == ["pool", "scenario", "extra"]
    assert table.splitlines()[2].split() == ["threads", "x", "1.25"]


def test_json_and_plots_are_written(tmp_path):
    run = sample_run(reliability=(RECORD,))
    path = report.write_json(run, tmp_path / "sub" / "r.json")
    _validate(json.loads(path.read_text()))
    png = report.plot(run, tmp_path / "sub" / "r.png")
    assert png.read_bytes()[:8] == PNG


PNG = b"\x89PNG\r\n\x1a\n"


def test_each_figure_section_has_its_own_png_and_none_without_data():
    run = sample_run()
    for section in report.FIGURE_SECTIONS:
        png = report.section_png(run, section)
        assert png is not None and png[:8] == PNG, section
    empty = dataclasses.replace(run, samples={}, results=run.results[:2])  # no throughput, no samples
    assert [report.section_png(empty, s) for s in report.FIGURE_SECTIONS] == [None] * 4


@pytest.mark.parametrize(
    ("low", "high"), [(20e-6, 3e-3), (1.8e-3, 17e-3), (1e-6, 2.0)], ids=["enqueue-us", "e2e-ms", "6-decades"]
)
def test_log_axis_labels_do_not_overlap(low, high):
    """Only major ticks carry a label, and no two labels drawn on the axis overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [low * (high / low) ** (k / 99) for k in range(100)]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    try:
        report._cdf_axis(ax, {"a": values}, scale=1e6, unit="us", title="t")
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        lo, hi = sorted(ax.get_xlim())
        minor = [t.get_text() for t in ax.xaxis.get_ticklabels(which="minor")]
        assert all(text == "" for text in minor), minor
        shown = [
            t for t, x in zip(ax.xaxis.get_ticklabels(), ax.xaxis.get_majorticklocs(), strict=True)
            if t.get_text() and lo <= x <= hi
        ]  # fmt: skip
        assert len(shown) >= 2, [t.get_text() for t in shown]
        boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x1 < right.x0, (left, right)
    finally:
        plt.close(fig)


def test_reliability_of_two_brokers_goes_side_by_side():
    redis_ok = dataclasses.replace(RECORD, scenario="countdown", duplicated=1, broker="redis")
    rabbit_ok = dataclasses.replace(RECORD, scenario="countdown", broker="rabbitmq", recovery_seconds=None)
    rabbit_na = dataclasses.replace(
        RECORD, scenario="timeout", verdict="n/a", note="redis has none", broker="redis"
    )
    rabbit_dev = dataclasses.replace(
        RECORD, scenario="timeout", verdict="deviation", note="x", broker="rabbitmq"
    )
    lines = report.reliability_table([redis_ok, rabbit_ok, rabbit_na, rabbit_dev]).splitlines()
    assert lines[0].split() == ["pool", "scenario", "redis", "rabbitmq"]
    assert len([line for line in lines if line.startswith("solo")]) == 2  # one row per pool and scenario
    countdown = next(line for line in lines if "countdown" in line)
    assert countdown.index("dup 1") < countdown.index("dup 0")  # redis's column first, as first seen
    timeout = next(line for line in lines if line.startswith("solo") and "timeout" in line)
    assert "n/a" in timeout and "deviation" in timeout
    assert any(line.startswith("  rabbitmq / solo / timeout: deviation: x") for line in lines)
