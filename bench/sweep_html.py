"""A sweep as one self-contained HTML page: a sortable table per objective, the plot, the Pareto front,
the recommendations and the context.

Formats only: every number comes from :class:`bench.sweep.Sweep` (its scores, rows and delivery probes);
the table, style and script are ``bench.html``'s, so the page sorts the same way (click a header, or
``#sort=TABLE_ID:COLUMN:asc|desc``) and opens offline (the plot is an embedded PNG).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from html import escape
from pathlib import Path

from bench import stats, tables
from bench.html import CSS, SCRIPT, UNIT_LABELS, Cell, Row, _callout, _dl, _figure, _number, _percent, table
from bench.sweep import DELIVERY, OBJECTIVES, Objective, Sweep, relative

ABOUT = {
    "enqueue": "Median time of one apply_async call in the producer (x floor: over a raw LPUSH of the "
    "same message, measured in the same call).",
    "producer": "Tasks per second one producer thread publishes.",
    "drain": "Tasks per second a fresh worker drains from a pre-filled queue.",
    "e2e_p99": "p99 of enqueue -> task start, open loop (arrivals at a fixed rate).",
    "lost": "Each cell's delivery probe: ledger tasks under the cell's settings, the worker SIGKILLed once "
    "two completed and one runs, a replacement started after a short visibility timeout; lost = never "
    "completed, duplicated = ran twice; running / held / gone at kill: started and not completed, in "
    "kombu's unacked hash (they come back), out of the broker and not completed (the most it can lose). "
    "The parsers are redis-py's, as each process reported.",
}


def table_id(objective: Objective) -> str:
    return f"objective-{objective.name.replace('_', '-')}"


def _ranked(sweep: Sweep, objective: Objective) -> list[tuple[str, float]]:
    found = [(c, v) for c, s in sweep.scores.items() if (v := s[objective.name]) is not None]
    return sorted(found, key=lambda item: item[1] if objective.lower_is_better else -item[1])


def _common(sweep: Sweep, name: str) -> tuple[Cell, Cell]:
    cell = next(c for c in sweep.cells if c.name == name)
    return Cell("*" if name in sweep.front else ""), Cell(tables.cell_settings(cell), css="what")


def objective_table(sweep: Sweep, objective: Objective) -> str:
    """One objective's table: every cell, best first, with its change against the baseline."""
    if objective.scenario == DELIVERY:
        return delivery_table(sweep, objective)
    base = sweep.scores[sweep.baseline][objective.name]
    unit = UNIT_LABELS.get(objective.unit, objective.unit)
    headers = ["cell", "pool", f"{objective.field} ({unit})", f"vs {sweep.baseline}", "CV rounds",
               "x floor", "Pareto front", "settings"]  # fmt: skip
    rows = []
    for name, value in _ranked(sweep, objective):
        row = next(r for r in sweep.rows if r.cell == name and r.scenario == objective.scenario)
        series = row.p99_rounds if objective.field == "p99" and row.p99_rounds else row.round_values
        change = relative(value, base)
        front, settings = _common(sweep, name)
        rows.append(Row([
            Cell(name), Cell(tables.pool_of(sweep, name) if row.config.pool else "-"), _number(value),
            _percent(change), _percent(stats.coefficient_of_variation(series)),
            _number(row.floor_ratio), front, settings,
        ]))  # fmt: skip
    return table(table_id(objective), headers, rows)


def delivery_table(sweep: Sweep, objective: Objective) -> str:
    """The delivery probes' table: lost, duplicated, what the kill interrupted, the parsers."""
    headers = ["cell", "pool", "lost (tasks)", "duplicated (tasks)", "running at kill", "held at kill",
               "gone at kill", "probes", "redis parser: producer", "worker", "Pareto front",
               "settings"]  # fmt: skip
    rows = []
    for name, value in _ranked(sweep, objective):
        probes = sweep.deliveries[name]
        front, settings = _common(sweep, name)
        notes = [] if all(d.settled for d in probes) else ["a probe did not settle within its timeout"]
        rows.append(Row([
            Cell(name), Cell(tables.pool_of(sweep, name)), _number(value),
            _number(statistics.median(d.duplicated for d in probes)),
            _number(statistics.median(d.in_flight for d in probes)),
            _number(statistics.median(d.held for d in probes)),
            _number(statistics.median(d.gone for d in probes)), _number(len(probes)),
            Cell(tables.parser_label(sweep.parsers.get(name, ()))),
            Cell(tables.parser_label(p for d in probes for p in d.parsers)), front, settings,
        ], notes=notes))  # fmt: skip
    return table(table_id(objective), headers, rows)


