"""The report as one self-contained HTML page: a section per measurement, each a sortable table with
its plot beside it, the reliability table with coloured verdicts, and the context as a definition list.

Formats only (numbers come from ``bench.stats`` through the :class:`bench.results.Run`; the plots are
``bench.report.section_png``). The page opens offline: its images are embedded as base64 ``data:`` URLs
and its style and script are inline, so it references nothing outside itself. Sorting: click a column
header, or open the page with ``#sort=TABLE_ID:COLUMN:asc|desc`` (columns counted from 0).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.results import Result, Run

UNIT_LABELS = {"us": "µs", "ms": "ms", "s": "s", "ns": "ns", "tasks/s": "tasks/s"}
"""How a unit of the JSON report is written in a column header."""


@dataclass(frozen=True)
class Section:
    """A group of results on the page: the scenarios whose name starts with ``key``."""

    key: str
    title: str
    about: str


SECTIONS = (
    Section(
        "enqueue",
        "Enqueue latency",
        "Time of one call in the producer, per call. The floor is a raw redis-py LPUSH of a message of the "
        "same size, measured in the same rounds: x floor is each call's median over the floor's.",
    ),
    Section(
        "producer",
        "Producer throughput",
        "Tasks enqueued per second by apply_async(ignore_result=True), from threads and from processes.",
    ),
    Section(
        "drain",
        "Worker throughput per pool",
        "A pre-filled queue drained by one worker: tasks completed per second, of no-op tasks (drain) and "
        "of I/O-bound tasks that each wait 20 ms (drain.io: one slot of a pool drains 50/s at most; green "
        "threads wait on many at once).",
    ),
    Section(
        "e2e",
        "End-to-end latency per pool (open loop)",
        "Tasks sent at a fixed arrival rate; latency counts from the intended send time, so a slow "
        "worker cannot hide its own latency.",
    ),
)
"""The sections in page order; results of any other scenario go to a last section of their own."""

OTHER = Section("other", "Other figures", "Scenarios this page has no section for.")


def section_of(result: Result) -> str:
    """The key of the section a result belongs to (its scenario's first dotted part)."""
    key = result.scenario.split(".", 1)[0]
    return key if any(s.key == key for s in SECTIONS) else OTHER.key


# -- cells -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown, a CSS class; a numeric cell sorts by ``value`` (``None``: last)."""

    text: str
    value: float | None = None
    css: str = ""
    numeric: bool = False


def _number(value: float | None, *, digits: int = 3) -> Cell:
    return Cell(report.number(value, digits), value, numeric=True)


def _percent(value: float | None, *, css: str = "") -> Cell:
    return Cell(report.percent(value), value, css=css, numeric=True)


def _td(cell: Cell) -> str:
    classes = " ".join(c for c in ("num" if cell.numeric else "", cell.css) if c)
    attrs = f' class="{escape(classes)}"' if classes else ""
    if cell.numeric:
        attrs += f' data-value="{"" if cell.value is None else repr(float(cell.value))}"'
    return f"<td{attrs}>{escape(cell.text)}</td>"


def _empty(cell: Cell) -> bool:
    return cell.numeric and cell.value is None


@dataclass(frozen=True)
class Row:
    cells: Sequence[Cell]
    notes: Sequence[str] = ()
    css: str = ""


def table(table_id: str, headers: Sequence[str], rows: Sequence[Row]) -> str:
    """A sortable table; each row and its notes form one ``<tbody>``, so sorting keeps them together.

    A column whose cells are all empty numbers (e.g. no ratio to the floor in this section) is left out.
    """
    keep = [i for i in range(len(headers)) if not rows or any(not _empty(r.cells[i]) for r in rows)]
    headers = [headers[i] for i in keep]
    rows = [Row([r.cells[i] for i in keep], r.notes, r.css) for r in rows]
    head = "".join(
        f'<th scope="col" tabindex="0" aria-sort="none" data-col="{i}">{escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    bodies = []
    for row in rows:
        tr = f'<tr class="{escape(row.css)}">' if row.css else "<tr>"
        lines = [tr + "".join(_td(c) for c in row.cells) + "</tr>"]
        if row.notes:
            items = "".join(f"<li>{escape(n)}</li>" for n in row.notes)
            # The sentences wrap at the table's width instead of widening it (the inner div has no width).
            lines.append(
                f'<tr class="notes"><td colspan="{len(headers)}"><div><ul>{items}</ul></div></td></tr>'
            )
        bodies.append(f"<tbody>{''.join(lines)}</tbody>")
    return (
        f'<table class="sortable" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>'
        + "".join(bodies)
        + "</table>"
    )


# -- the figures' tables -----------------------------------------------------------------------------
def _what(result: Result, *, with_pool: bool, with_broker: bool = False) -> list[Cell]:
    cells = [Cell(result.title, css="what")]
    if with_broker:
        cells.append(Cell(result.broker))
    if with_pool:
        cells.append(Cell("-" if result.pool is None else result.pool))
        cells.append(_number(result.concurrency))
    return cells


def _what_headers(results: Sequence[Result]) -> tuple[list[str], dict[str, bool]]:
    """The first headers of a figures table and how ``_what`` fills them: a broker column when the
    table has more than one broker, pool columns when it has a pool's figures."""
    shape = {
        "with_pool": any(r.pool is not None for r in results),
        "with_broker": len({r.broker for r in results}) > 1,
    }
    headers = ["what", *(("broker",) if shape["with_broker"] else ())]
    return headers + (["pool", "concurrency"] if shape["with_pool"] else []), shape


def _row_notes(result: Result) -> list[str]:
    summary = result.latency or result.throughput
    notes = list(result.notes)
    if summary is not None and summary.warning:
        notes.append(summary.warning)
    return notes


PRECISION_HEADER = "±95% of the median over rounds (rounds)"
"""Header of the column that says how precisely the adaptive rounds pinned a figure ("!" not reached)."""


def _precision(result: Result) -> Cell:
    """The precision cell: sorts by the widest half-width; marked ``wide`` when a target was not reached."""
    widest = max((p.half_width for p in result.precision), default=None)
    missed = any(not p.reached for p in result.precision)
    return Cell(report.precision_text(result), widest, css="wide" if missed else "", numeric=True)


def _latency_table(table_id: str, results: Sequence[Result], unit: str) -> str:
    u = UNIT_LABELS.get(unit, unit)
    headers, shape = _what_headers(results)
    headers.append("n")
    headers += [f"median ({u})", f"IQR ({u})", f"p90 ({u})", f"p99 ({u})", f"p99.9 ({u})", f"max ({u})"]
    headers += ["x floor", "CV of rounds", PRECISION_HEADER]
    rows = []
    for r in results:
        s = r.latency
        assert s is not None
        cells = [*_what(r, **shape), _number(s.samples)]
        cells += [_number(v) for v in (s.median, s.iqr, s.p90, s.p99, s.p999, s.max)]
        ratio = r.floor_ratio
        cells.append(Cell("-" if ratio is None else f"{ratio:.2f}", ratio, numeric=True))
        cells.append(_percent(s.cv_rounds, css="wide" if s.warning else ""))
        cells.append(_precision(r))
        rows.append(Row(cells, _row_notes(r), css="warn" if s.warning else ""))
    return table(table_id, headers, rows)


def _throughput_table(table_id: str, results: Sequence[Result]) -> str:
    headers, shape = _what_headers(results)
    headers += ["tasks", "rounds"]
    headers += ["median (tasks/s)", "min (tasks/s)", "max (tasks/s)", "CV of rounds", PRECISION_HEADER]
    rows = []
    for r in results:
        t = r.throughput
        assert t is not None
        cells = [*_what(r, **shape), _number(t.samples), _number(t.rounds)]
        cells += [_number(t.median), _number(t.min), _number(t.max)]
        cells.append(_percent(t.cv_rounds, css="wide" if t.warning else ""))
        cells.append(_precision(r))
        rows.append(Row(cells, _row_notes(r), css="warn" if t.warning else ""))
    return table(table_id, headers, rows)


def _tables(key: str, results: Sequence[Result]) -> list[str]:
    """One table per kind and unit (a column header carries one unit)."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        summary = r.latency or r.throughput
        if summary is not None:
            groups.setdefault(("latency" if r.latency else "throughput", summary.unit), []).append(r)
    out = []
    for (kind, unit), rows in groups.items():
        table_id = f"{key}-{kind}-{unit.replace('/', '-per-')}"
        if kind == "latency":
            out.append(_latency_table(table_id, rows, unit))
        else:
            out.append(_throughput_table(table_id, rows))
    return out


def _figure(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _section(section: Section, results: Sequence[Result], png: bytes | None) -> str:
    tables = "".join(_tables(section.key, results))
    return (
        f'<section id="{section.key}"><h2>{escape(section.title)}</h2>'
        f'<p class="about">{escape(section.about)}</p>'
        f'<div class="pair {section.key}"><div class="tables">{tables}</div>'
        f"{_figure(png, section.title)}</div>"
        "</section>"
    )


# -- reliability -------------------------------------------------------------------------------------
RELIABILITY_HEADERS = {
    "pool": "pool",
    "scenario": "scenario",
    "enqueued": "enqueued",
    "publish_errors": "publish errors",
    "executed_once": "executed once",
    "duplicated": "duplicated",
    "lost": "lost",
    "recovery_seconds": "recovery (s)",
    "verdict": "verdict",
}
"""Column headers of the reliability table, by record field (the sentences go under each row)."""


def _verdict_slug(verdict: Any) -> str:
    """``ok``, ``deviation``, ``na``: the CSS class suffix of a verdict."""
    return str(verdict).replace("/", "")


def _reliability_cell(field: str, value: Any) -> Cell:
    if field == "verdict":
        return Cell(str(value), css=f"verdict verdict-{_verdict_slug(value)}")
    if value is None:
        return Cell("-", None, numeric=True)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Cell(str(value))
    if isinstance(value, float):
        return Cell(f"{value:.2f}", value, numeric=True)
    return _number(value)


def reliability_section(records: Sequence[Any] | None) -> str:
    if records is None:
        return ""
    dicts = [report.record_dict(r) for r in records]
    kinds = report.record_brokers(dicts)
    if len(kinds) > 1:
        body = _paired_reliability(dicts, kinds)
    else:
        body = _reliability_rows(dicts)
    counts = _verdict_counts(dicts)
    return (
        '<section id="reliability"><h2>Reliability: what survives a crash, per broker and pool</h2>'
        '<p class="about">Every task counted in a ledger of its own while one fault at a time is injected; '
        "the verdict compares the outcome with what Celery's docs promise.</p>"
        f'<p class="verdicts">{counts}</p><div class="tables">{body}</div></section>'
    )


def _reliability_rows(dicts: Sequence[Mapping[str, Any]]) -> str:
    """One broker: a row per record, every count a column."""
    fields = [f for f in RELIABILITY_HEADERS if any(f in d for d in dicts)]
    fields += list(
        dict.fromkeys(
            k for d in dicts for k in d if k not in fields and k not in report.PROSE_FIELDS and k != "broker"
        )
    )
    rows = []
    for d in dicts:
        notes = [n for n in (d.get("note"), f"expected: {d['expected']}" if d.get("expected") else "") if n]
        cells = [_reliability_cell(f, d.get(f)) for f in fields]
        rows.append(Row(cells, notes, css=f"verdict-row-{_verdict_slug(d.get('verdict', ''))}"))
    if not rows:
        return "<p>(no records)</p>"
    return table("reliability-table", [RELIABILITY_HEADERS.get(f, f) for f in fields], rows)


def _paired_reliability(dicts: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> str:
    """Several brokers side by side: a row per pool and scenario, a verdict-coloured column per broker;
    each broker's note and expectation under the row."""
    rows = []
    for pool, scenario, by in report.paired_rows(dicts, kinds):
        cells = [Cell(pool), Cell(scenario)]
        notes = []
        for kind in kinds:
            d = by.get(kind)
            verdict = _verdict_slug(d.get("verdict", "")) if d else ""
            cells.append(Cell(report.pair_cell(d), css=f"verdict verdict-{verdict}" if d else ""))
            if d and (d.get("note") or d.get("expected")):
                expected = f" (expected: {d['expected']})" if d.get("expected") else ""
                notes.append(f"{kind}: {d.get('note') or ''}{expected}")
        worst = "deviation" if any(d.get("verdict") == "deviation" for d in by.values()) else "ok"
        rows.append(Row(cells, notes, css=f"verdict-row-{worst}"))
    return table("reliability-table", ["pool", "scenario", *kinds], rows)


def _verdict_counts(dicts: Iterable[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for d in dicts:
        verdict = str(d.get("verdict", ""))
        counts[verdict] = counts.get(verdict, 0) + 1
    return " ".join(
        f'<span class="verdict verdict-{escape(_verdict_slug(v))}">{escape(v)}: {n}</span>'
        for v, n in counts.items()
    )


# -- context -----------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def context_items(run: Run) -> list[tuple[str, str]]:
    """The context as (term, description) pairs, the few facts that make a result comparable."""
    c = run.context
    pools = c.get("pools") or {}
    server = c.get("broker_server")
    broker = f"{c.get('broker')} ({'private' if c.get('broker_private') else 'given with --broker-url'})"
    items = [
        ("when", f"{c.get('timestamp')}, took {_duration(run.duration_s)}"),
        (
            "run",
            f"{'quick' if c.get('quick') else 'full'}: python -m bench {' '.join(c.get('argv') or ['run'])}",
        ),
        ("celery / kombu", f"{c.get('celery')} / {c.get('kombu')}"),
        *_broker_items(c, server, broker),
        ("redis-py", str(c.get("redis_py"))),
        ("Python", f"{c.get('python')} ({c.get('implementation', 'CPython')})"),
        ("machine", f"{c.get('platform')}, {c.get('machine')}, {c.get('cpu_count')} CPUs"),
        ("git commit", str(c.get("git_commit") or "unknown")),
        ("pools", ", ".join(f"{p} x{'/'.join(map(str, cs))}" for p, cs in pools.items()) or "-"),
        ("message", f"{c.get('message_bytes')} bytes, {c.get('serializer', 'json')}"),
        ("configuration", report.config_line(c.get("config")).removeprefix("configuration: ")),
    ]
    plan = c.get("plan")
    if isinstance(plan, Mapping):
        items.append(("plan", _plan_line(plan)))
    if c.get("machine_control"):
        items.append(
            ("machine control", machine.text(c["machine_control"]).removeprefix("machine control: "))
        )
    return items


def _broker_items(c: Mapping[str, Any], server: str | None, broker: str) -> list[tuple[str, str]]:
    """Every broker under test and the result backend (schema 3), or the one Redis of an older run."""
    brokers = c.get("brokers")
    if not brokers:
        unknown = "unknown (the broker did not report a version)"
        return [("broker server", f"Redis {server}" if server else unknown), ("broker", broker)]
    items = [(f"broker: {b.get('kind')}", report.broker_text(b)) for b in brokers]
    backend = c.get("result_backend") or {}
    whose = "private" if backend.get("private") else "given with --broker-url"
    version = backend.get("server_version") or "?"
    items.append(("result backend", f"Redis {version} {backend.get('url')} ({whose}), for every broker"))
    return items


def _plan_line(plan: Mapping[str, Any]) -> str:
    def get(key: str) -> str:
        value = plan.get(key, "?")
        return f"{value:g}" if isinstance(value, float) else str(value)

    most = plan.get("max_rounds") or {}

    def rounds(step: str, key: str) -> str:
        """``5`` or, with adaptive rounds, ``5-40`` (the minimum, then up to the maximum)."""
        least = get(key)
        return f"{least}-{most[step]}" if step in most and str(most[step]) != least else least

    return (
        f"enqueue {rounds('enqueue', 'enqueue_rounds')} rounds x {get('enqueue_per_round')} calls; producer "
        f"{rounds('producer', 'producer_rounds')} rounds x {get('producer_per_thread')} per thread; drain "
        f"{rounds('drain', 'drain_rounds')} x {get('drain_tasks')} tasks; open loop {get('e2e_rate')}/s, "
        f"{rounds('e2e', 'e2e_rounds')} rounds of {get('e2e_seconds')} s"
    )


def _dl(items: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(t)}</dt><dd>{escape(d)}</dd>" for t, d in items) + "</dl>"


# -- the page ----------------------------------------------------------------------------------------
CSS = """
:root{--fg:#1d232b;--muted:#5b6673;--line:#dfe3e8;--head:#f3f5f7;--ok:#1a7f37;--okbg:#e6f4ea;
--dev:#b42318;--devbg:#fdecea;--na:#57606a;--nabg:#eef0f2;--warn:#9a6700;--warnbg:#fff8e1}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0 auto;
padding:1.5em 2em 3em;max-width:96em}
header h1{margin:0;font-size:1.6em} header p{margin:.2em 0;color:var(--muted)}
nav{margin:.8em 0 1.2em;display:flex;gap:1em;flex-wrap:wrap} nav a{color:#0b5cad;text-decoration:none}
h2{font-size:1.25em;margin:1.8em 0 .3em;padding-bottom:.2em;border-bottom:1px solid var(--line)}
p.about{color:var(--muted);margin:.2em 0 .8em;max-width:70em}
.pair{display:flex;flex-wrap:wrap;gap:1em 2em;align-items:flex-start}
.tables{flex:0 0 auto;max-width:100%;overflow-x:auto}
.pair figure{flex:1 1 24em;max-width:44em}
.pair.e2e figure{flex-basis:100%;max-width:72em}
figure{margin:0} figure img{width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;margin:0 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:.35em .6em;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
td.what{white-space:normal;min-width:12em}
th{background:var(--head);font-weight:600;cursor:pointer;user-select:none;position:relative;padding-right:1.3em}
th::after{content:"\\2195";position:absolute;right:.35em;color:#aab2bb;font-size:.85em}
th[aria-sort=ascending]::after{content:"\\25B2";color:var(--fg)}
th[aria-sort=descending]::after{content:"\\25BC";color:var(--fg)}
td.num{text-align:right} th:focus{outline:2px solid #0b5cad}
tbody:hover{background:#fafbfc}
tr.notes td{white-space:normal;color:var(--muted);font-size:.9em;border-bottom:1px solid var(--line);
padding-top:0} tr.notes ul{margin:0;padding-left:1.2em}
tr.notes div{width:0;min-width:100%}
tbody tr:first-child:has(+ tr.notes) td{border-bottom:none}
td.wide{color:var(--warn);font-weight:600} tr.warn td.wide::after{content:" \\26A0"}
.verdict{display:inline-block;padding:.05em .55em;border-radius:1em;font-weight:600;font-size:.9em}
td.verdict{display:table-cell;border-radius:0}
.verdict-ok{color:var(--ok);background:var(--okbg)}
.verdict-deviation{color:var(--dev);background:var(--devbg)}
.verdict-na{color:var(--na);background:var(--nabg)}
tr.verdict-row-deviation td:first-child{box-shadow:inset 3px 0 var(--dev)}
tr.verdict-row-deviation+tr.notes td{color:var(--dev)}
p.verdicts .verdict{margin-right:.5em}
.callout{border-left:4px solid var(--warn);background:var(--warnbg);padding:.6em 1em;margin:1em 0}
.callout.errors{border-color:var(--dev);background:var(--devbg)}
.callout ul{margin:.3em 0;padding-left:1.2em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1.5em;margin:.5em 0}
dt{color:var(--muted)} dd{margin:0;overflow-wrap:anywhere}
ul.fidelity{padding-left:1.2em}
"""

SCRIPT = """
(function () {
  function key(body, col) {
    var cell = body.rows[0].cells[col];
    if (!cell) return null;
    if (cell.hasAttribute("data-value")) {
      var v = cell.getAttribute("data-value");
      return v === "" ? null : parseFloat(v);
    }
    return cell.textContent.trim().toLowerCase();
  }
  function sortTable(table, col, dir) {
    var bodies = Array.prototype.slice.call(table.tBodies);
    bodies.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    bodies.forEach(function (b) { table.appendChild(b); });
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) {
      heads[i].setAttribute("aria-sort", i === col ? (dir > 0 ? "ascending" : "descending") : "none");
    }
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) {
      (function (th, col) {
        function toggle() {
          sortTable(table, col, th.getAttribute("aria-sort") === "ascending" ? -1 : 1);
        }
        th.addEventListener("click", toggle);
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
        });
      })(heads[i], i);
    }
  });
  var m = /sort=([\\w-]+):(\\d+)(?::(asc|desc))?/.exec(location.hash);
  if (m) {
    var t = document.getElementById(m[1]);
    if (t) sortTable(t, parseInt(m[2], 10), m[3] === "desc" ? -1 : 1);
  }
})();
"""


def _callout(css: str, title: str, lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div class="callout {css}"><strong>{escape(title)}</strong><ul>{items}</ul></div>'


def page(
    run: Run,
    *,
    figure: Callable[[Run, str], bytes | None] = report.section_png,
    extra: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The whole page as a string (``figure`` draws a section's plot; tests may pass a cheaper one).

    ``extra``: optional sections as (id, title, HTML ``<section>``), e.g. the enqueue breakdown."""
    by_section: dict[str, list[Result]] = {}
    for r in run.results:
        by_section.setdefault(section_of(r), []).append(r)
    sections = [s for s in (*SECTIONS, OTHER) if by_section.get(s.key)]
    body = [
        _section(s, by_section[s.key], figure(run, s.key) if s.key in report.FIGURE_SECTIONS else None)
        for s in sections
    ]
    ctx = run.context
    nav = [(s.key, s.title) for s in sections]
    if run.reliability is not None:
        nav.append(("reliability", "Reliability"))
    nav += [(key, title) for key, title, _ in extra]
    nav += [("fidelity", "Fidelity"), ("context", "Context")]
    run_warnings = [w for w in run.warnings if not any(w in _row_notes(r) for r in run.results)]
    title = f"celery-bench {ctx.get('timestamp', '')}"
    subtitle = (
        f"celery {ctx.get('celery')} · kombu {ctx.get('kombu')} · "
        f"{'Redis ' + str(ctx['broker_server']) if ctx.get('broker_server') else 'Redis'} · "
        f"Python {ctx.get('python')} · {ctx.get('cpu_count')} CPUs · "
        f"{'quick' if ctx.get('quick') else 'full'} run · {ctx.get('timestamp')}"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head><body>
<header><h1>celery-bench report</h1><p>{escape(subtitle)}</p></header>
<nav>{"".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in nav)}</nav>
{_callout("errors", "Errors", run.errors)}
{_callout("warnings", "Warnings", run_warnings)}
{"".join(body)}
{reliability_section(run.reliability)}
{"".join(section for _, _, section in extra)}
<section id="fidelity"><h2>Fidelity: does the harness distort what it measures?</h2>
<ul class="fidelity">{"".join(f"<li>{escape(x)}</li>" for x in report.fidelity_lines(run))}</ul></section>
<section id="context"><h2>Context</h2>{_dl(context_items(run))}</section>
<script>{SCRIPT}</script>
</body></html>
"""


def write_page(run: Run, path: Path, *, extra: Sequence[tuple[str, str, str]] = ()) -> Path:
    """Write :func:`page` to ``path`` (one file: it needs nothing next to it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(run, extra=extra), encoding="utf-8")
    return path
