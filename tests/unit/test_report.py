"""bench.report: the JSON report against its schema, the table, the plots (a synthetic run, no server)."""

from __future__ import annotations

import copy
import dataclasses
import json

import jsonschema
import pytest

from bench import report, stats
from bench.ledger import ReliabilityRecord
from bench.scenarios import Fidelity, Result, Run


def _run(*, reliability=None, warnings=(), errors=()) -> Run:
    floor = stats.summarize_latency([[70e-6, 72e-6, 75e-6], [71e-6, 73e-6, 74e-6]], what="floor")
    delay = stats.summarize_latency([[700e-6, 720e-6, 750e-6], [710e-6, 730e-6, 740e-6]], what="delay")
    e2e = stats.summarize_latency([[0.002, 0.0025, 0.004]], unit="ms")
    drain = stats.summarize_throughput([(499, 0.8), (499, 0.82)])
    producer = stats.summarize_throughput([(600, 0.3), (600, 0.31)])
    results = (
        Result("enqueue.floor", "LPUSH (floor)", None, None, latency=floor, floor_ratio=1.0),
        Result(
            "enqueue.delay", "delay()", None, None, latency=delay,
            floor_ratio=stats.ratio(delay.median, floor.median),
        ),
        Result("producer.1-thread", "1 thread", None, None, throughput=producer),
        Result("drain", "drain", "solo", 1, throughput=drain),
        Result("e2e.start", "enqueue -> start", "solo", 1, latency=e2e, notes=("a note about solo",)),
    )  # fmt: skip
    fidelity = Fidelity(
        timing_overhead=0.004,
        timing_overhead_floor=-0.01,
        overhead_calls=600,
        producer_capacity=producer.median,
        producer_mode="producer.1-thread",
        slowest_pool="solo x1",
        slowest_drain=drain.median,
        capacity_ratio=stats.ratio(producer.median, drain.median),
        generator_lag_max_s=0.002,
    )
    context = {
        "timestamp": "2025-01-01T00:00:00+00:00", "celery": "5.7.0", "kombu": "5.7.0", "redis_py": "6.4.0",
        "python": "3.11.7", "implementation": "CPython", "platform": "Linux", "machine": "x86_64",
        "cpu_count": 2, "git_commit": "abc123", "broker": "redis://:***@127.0.0.1:1234/0",
        "broker_private": True, "pools": {"solo": [1]}, "quick": True, "message_bytes": 959,
    }  # fmt: skip
    return Run(
        context=context,
        results=results,
        fidelity=fidelity,
        warnings=tuple(warnings),
        reliability=reliability,
        duration_s=12.5,
        errors=tuple(errors),
        samples={
            "enqueue.floor": (70e-6, 72e-6, 75e-6),
            "enqueue.delay": (700e-6, 720e-6, 750e-6),
            "e2e.start:solo x1": (0.002, 0.0025, 0.004),
            "e2e.result:solo x1": (0.003, 0.0035, 0.005),
        },
    )


RECORD = ReliabilityRecord(
    "solo", "kill-worker", 100, 0, 97, 0, 3, None, "at-most-once", "ok", "3 lost, as documented"
)


def _validate(doc: dict) -> None:
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(report.JSON_SCHEMA)


def test_report_validates_and_round_trips_through_json():
    doc = json.loads(json.dumps(report.to_json(_run(reliability=(RECORD,)))))
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
    assert doc["reliability"] == [dict(RECORD.__dict__)]
    assert doc["fidelity"]["capacity_ratio"] == pytest.approx(producer_rate() / drain["median"])


def producer_rate() -> float:
    return stats.summarize_throughput([(600, 0.3), (600, 0.31)]).median


def test_a_failed_section_is_reported_as_an_error():
    run = _run(errors=("reliability section failed: TimeoutError: too slow",))
    doc = report.to_json(run)
    _validate(doc)
    assert doc["errors"] == ["reliability section failed: TimeoutError: too slow"]
    assert "ERROR: reliability section failed: TimeoutError: too slow" in report.text(run)
    assert report.to_json(_run())["errors"] == []


def test_skipped_reliability_is_null():
    doc = report.to_json(_run(reliability=None))
    _validate(doc)
    assert doc["reliability"] is None


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.update(schema=99),
        lambda d: d.pop("context"),
        lambda d: d["context"].update(broker="redis://:s3cret@127.0.0.1:1234/0"),
        lambda d: d["results"].clear(),
        lambda d: d["results"][0].pop("samples"),
        lambda d: d["results"][0].update(samples=0),
        lambda d: d["results"][0].pop("p99"),
        lambda d: d["results"][2].update(unit="us"),
        lambda d: d["fidelity"].pop("capacity_ratio"),
        lambda d: d.pop("errors"),
        lambda d: d.update(reliability=[{"pool": "solo"}]),
        lambda d: d["reliability"][0].update(verdict="fine"),
    ],
    ids=[
        "wrong-version", "no-context", "password-in-broker-url", "no-results", "no-sample-count",
        "zero-samples", "latency-without-p99", "throughput-in-us", "no-capacity-ratio", "no-errors-list",
        "reliability-record-missing-fields", "unknown-verdict",
    ],
)  # fmt: skip
def test_schema_rejects_broken_reports(breakage):
    doc = copy.deepcopy(report.to_json(_run(reliability=(RECORD,))))
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def test_table_has_one_row_per_result_with_units_and_floor_ratio():
    run = _run()
    lines = report.table(run).splitlines()
    assert lines[0].split()[:4] == ["scenario", "pool", "n", "median"]
    body = lines[2:]
    assert len(body) == len(run.results)
    delay = next(line for line in body if line.startswith("enqueue.delay"))
    assert "us" in delay.split() and "10.00" in delay.split()  # 725 us / 72.5 us
    drain = next(line for line in body if line.startswith("drain"))
    assert "solo x1" in drain and "tasks/s" in drain


def test_text_report_shows_fidelity_notes_warnings_and_reliability():
    out = report.text(_run(reliability=(RECORD,), warnings=("something is off",)))
    assert "harness timing vs a bare loop (600 calls each): apply_async +0.40%" in out
    assert "x the slowest drain (solo x1" in out
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


def test_json_plots_and_html_are_written(tmp_path):
    run = _run(reliability=(RECORD,))
    path = report.write_json(run, tmp_path / "sub" / "r.json")
    _validate(json.loads(path.read_text()))
    png = report.plot(run, tmp_path / "sub" / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = report.write_html(run, tmp_path / "sub" / "r.html", png).read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "enqueue.delay" in page and "RELIABILITY" in page
