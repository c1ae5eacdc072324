"""Presentation of a :class:`bench.breakdown.Breakdown`: text tables, the verdict, JSON and an HTML section.

Nothing here measures or computes a statistic; it formats the records ``bench.breakdown`` made.
"""

from __future__ import annotations

import dataclasses
from html import escape
from typing import Any

from bench import breakdown as bd
from bench import html, report

SHORT = {
    bd.CALL_SITE: "call site",
    bd.CELERY_APPLY: "Celery apply_async",
    bd.CELERY_BUILD: "Celery message building",
    bd.CELERY_SEND: "Celery send_task_message",
    bd.RESULT_SUBSCRIBE: "result backend subscribe",
    bd.KOMBU_PUBLISH: "kombu Producer.publish",
    bd.CLIENT_CREATION: "redis-py client creation",
    bd.REDIS_COMMAND: "redis-py command",
    bd.ROUND_TRIP: "broker round trip",
}
"""Layer names short enough for a table column."""

PATH_HEADERS = (
    "path", "median us", "IQR us", "samples", "x floor", "x floor per round", "CPU x floor",
    "broker commands / enqueue", "round trips", "timers add (CPU)",
)  # fmt: skip


def _us(seconds: float) -> str:
    return report.number(seconds * 1e6)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _commands(path: bd.PathBreakdown) -> str:
    return ", ".join(f"{name.upper()} {report.number(n)}" for name, n in path.commands) or "-"


def _range(values: tuple[float, ...]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def path_rows(b: bd.Breakdown) -> list[list[str]]:
    return [
        [
            p.path + (" (patched)" if p.patched else ""),
            report.number(p.latency.median),
            report.number(p.latency.iqr),
            f"{p.latency.samples} ({p.latency.rounds} rounds)",
            _ratio(p.floor_ratio),
            _range(p.round_ratios),
            _ratio(p.cpu_ratio),
            _commands(p),
            report.number(p.round_trips),
            "-" if p.timer_overhead is None else f"{p.timer_overhead:+.0%}",
        ]
        for p in b.paths
    ]


def layer_rows(b: bd.Breakdown, *, cpu: bool) -> tuple[list[str], list[list[str]]]:
    """Layers as rows, paths as columns: CPU (or wall) us per call and the share of the path's total."""
    headers = ["layer", *(p.path for p in b.paths)]
    rows = []
    for name in bd.LAYERS:
        cells = []
        for p in b.paths:
            layer = p.layer(name)
            if layer is None:
                cells.append("-")
                continue
            seconds, share = (layer.cpu_seconds, layer.cpu_share) if cpu else (layer.seconds, layer.share)
            cells.append(f"{_us(seconds)} ({share:.0%})")
        if any(c != "-" for c in cells):
            rows.append([SHORT[name], *cells])
    return headers, rows


def verdict(b: bd.Breakdown) -> list[str]:
    """The answer to the target: which paths reach it, and if none, what stands in the way."""
    lines = []
    reached = b.reaching(patched=False)
    target = f"<= {b.target_ratio:g}x the floor"
    if reached:
        names = ", ".join(f"{p.path} ({_ratio(p.floor_ratio)}x)" for p in reached)
        lines.append(f"target {target} reached without patching by: {names}")
    cheapest = b.cheapest(patched=False)
    if cheapest is not None and not reached:
        lines.append(
            f"target {target} not reached by any setting; "
            f"cheapest: {cheapest.path} ({_ratio(cheapest.floor_ratio)}x)"
        )
    if cheapest is not None:
        client = cheapest.layer(bd.CLIENT_CREATION)
        if client is not None:
            lines.append(
                f"{cheapest.path}: kombu builds a redis-py client per publish: "
                f"{_us(client.cpu_seconds)} us CPU "
                f"({client.cpu_share:.0%} of its CPU), {_us(client.seconds)} us wall ({client.share:.0%})"
            )
    for p in b.reaching(patched=True) or filter(None, [b.cheapest(patched=True)]):
        lines.append(
            f"with kombu reusing its client (patched, an upstream change): {p.path} {_ratio(p.floor_ratio)}x"
        )
    if b.load:
        lines.append(f"1-minute load average {' -> '.join(f'{x:.1f}' for x in b.load)}")
    return lines


def text(b: bd.Breakdown) -> str:
    """The breakdown as plain text: paths vs the floor, the layers (CPU, then wall), the verdict."""
    cpu_headers, cpu_rows = layer_rows(b, cpu=True)
    wall_headers, wall_rows = layer_rows(b, cpu=False)
    parts = [
        f"Where the time goes: one enqueue of a {b.message_bytes} B message, by producer path "
        f"(latency: {b.sizes.rounds} interleaved rounds x {b.sizes.per_round}; layers: "
        f"{b.sizes.profile_rounds} x {b.sizes.profile_per_round} calls with timers)",
        report.grid(PATH_HEADERS, path_rows(b)),
        "",
        "Layers, producer CPU us per call (share of the path's CPU):",
        report.grid(cpu_headers, cpu_rows),
        "",
        "Layers, wall us per call (share of the path's wall time; round trips include scheduling waits):",
        report.grid(wall_headers, wall_rows),
        "",
        *(f"- {line}" for line in verdict(b)),
        *(f"WARNING: {w}" for w in b.warnings),
    ]
    return "\n".join(parts)


def to_json(b: bd.Breakdown) -> dict[str, Any]:
    """Plain data for the JSON report (the HDR histograms left out: the main rows carry those)."""
    doc = dataclasses.asdict(b)
    for path in doc["paths"]:
        path["latency"].pop("hdr", None)
        path["commands"] = dict(path["commands"])
    doc["reaching_target"] = [p.path for p in b.reaching(patched=False)]
    doc["verdict"] = verdict(b)
    return doc


def _cell(text: str, value: float | None) -> html.Cell:
    """A cell that sorts by ``value`` when it has one."""
    return html.Cell(text, value, numeric=value is not None)


def html_section(b: bd.Breakdown) -> str:
    """A ``<section id="breakdown">`` for the HTML page."""
    numbers = [
        (
            p.latency.median,
            p.latency.iqr,
            p.latency.samples,
            p.floor_ratio,
            None,
            p.cpu_ratio,
            None,
            p.round_trips,
            p.timer_overhead,
        )
        for p in b.paths
    ]
    rows = [
        html.Row([html.Cell(r[0]), *(_cell(text, value) for text, value in zip(r[1:], n, strict=True))])
        for r, n in zip(path_rows(b), numbers, strict=True)
    ]
    cpu_headers, cpu_rows = layer_rows(b, cpu=True)
    wall_headers, wall_rows = layer_rows(b, cpu=False)
    return (
        '<section id="breakdown"><h2>Where the time goes: enqueue cost by layer</h2>'
        + html.table("breakdown-paths", PATH_HEADERS, rows)
        + "<h3>Producer CPU per layer (us per call, share)</h3>"
        + html.table("breakdown-cpu", cpu_headers, [html.Row([html.Cell(c) for c in r]) for r in cpu_rows])
        + "<h3>Wall time per layer (us per call, share)</h3>"
        + html.table("breakdown-wall", wall_headers, [html.Row([html.Cell(c) for c in r]) for r in wall_rows])
        + "<ul>"
        + "".join(f"<li>{escape(line)}</li>" for line in verdict(b))
        + "</ul></section>"
    )
