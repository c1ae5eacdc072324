"""Render a :class:`bench.results.Run`: a terminal table, the versioned JSON report, plots.

This module only formats: every number it shows was computed by ``bench.stats`` (the CDF points of the
plots included). The JSON format is versioned by ``SCHEMA_VERSION`` and described by ``JSON_SCHEMA``
(JSON Schema 2020-12; ``python -m bench schema`` prints it). History:

* 1 -- first version: context, results (latency and throughput rows), fidelity, warnings, reliability.
  Compatible addition: ``context.broker_server`` (the broker server's version; optional, may be null).
* 2 -- the configuration under test is a value (``bench.config.Config``): every results row and every
  reliability row carries ``config`` (app, pool, concurrency, ``--set`` settings, producer settings),
  and ``context.config`` is the run's configuration without a pool. Required, hence the bump. Migrating
  a version-1 report: every row measured the seed app with no settings, i.e.
  ``config = {"app": "tasks", "pool": row.pool, "concurrency": row.concurrency, "settings": {},
  "producer_settings": <the seed's JSON serializer settings>}`` (``migrate_v1`` does it).
  The same version also: a latency row's ``p999`` is null below 1,000 samples (it was the maximum there);
  ``fidelity`` gains ``timing_overhead_interval`` / ``timing_overhead_floor_interval`` (bootstrap interval
  of the median pair difference), ``overhead_pairs`` and ``overhead_confidence``; ``producer_capacity`` is
  the one-thread producer (the open-loop generator's), no longer the best of the producer modes.
  Compatible addition: a result row's optional ``precision`` (the adaptive rounds: per headline statistic
  its estimate, the median over rounds; its 95% interval; rounds used; relative half-width; the target;
  ``reached``). Open-loop rows' ``round_values`` are now the medians of several open-loop rounds.
* 3 -- the broker is an axis (``--broker redis|rabbitmq``): every results row carries ``broker`` (its
  kind; a row's ``floor_ratio`` is to that broker's own floor: ``LPUSH`` on Redis, ``basic_publish`` on
  AMQP), and the context gains ``brokers`` (per broker: kind, redacted URL, private or not, server
  version, the floor's message size and title, a private node's ``start_seconds`` / ``stop_seconds``) and
  ``result_backend`` (always Redis: kind, redacted URL, private, server version). ``broker``,
  ``broker_private``, ``broker_server`` and ``message_bytes`` stay, as the first broker's. Required,
  hence the bump. Migrating a version-2 report: every row measured Redis, i.e. ``broker = "redis"``,
  ``brokers`` is the one Redis of ``context.broker`` and ``result_backend`` the same Redis
  (``migrate_v2`` does it; ``bench compare`` reads versions 1, 2 and 3).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import machine, stats
from bench.brokers import KINDS
from bench.client import JSON_ONLY
from bench.config import Config
from bench.results import Result, Run

SCHEMA_VERSION = 3
"""Version of the JSON report format; bumped on any incompatible change (see the module docstring)."""

PROSE_FIELDS = ("expected", "note")
"""Reliability fields that are sentences: in the JSON, and under the terminal table, not in it."""

RELIABILITY_FIELDS = (
    "pool",
    "scenario",
    "enqueued",
    "publish_errors",
    "executed_once",
    "duplicated",
    "lost",
    "recovery_seconds",
    "expected",
    "verdict",
    "note",
)
"""Fields of a reliability record (``bench.faults.ReliabilityRecord``), in table order."""

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT = {"type": "integer", "minimum": 0}
_CONFIG = {
    "type": "object",
    "description": "the configuration this row measured (bench.config.Config)",
    "required": ["app", "pool", "concurrency", "settings", "producer_settings"],
    "properties": {
        "app": {"type": "string", "description": "MODULE[:ATTR] of the Celery app"},
        "pool": {"type": ["string", "null"]},
        "concurrency": {"type": ["integer", "null"]},
        "settings": {"type": "object", "description": "--set NAME=VALUE, on workers and producers alike"},
        "producer_settings": {"type": "object", "description": "the app's producer settings, then --set"},
    },
}
_INTERVAL = {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}

_PRECISION = {
    "type": "object",
    "required": [
        "statistic", "estimate", "low", "high", "confidence", "rounds", "half_width", "target", "reached",
    ],
    "properties": {
        "statistic": {"enum": ["median", "p50", "p99"]},
        "estimate": _NUM, "low": _NUM, "high": _NUM, "confidence": _NUM, "rounds": _INT,
        "half_width": {**_NUM, "description": "(high - low) / 2 / estimate"},
        "target": _NUM,
        "reached": {"type": "boolean"},
    },
}  # fmt: skip

_REDACTED = {"type": "string", "not": {"pattern": ":[^:@/*]+@"}, "description": "redacted"}
_BROKER = {
    "type": "object",
    "description": "one broker under test (bench.scenarios.broker_context)",
    "required": [
        "kind",
        "url",
        "private",
        "server_version",
        "message_bytes",
        "floor",
        "start_seconds",
        "stop_seconds",
    ],
    "properties": {
        "kind": {"enum": list(KINDS)},
        "url": _REDACTED,
        "private": {"type": "boolean", "description": "a private server the run started (else --broker-url)"},
        "server_version": {
            "type": ["string", "null"],
            "description": "INFO redis_version / AMQP server_properties",
        },
        "message_bytes": {**_INT, "description": "what the floor pushes: Celery's message (AMQP: its body)"},
        "floor": {"type": "string"},
        "start_seconds": {
            "type": "array",
            "items": _NUM,
            "description": "a private node's starts (RabbitMQ)",
        },
        "stop_seconds": {"type": "array", "items": _NUM, "description": "a private node's stops (RabbitMQ)"},
    },
}
_BACKEND = {
    "type": "object",
    "description": "the result backend of every broker's tasks: always Redis",
    "required": ["kind", "url", "private", "server_version"],
    "properties": {
        "kind": {"const": "redis"},
        "url": _REDACTED,
        "private": {"type": "boolean"},
        "server_version": {"type": ["string", "null"]},
    },
}

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://celery-bench.invalid/report-v3.json",
    "title": "celery-bench report",
    "type": "object",
    "required": [
        "schema", "kind", "context", "duration_s", "results", "fidelity", "warnings", "errors", "reliability",
    ],
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "kind": {"const": "celery-bench-report"},
        "duration_s": _NUM,
        "context": {
            "type": "object",
            "required": [
                "timestamp", "celery", "kombu", "redis_py", "python", "platform", "machine", "cpu_count",
                "git_commit", "broker", "pools", "quick", "message_bytes", "config", "brokers",
                "result_backend",
            ],
            "properties": {
                "timestamp": {"type": "string"},
                "celery": {"type": "string"},
                "kombu": {"type": "string"},
                "redis_py": {"type": "string"},
                "python": {"type": "string"},
                "platform": {"type": "string"},
                "machine": {"type": "string"},
                "cpu_count": {"type": ["integer", "null"]},
                "git_commit": {"type": ["string", "null"]},
                "broker": {"type": "string", "not": {"pattern": ":[^:@/*]+@"}, "description": "redacted"},
                "broker_server": {
                    "type": ["string", "null"],
                    "description": "the broker server's version (INFO redis_version); null if unknown",
                },
                "pools": {"type": "object", "additionalProperties": {"type": "array", "items": _INT}},
                "quick": {"type": "boolean"},
                "message_bytes": _INT,
                "config": _CONFIG,
                "brokers": {"type": "array", "minItems": 1, "items": _BROKER},
                "result_backend": _BACKEND,
                "machine_control": {
                    "type": "object",
                    "description": "bench.machine: per control (cpu_us, ipc_us), [start, end] of the run",
                    "additionalProperties": {"type": "array", "items": _NUM},
                },
            },
        },
        "results": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "scenario", "title", "kind", "pool", "concurrency", "unit", "samples", "rounds",
                    "median", "min", "max", "cv_rounds", "round_values", "floor_ratio", "warning", "notes",
                    "config", "broker",
                ],
                "properties": {
                    "scenario": {"type": "string"},
                    "title": {"type": "string"},
                    "kind": {"enum": ["latency", "throughput"]},
                    "pool": {"type": ["string", "null"]},
                    "concurrency": {"type": ["integer", "null"]},
                    "broker": {"enum": list(KINDS), "description": "the broker kind the row measured"},
                    "unit": {"enum": ["s", "ms", "us", "ns", "tasks/s"]},
                    "samples": {"type": "integer", "minimum": 1},
                    "rounds": {"type": "integer", "minimum": 1},
                    "median": _NUM,
                    "min": _NUM,
                    "max": _NUM,
                    "mean": _NUM,
                    "cv_rounds": _NUM_OR_NULL,
                    "round_values": {"type": "array", "items": _NUM, "minItems": 1},
                    "floor_ratio": _NUM_OR_NULL,
                    "warning": {"type": ["string", "null"]},
                    "notes": {"type": "array", "items": {"type": "string"}},
                    "config": _CONFIG,
                    "precision": {"type": "array", "items": _PRECISION},
                },
                "if": {"properties": {"kind": {"const": "latency"}}},
                "then": {
                    "required": ["stdev", "iqr", "mad", "p50", "p90", "p99", "p999", "hdr"],
                    "properties": {
                        "unit": {"enum": ["s", "ms", "us", "ns"]},
                        "hdr": {"type": "string"},
                        "p999": {**_NUM_OR_NULL, "description": "null below 1,000 samples (it is the max)"},
                    },
                },
                "else": {"properties": {"unit": {"const": "tasks/s"}}},
            },
        },
        "fidelity": {
            "type": "object",
            "required": [
                "timing_overhead", "timing_overhead_interval", "timing_overhead_floor",
                "timing_overhead_floor_interval", "overhead_calls", "overhead_pairs", "overhead_confidence",
                "producer_capacity", "producer_mode", "slowest_pool", "slowest_drain", "capacity_ratio",
                "generator_lag_max_s",
            ],
            "properties": {
                "timing_overhead": _NUM,
                "timing_overhead_interval": _INTERVAL,
                "timing_overhead_floor": _NUM,
                "timing_overhead_floor_interval": _INTERVAL,
                "overhead_calls": _INT,
                "overhead_pairs": _INT,
                "overhead_confidence": _NUM,
                "producer_capacity": _NUM_OR_NULL,
                "producer_mode": {"type": ["string", "null"]},
                "slowest_pool": {"type": ["string", "null"]},
                "slowest_drain": _NUM_OR_NULL,
                "capacity_ratio": _NUM_OR_NULL,
                "generator_lag_max_s": _NUM_OR_NULL,
            },
        },
        "warnings": {"type": "array", "items": {"type": "string"}},
        "errors": {
            "description": "sections that failed after the benchmarks were measured (exit status 1)",
            "type": "array",
            "items": {"type": "string"},
        },
        "reliability": {
            "description": "null when the section was skipped or bench.faults is absent",
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": [*RELIABILITY_FIELDS, "config"],
                "properties": {
                    "pool": {"type": "string"},
                    "scenario": {"type": "string"},
                    "enqueued": _INT,
                    "publish_errors": _INT,
                    "executed_once": _INT,
                    "duplicated": _INT,
                    "lost": _INT,
                    "recovery_seconds": _NUM_OR_NULL,
                    "expected": {"type": "string"},
                    "verdict": {"enum": ["ok", "deviation", "n/a"]},
                    "note": {"type": "string"},
                    "broker": {"type": "string", "description": "broker kind (redis, rabbitmq; any)"},
                    "config": _CONFIG,
                },
            },
        },
        "breakdown": {
            "description": "optional (run --breakdown): enqueue cost by layer per producer path, "
            "bench.breakdown.Breakdown as data (bench.breakdown_format.to_json)",
            "type": "object",
            "required": ["message_bytes", "paths", "target_ratio", "reaching_target"],
        },
    },
}  # fmt: skip


# -- JSON ------------------------------------------------------------------------------------------
def _row(result: Result) -> dict[str, Any]:
    row: dict[str, Any] = {
        "scenario": result.scenario,
        "title": result.title,
        "pool": result.pool,
        "concurrency": result.concurrency,
        "broker": result.broker,
    }
    if result.latency is not None:
        s = dataclasses.asdict(result.latency)
        row["kind"] = "latency"
        row["round_values"] = list(s.pop("round_medians"))
    elif result.throughput is not None:
        s = dataclasses.asdict(result.throughput)
        row["kind"] = "throughput"
        row["round_values"] = list(s.pop("round_rates"))
    else:  # pragma: no cover - scenarios always fill one of them
        raise ValueError(f"result {result.scenario!r} has no figures")
    row.update(s)
    row["floor_ratio"] = result.floor_ratio
    row["notes"] = list(result.notes)
    row["config"] = result.config.on(result.pool, result.concurrency).to_json()  # the row's own cell
    if result.precision:
        row["precision"] = [dataclasses.asdict(p) for p in result.precision]
    return row


def record_dict(record: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    return dict(record)


def to_json(run: Run) -> dict[str, Any]:
    """The report as plain data (validates against ``JSON_SCHEMA``)."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": "celery-bench-report",
        "context": dict(run.context),
        "duration_s": run.duration_s,
        "results": [_row(r) for r in run.results],
        "fidelity": {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(run.fidelity).items()
        },
        "warnings": list(run.warnings),
        "errors": list(run.errors),
        "reliability": _reliability_rows(run),
    }