def _section(sweep: Sweep, objective: Objective) -> str:
    return (
        f'<section id="{table_id(objective)}-section"><h2>{escape(objective.title)}</h2>'
        f'<p class="about">{escape(ABOUT.get(objective.name, ""))}</p>'
        f'<div class="tables">{objective_table(sweep, objective)}</div></section>'
    )


def context_items(sweep: Sweep) -> list[tuple[str, str]]:
    ctx = sweep.context
    kind = "quick" if ctx.get("quick") else "full"
    return [
        ("when", str(ctx.get("timestamp", "-"))),
        ("took", f"{sweep.duration_s:.0f} s"),
        ("cells x rounds", f"{len(sweep.cells)} x {ctx.get('rounds', '-')} ({kind})"),
        ("baseline", sweep.baseline),
        ("celery / kombu", f"{ctx.get('celery')} / {ctx.get('kombu')}"),
        ("redis-py", str(ctx.get("redis_py", "-"))),
        ("Python", str(ctx.get("python", "-"))),
        ("machine", f"{ctx.get('machine', '-')}, {ctx.get('cpu_count', '-')} CPUs"),
        ("git commit", str(ctx.get("git_commit", "-"))),
        ("app", str((ctx.get("config") or {}).get("app", "-"))),
    ]  # fmt: skip


def page(sweep: Sweep, *, figure: Callable[[Sweep], bytes | None] = tables.sweep_png) -> str:
    """The whole page as a string (``figure`` draws the plot; tests may pass a cheaper one)."""
    nav = [(f"{table_id(o)}-section", o.title) for o in OBJECTIVES]
    nav += [("pareto", "Pareto front"), ("recommendations", "Recommendations"), ("context", "Context")]
    advice = [tables.recommendation_line(r, sweep.baseline) for r in sweep.recommendations]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>celery-bench sweep {escape(str(sweep.context.get("timestamp", "")))}</title>
<style>{CSS}</style>
</head><body>
<header><h1>celery-bench sweep</h1><p>{escape(_subtitle(sweep))}</p></header>
<nav>{"".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in nav)}</nav>
{_callout("warnings", "Warnings", sweep.warnings)}
{"".join(_section(sweep, o) for o in OBJECTIVES)}
<section id="pareto"><h2>Pareto front</h2><p class="about">No other cell is as good on every objective
and better on one.</p>{_figure(figure(sweep), "the cells, the Pareto front in red")}
<ul class="fidelity">{"".join(f"<li>{escape(c)}</li>" for c in sweep.front)}</ul></section>
<section id="recommendations"><h2>Recommendations (against {escape(sweep.baseline)})</h2>
<ul class="fidelity">{"".join(f"<li>{escape(line)}</li>" for line in advice)}</ul></section>
<section id="context"><h2>Context</h2>{_dl(context_items(sweep))}</section>
<script>{SCRIPT}</script>
</body></html>
"""


def _subtitle(sweep: Sweep) -> str:
    ctx = sweep.context
    return (
        f"celery {ctx.get('celery')} · kombu {ctx.get('kombu')} · {len(sweep.cells)} cells x "
        f"{ctx.get('rounds')} rounds, interleaved · {sweep.duration_s:.0f} s · {ctx.get('timestamp', '')}"
    )


def write_page(
    sweep: Sweep, path: Path, *, figure: Callable[[Sweep], bytes | None] = tables.sweep_png
) -> Path:
    """Write :func:`page` to ``path`` (one file: it needs nothing next to it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(sweep, figure=figure), encoding="utf-8")
    return path