def _reliability_rows(run: Run) -> list[dict[str, Any]] | None:
    return None if run.reliability is None else [_reliability_row(run, r) for r in run.reliability]


def _reliability_row(run: Run, record: Any) -> dict[str, Any]:
    """A reliability record with its configuration: the run's, on the record's pool (the section runs
    only for the seed app without ``--set``; each scenario's own delivery settings are in its name)."""
    row = record_dict(record)
    base = run.context.get("config") or Config().to_json()
    row["config"] = {**base, "pool": row.get("pool"), "concurrency": None}
    return row


def migrate_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """A version-1 report as version 2: every row measured the seed app with no settings (then
    ``migrate_v2`` for version 3)."""
    if doc.get("schema") != 1:
        raise ValueError(f"not a version-1 report (schema {doc.get('schema')!r})")
    seed = Config(app_settings=tuple(sorted(JSON_ONLY.items())))

    def config(pool: str | None, concurrency: int | None) -> dict[str, Any]:
        return seed.on(pool, concurrency).to_json()

    out = dict(doc, schema=2, context=dict(doc["context"], config=config(None, None)))
    out["results"] = [dict(r, config=config(r["pool"], r["concurrency"])) for r in doc["results"]]
    if doc.get("reliability") is not None:
        out["reliability"] = [dict(r, config=config(r["pool"], None)) for r in doc["reliability"]]
    return out


def migrate_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """A version-2 report as version 3: every row measured the one Redis of ``context.broker``, which was
    also the result backend."""
    if doc.get("schema") != 2:
        raise ValueError(f"not a version-2 report (schema {doc.get('schema')!r})")
    context = doc.get("context") or {}
    redis = {
        "kind": "redis",
        "url": context.get("broker", ""),
        "private": bool(context.get("broker_private", True)),
        "server_version": context.get("broker_server"),
    }
    broker = {**redis, "message_bytes": context.get("message_bytes", 0), "floor": "redis-py LPUSH (floor)"}
    broker |= {"start_seconds": [], "stop_seconds": []}
    out = dict(doc, schema=3, context=dict(context, brokers=[broker], result_backend=redis))
    out["results"] = [dict(r, broker="redis") for r in doc.get("results") or []]
    return out


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """A report of any earlier version as the current one (``migrate_v1``, then ``migrate_v2``)."""
    if doc.get("schema") == 1:
        doc = migrate_v1(doc)
    if doc.get("schema") == 2:
        doc = migrate_v2(doc)
    return doc


def write_json(run: Run, path: Path, *, extra: Mapping[str, Any] | None = None) -> Path:
    """The report as JSON; ``extra`` adds optional top-level sections (e.g. ``breakdown``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**to_json(run), **(extra or {})}, indent=2, allow_nan=False) + "\n")
    return path


# -- table -----------------------------------------------------------------------------------------
def number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "", 1).replace("%", "").lstrip("+-").isdigit()


def grid(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain text table: numbers right-aligned, text left-aligned, one line per row."""
    rows = [[" ".join(cell.split()) for cell in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(_numeric(r[i]) or r[i] == "-" for r in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


TABLE_HEADERS = (
    "scenario", "pool", "broker", "n", "median", "IQR", "p90", "p99", "p99.9", "max", "unit", "x floor",
    "CV rounds", "±95% (rounds)",
)  # fmt: skip

NOT_REACHED = "!"
"""Marks a precision the adaptive rounds did not reach within the step's budget (table and page)."""


def precision_text(result: Result) -> str:
    """``±1.2% (8)``, or ``p50 ±1.2% p99 ±6.0%! (8)``: each headline's 95% half-width and the rounds."""
    if not result.precision:
        return "-"
    single = len(result.precision) == 1
    parts = [
        ("" if single else f"{p.statistic} ") + f"±{p.half_width:.1%}" + ("" if p.reached else NOT_REACHED)
        for p in result.precision
    ]
    return f"{' '.join(parts)} ({max(p.rounds for p in result.precision)})"


def table(run: Run) -> str:
    """One table: every figure, one row per scenario, pool and broker."""
    rows = []
    for r in run.results:
        pool = "-" if r.pool is None else f"{r.pool} x{r.concurrency}"
        if r.latency is not None:
            s = r.latency
            rows.append([
                r.scenario, pool, r.broker, str(s.samples), number(s.median), number(s.iqr), number(s.p90),
                number(s.p99), number(s.p999), number(s.max), s.unit,
                "-" if r.floor_ratio is None else f"{r.floor_ratio:.2f}", percent(s.cv_rounds),
                precision_text(r),
            ])  # fmt: skip
        elif r.throughput is not None:
            t = r.throughput
            rows.append([
                r.scenario, pool, r.broker, str(t.samples), number(t.median), "-", "-", "-", "-",
                number(t.max), t.unit, "-", percent(t.cv_rounds), precision_text(r),
            ])  # fmt: skip
    return grid(TABLE_HEADERS, rows)


def _interval(median: float, interval: Sequence[float]) -> str:
    return f"{median:+.2%} [{interval[0]:+.2%} .. {interval[1]:+.2%}]"


def fidelity_lines(run: Run) -> list[str]:
    f = run.fidelity
    call = _interval(f.timing_overhead, f.timing_overhead_interval)
    floor = _interval(f.timing_overhead_floor, f.timing_overhead_floor_interval)
    lines = [
        f"per-call timing vs a bare loop, median of {f.overhead_pairs} block pairs "
        f"[{f.overhead_confidence:.0%} interval]: apply_async {call}, floor {floor}; bounds the "
        "per-call clock reads only, not the result collector thread, the polling loops or the worker",
    ]
    if f.capacity_ratio is not None:
        lines.append(
            f"open-loop generator capacity {number(f.producer_capacity)} tasks/s ({f.producer_mode}, as the "
            f"generator sends) = {f.capacity_ratio:.1f}x the slowest drain ({f.slowest_pool}, "
            f"{number(f.slowest_drain)} tasks/s)"
        )
    if f.generator_lag_max_s is not None:
        lines.append(f"open-loop generator: at most {f.generator_lag_max_s * 1e3:.1f} ms behind schedule")
    return lines


def reliability_table(records: Sequence[Any]) -> str:
    """The reliability records as a table (generic: any dataclass or mapping with the known fields).

    Records of more than one broker kind (their ``broker`` field) go side by side: one row per pool and
    scenario, one column per broker (:func:`reliability_pairs`)."""
    dicts = [record_dict(r) for r in records]
    kinds = record_brokers(dicts)
    if len(kinds) > 1:
        lines = [reliability_pairs(dicts, kinds)]
    else:
        columns = [f for f in RELIABILITY_FIELDS if f not in PROSE_FIELDS]
        headers = [f for f in columns if any(f in d for d in dicts)] or columns
        extra = [k for d in dicts for k in d if k not in headers and k not in PROSE_FIELDS and k != "broker"]
        headers += list(dict.fromkeys(extra))
        lines = [grid(headers, ([_cell(d.get(h)) for h in headers] for d in dicts))]
    # The sentences go under the grid (a column of them would be hundreds of characters wide): every
    # row that is not plainly 'ok' says why, with what Celery's docs lead one to expect.
    for d in dicts:
        if d.get("verdict") != "ok" and (d.get("note") or d.get("expected")):
            where = " / ".join(
                str(d.get(k, "?")) for k in (("broker",) if len(kinds) > 1 else ()) + ("pool", "scenario")
            )
            expected = f" (expected: {d['expected']})" if d.get("expected") else ""
            lines.append(f"  {where}: {d.get('verdict', '')}: {d.get('note') or ''}{expected}")
    return "\n".join(lines)


def broker_lines(run: Run) -> list[str]:
    """Per broker: its server, URL and (a private node) start and stop times; the result backend; then
    the headline, each enqueue call's median as a multiple of its own broker's floor (same run)."""
    c = run.context
    lines = [f"broker: {broker_text(b)}" for b in c.get("brokers") or []]
    backend = c.get("result_backend")
    if backend:
        version = backend.get("server_version") or "?"
        whose = "private" if backend.get("private") else "given with --broker-url"
        lines.append(f"result backend: Redis {version} {backend.get('url')} ({whose}), for every broker")
    if c.get("machine_control"):
        lines.append(machine.text(c["machine_control"]))
    return lines + floor_lines(run.results)


def floor_lines(results: Sequence[Result]) -> list[str]:
    """``enqueue on rabbitmq (floor 47 us): apply_async 951 us = x20.2 floor, delay ...`` per broker."""
    lines = []
    for kind in dict.fromkeys(r.broker for r in results):
        rows = {r.scenario: r for r in results if r.broker == kind and r.scenario.startswith("enqueue.")}
        floor = rows.get("enqueue.floor")
        if floor is None or floor.latency is None:
            continue
        parts = [
            f"{name[len('enqueue.') :]} {number(r.latency.median)} {r.latency.unit} = x{r.floor_ratio:.1f}"
            for name, r in rows.items()
            if name != "enqueue.floor" and r.latency is not None and r.floor_ratio is not None
        ]
        base = f"floor {number(floor.latency.median)} {floor.latency.unit}"
        lines.append(f"enqueue on {kind} vs its own floor ({base}): {', '.join(parts)}")
    return lines


def broker_text(broker: Mapping[str, Any]) -> str:
    """``rabbitmq 3.10.8 amqp://u:***@host:port// (private node: started in 13.2 s, stopped in 1.2 s)``."""
    name = f"{broker.get('kind')} {broker.get('server_version') or '?'} {broker.get('url')}"
    if not broker.get("private"):
        return f"{name} (given with --broker-url)"
    times = []
    if broker.get("start_seconds"):
        times.append("started in " + ", ".join(f"{t:.1f}" for t in broker["start_seconds"]) + " s")
    if broker.get("stop_seconds"):
        times.append("stopped in " + ", ".join(f"{t:.1f}" for t in broker["stop_seconds"]) + " s")
    return f"{name} (private{': ' + ', '.join(times) if times else ''})"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def record_brokers(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    """The broker kinds of the records, in first-seen order (none if they carry no ``broker``)."""
    return list(dict.fromkeys(str(d["broker"]) for d in dicts if d.get("broker")))


def paired_rows(
    dicts: Sequence[Mapping[str, Any]], kinds: Sequence[str]
) -> list[tuple[str, str, dict[str, Mapping[str, Any]]]]:
    """``(pool, scenario, {broker: record})`` per pool and scenario, in first-seen order (a broker that
    did not run the scenario is missing from the mapping)."""
    rows: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for d in dicts:
        rows.setdefault((str(d.get("pool")), str(d.get("scenario"))), {})[str(d.get("broker", kinds[0]))] = d
    return [(pool, scenario, by) for (pool, scenario), by in rows.items()]


def pair_cell(d: Mapping[str, Any] | None) -> str:
    """One broker's side of a paired row: the verdict, then the counts and recovery that matter."""
    if d is None:
        return "-"
    if d.get("verdict") == "n/a":
        return "n/a"
    counts = f"lost {d.get('lost', 0)}, dup {d.get('duplicated', 0)} of {d.get('enqueued', 0)}"
    recovery = d.get("recovery_seconds")
    return f"{d.get('verdict')} ({counts}" + (f", {recovery:.1f}s" if recovery is not None else "") + ")"


def reliability_pairs(dicts: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> str:
    """The side-by-side grid: pool, scenario, then one column per broker kind."""
    rows = (
        [pool, scenario, *(pair_cell(by.get(k)) for k in kinds)]
        for pool, scenario, by in paired_rows(dicts, kinds)
    )
    return grid(["pool", "scenario", *kinds], rows)


def text(run: Run) -> str:
    """The whole terminal report: table, brokers, fidelity, warnings, reliability."""
    parts = [table(run), "", *broker_lines(run), config_line(run.context.get("config")), *fidelity_lines(run)]
    if any(not p.reached for r in run.results for p in r.precision):
        parts.append(
            f"{NOT_REACHED} : the rounds did not pin this figure within its target before the step's "
            "budget ran out (see the warnings)"
        )
    for note in _notes(run.results):
        parts.append(f"note: {note}")
    for warning in run.warnings:
        parts.append(f"WARNING: {warning}")
    for error in run.errors:
        parts.append(f"ERROR: {error}")
    if run.reliability is not None:
        parts += [
            "",
            "RELIABILITY",
            reliability_table(run.reliability) if run.reliability else "(no records)",
        ]
    return "\n".join(parts)


def config_line(config: Mapping[str, Any] | None) -> str:
    """The configuration under test in one line: app, ``--set`` settings."""
    if not config:
        return "configuration: app tasks (seed), no --set"
    settings = config.get("settings") or {}
    sets = " ".join(f"{k}={json.dumps(v)}" for k, v in settings.items()) or "no --set"
    return f"configuration: app {config.get('app')}; {sets}"


def _notes(results: Iterable[Result]) -> list[str]:
    out = []
    for r in results:
        for note in r.notes:
            out.append(f"{r.where}: {note}")
    return out


# -- plots -----------------------------------------------------------------------------------------
FIGURE_SECTIONS = ("enqueue", "producer", "drain", "e2e")
"""The report sections that have a plot of their own (``section_png``); the HTML page puts each next to
its table."""


def _log_axis(ax: Any) -> None:
    """A log x axis labelled at 1-2-5 steps (denser within a decade, sparser beyond 3), minor ticks bare."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = (1.0, 2.0, 3.0, 5.0, 7.0) if decades <= 1.3 else (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(float(k) for k in range(2, 10))))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _cdf_axis(ax: Any, series: Mapping[str, Sequence[float]], *, scale: float, unit: str, title: str) -> None:
    for label, values in series.items():
        if not values:
            continue
        points = stats.cdf(values)
        ax.plot([v * scale for v, _ in points], [p for _, p in points], label=label, drawstyle="steps-post")
    ax.set_xscale("log")
    _log_axis(ax)
    ax.set_xlabel(unit)
    ax.set_ylabel("fraction of tasks")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.12)
    if ax.get_lines():
        ax.legend(fontsize="small")


def _samples(run: Run, prefix: str, sep: str) -> dict[str, tuple[float, ...]]:
    return {k.split(sep, 1)[1]: v for k, v in run.samples.items() if k.startswith(prefix)}


def _enqueue_axis(ax: Any, run: Run) -> None:
    _cdf_axis(
        ax, _samples(run, "enqueue.", "."), scale=1e6, unit="µs", title="enqueue latency per call (CDF)"
    )


def _e2e_axis(ax: Any, run: Run, which: str) -> None:
    title = {"start": "enqueue -> task start", "result": "enqueue -> result available"}[which]
    _cdf_axis(
        ax, _samples(run, f"e2e.{which}:", ":"), scale=1e3, unit="ms", title=f"open loop: {title} (CDF)"
    )


def _bar_label(r: Result) -> str:
    label = r.scenario.replace(".", " ") if r.pool is None else _pool_label(r)
    return label if r.broker == "redis" else f"{label} on {r.broker}"


def _bars_axis(ax: Any, bars: Sequence[Result], title: str) -> None:
    labels = [_bar_label(r) for r in bars]
    medians = [r.throughput.median for r in bars if r.throughput]
    lows = [r.throughput.median - r.throughput.min for r in bars if r.throughput]
    highs = [r.throughput.max - r.throughput.median for r in bars if r.throughput]
    colors = [_BAR_COLORS.get(r.scenario, "tab:orange") if r.pool is not None else "tab:blue" for r in bars]
    ax.barh(labels, medians, xerr=[lows, highs], color=colors, capsize=3)
    ax.set_xlabel("tasks/s (median of rounds, whiskers min..max)")
    ax.set_title(title)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)


_BAR_COLORS = {"drain": "tab:orange", "drain.io": "tab:green"}
"""Bar colours of a pool's rows: the no-op drain, the I/O drain."""


def _pool_label(r: Result) -> str:
    """``gevent x100``; ``gevent x100 I/O`` for the I/O drain."""
    return f"{r.pool} x{r.concurrency}" + (" I/O" if r.scenario == "drain.io" else "")


def _producer_bars(run: Run) -> list[Result]:
    return [r for r in run.results if r.throughput is not None and r.pool is None]


def _drain_bars(run: Run) -> list[Result]:
    return [r for r in run.results if r.throughput is not None and r.pool is not None]


def _save(fig: Any, target: Path | io.BytesIO, dpi: int) -> None:
    fig.tight_layout()
    fig.savefig(target, dpi=dpi, format="png")


def section_png(run: Run, section: str) -> bytes | None:
    """The PNG that goes with one section of the report (``FIGURE_SECTIONS``), or ``None`` without data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if section == "e2e":
        if not _samples(run, "e2e.start:", ":"):
            return None
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        _e2e_axis(axes[0], run, "start")
        _e2e_axis(axes[1], run, "result")
    else:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        if section == "enqueue" and _samples(run, "enqueue.", "."):
            _enqueue_axis(ax, run)
        elif section == "producer" and _producer_bars(run):
            _bars_axis(ax, _producer_bars(run), "producer: enqueue throughput")
        elif section == "drain" and _drain_bars(run):
            _bars_axis(ax, _drain_bars(run), "worker drain rate per pool: no-op (orange), I/O-bound (green)")
        else:
            plt.close(fig)
            return None
    try:
        buffer = io.BytesIO()
        _save(fig, buffer, dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(fig)


def plot(run: Run, path: Path) -> Path:
    """Latency CDFs (enqueue, and end-to-end per pool) and throughput bars, to one PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    try:
        _enqueue_axis(axes[0][0], run)
        _e2e_axis(axes[0][1], run, "start")
        _e2e_axis(axes[1][0], run, "result")
        _bars_axis(
            axes[1][1],
            [r for r in run.results if r.throughput is not None],
            "throughput: producer (blue), drain per pool: no-op (orange), I/O-bound (green)",
        )
        ctx = run.context
        fig.suptitle(
            f"celery {ctx.get('celery')} / kombu {ctx.get('kombu')} / redis-py {ctx.get('redis_py')} / "
            f"Python {ctx.get('python')} on {ctx.get('machine')} x{ctx.get('cpu_count')}, "
            f"{ctx.get('timestamp')}"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(fig, path, dpi=90)
    finally:
        plt.close(fig)
    return path
