"""Render comparisons (``bench.compare``) and sweeps (``bench.sweep``) as terminal text.

Only formatting: every number shown was computed by ``bench.compare`` or ``bench.sweep``.
"""

from __future__ import annotations

import io
import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import parsers, stats
from bench.compare import Comparison, Key, Verdict
from bench.report import grid, number, percent
from bench.sweep import DELIVERY, OBJECTIVES, Cell, Objective, Recommendation, Sweep, relative

COMPARE_HEADERS = ("figure", "pool", "config", "A median", "B median", "unit", "change", "significant")


def settings_label(config_key: str) -> str:
    """A configuration key (``bench.compare.config_key``) as ``app; name=value ...``."""
    if not config_key:
        return "-"
    data = json.loads(config_key)
    sets = " ".join(f"{k}={json.dumps(v)}" for k, v in data["settings"].items())
    sets += " producer reused" if data.get("producer_reuse") else ""
    sets += "" if data.get("hiredis") is None else f" hiredis {'on' if data['hiredis'] else 'off'}"
    return f"{data['app']}" + (f"; {sets.strip()}" if sets else "")


def change_label(verdict: Verdict) -> str:
    """``1.20x slower`` / ``1.15x faster`` (time per task), with the figure's own change in percent."""
    ratio = verdict.ratio
    if ratio == 1:
        words = "same"
    elif ratio > 1:
        words = f"{ratio:.2f}x slower"
    else:
        words = f"{1 / ratio:.2f}x faster"
    return f"{words} ({verdict.change:+.1%})"


def significance_label(verdict: Verdict) -> str:
    if verdict.significant is None:
        return "n/a (1 round)"
    t = "inf" if verdict.t is None or abs(verdict.t) == float("inf") else f"{abs(verdict.t):.1f}"
    if verdict.regression:
        return f"yes, REGRESSION (t={t})"
    return f"yes (t={t})" if verdict.significant else f"no (t={t})"


def _where(key: Key) -> str:
    """``solo x1``, ``-`` (a producer-side figure), with `` on rabbitmq`` for a broker other than Redis."""
    on = "" if key[3] == "redis" else f"on {key[3]}"
    if key[1] is None:
        return on or "-"
    return f"{key[1]} x{key[2]} {on}".rstrip()


def comparison_text(comparison: Comparison) -> str:
    """The comparison table, what only one side has, and the verdict line."""
    rows = [
        [
            v.a.scenario,
            _where(v.a.key),
            settings_label(v.a.config) if comparison.matched_on_config else "A vs B",
            number(v.a.median),
            number(v.b.median),
            v.a.unit,
            change_label(v),
            significance_label(v),
        ]
        for v in comparison.verdicts
    ]
    lines = [f"A: {comparison.a_path}", f"B: {comparison.b_path}"]
    if not comparison.matched_on_config:
        lines.append(
            f"configurations differ: A {settings_label(comparison.a_config)}, "
            f"B {settings_label(comparison.b_config)}; figures matched by scenario and pool"
        )
    lines += ["", grid(COMPARE_HEADERS, rows), ""]
    if comparison.machine_drift:
        drift = ", ".join(f"{name} x{ratio:.2f}" for name, ratio in comparison.machine_drift.items())
        lines.append(
            f"machine controls, B over A: {drift} (above 1 B's machine was slower; a change of that size "
            "in a figure may be the machine's)"
        )
    for side, keys in (("A", comparison.only_a), ("B", comparison.only_b)):
        if keys:
            lines.append(f"only in {side}: " + ", ".join(f"{k[0]} {_where(k)}" for k in keys))
    regressions = comparison.regressions
    threshold = f"{comparison.threshold:.0%}"
    if regressions:
        names = ", ".join(f"{v.a.scenario} {_where(v.a.key)} ({change_label(v)})" for v in regressions)
        lines.append(f"REGRESSION: significantly slower by more than {threshold}: {names}")
    else:
        lines.append(f"no significant regression beyond {threshold}")
    return "\n".join(lines)


# -- sweeps -------------------------------------------------------------------------------------------
def _settings(
    settings: Iterable[tuple[str, Any]], producer_reuse: bool = False, hiredis: bool | None = None
) -> str:
    text = " ".join(f"{k}={json.dumps(v)}" for k, v in settings)
    text += " apply_async(producer=held)" if producer_reuse else ""
    text += "" if hiredis is None else f" hiredis {'installed' if hiredis else 'hidden'}"
    return text.strip() or "(the app's own)"


def cell_settings(cell: Cell) -> str:
    return _settings(cell.settings, cell.producer_reuse, cell.hiredis)


def _signed(change: float | None) -> str:
    return "-" if change is None else f"{change:+.0%}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _lost(rec: Recommendation, baseline: str) -> str:
    """The chosen cell's lost and duplicated counts on kill, with the baseline's (absolute: 0 -> 4 is
    no percentage)."""
    lost, base = dict(rec.figures).get("lost"), dict(rec.baseline_figures).get("lost")
    if lost is None:
        return "lost on kill -"
    dup, base_dup = rec.duplicated
    return (
        f"lost on kill {_count(lost)}, duplicated {_count(dup)} "
        f"({baseline}: {_count(base)} and {_count(base_dup)})"
    )


def _judged(objective: Objective, change: float | None, rec: Recommendation | None = None) -> str:
    """A relative change of ``objective``'s figure, with whether it is better or worse, and (given the
    recommendation) the two figures it compares: ``drain +14% (better: 829 vs 726 tasks/s)``."""
    if change is None:
        return f"{objective.name} -"
    figures = ""
    if rec is not None:
        value, base = dict(rec.figures).get(objective.name), dict(rec.baseline_figures).get(objective.name)
        figures = (
            "" if value is None or base is None else f": {number(value)} vs {number(base)} {objective.unit}"
        )
    if abs(change) < 0.005:
        return f"{objective.name} ±0%" + (f" ({figures[2:]})" if figures else "")
    good = change < 0 if objective.lower_is_better else change > 0
    return f"{objective.name} {change:+.0%} ({'better' if good else 'worse'}{figures})"


def objective_table(sweep: Sweep, objective: Objective) -> str:
    """One objective: every cell, best first, with its change against the baseline."""
    if objective.scenario == DELIVERY:
        return delivery_table(sweep, objective)
    base = sweep.scores[sweep.baseline][objective.name]
    measured = [(c, v) for c, s in sweep.scores.items() if (v := s[objective.name]) is not None]
    measured.sort(key=lambda item: item[1] if objective.lower_is_better else -item[1])
    cells = {c.name: c for c in sweep.cells}
    headers = [
        "cell",
        "pool",
        objective.unit,
        f"vs {sweep.baseline}",
        "CV rounds",
        "x floor",
        "front",
        "settings",
    ]
    rows = []
    for name, value in measured:
        row = next(r for r in sweep.rows if r.cell == name and r.scenario == objective.scenario)
        spread = stats.coefficient_of_variation(
            row.p99_rounds if objective.field == "p99" and row.p99_rounds else row.round_values
        )
        rows.append([
            name, f"{row.config.pool} x{row.config.concurrency or 1}" if row.config.pool else "-",
            number(value), _signed(relative(value, base)), percent(spread),
            "-" if row.floor_ratio is None else f"{row.floor_ratio:.2f}",
            "*" if name in sweep.front else "", cell_settings(cells[name]),
        ])  # fmt: skip
    return f"{objective.title.upper()} ({objective.field} of the rounds' figures)\n" + grid(headers, rows)


def delivery_table(sweep: Sweep, objective: Objective) -> str:
    """The delivery probes: per cell, lost and duplicated on kill, what was in flight, the parser."""
    cells = {c.name: c for c in sweep.cells}
    measured = [(c, v) for c, s in sweep.scores.items() if (v := s[objective.name]) is not None]
    measured.sort(key=lambda item: item[1])
    headers = ["cell", "pool", "lost", "duplicated", "running at kill", "held at kill", "gone at kill",
               "probes", "settled", "parser: producer", "worker", "front", "settings"]  # fmt: skip
    rows = []
    for name, value in measured:
        probes = sweep.deliveries[name]
        cell = cells[name]
        workers = parser_label(p for d in probes for p in d.parsers)
        rows.append([
            name, pool_of(sweep, name),
            _count(value), _count(statistics.median(d.duplicated for d in probes)),
            _count(statistics.median(d.in_flight for d in probes)),
            _count(statistics.median(d.held for d in probes)),
            _count(statistics.median(d.gone for d in probes)), str(len(probes)),
            "yes" if all(d.settled for d in probes) else "NO",
            parser_label(sweep.parsers.get(name, ())), workers,
            "*" if name in sweep.front else "", cell_settings(cell),
        ])  # fmt: skip
    title = f"{objective.title.upper()} (median of the cells' probes; {_probe_size(sweep)})"
    return title + "\n" + grid(headers, rows)


def parser_label(classes: Iterable[str]) -> str:
    """``hiredis`` / ``python`` (or both, or ``-``) from parser class names, as measured."""
    return "+".join(sorted({parsers.NAMES.get(c, c) for c in classes})) or "-"


def pool_of(sweep: Sweep, cell: str) -> str:
    """``pool xN`` of the cell's worker (from its drain row), ``-`` if it has none."""
    row = next((r for r in sweep.rows if r.cell == cell and r.config.pool), None)
    return "-" if row is None else f"{row.config.pool} x{row.config.concurrency or 1}"


def _probe_size(sweep: Sweep) -> str:
    first = next((d for found in sweep.deliveries.values() for d in found), None)
    return "no probe" if first is None else f"{first.enqueued} tasks each"


def recommendation_line(rec: Recommendation, baseline: str) -> str:
    if rec.gain is None and rec.cell == baseline:
        return f"{rec.objective.name}: keep {baseline} (no cell did better)"
    noise = (
        "significant"
        if rec.significant
        else "within the rounds' noise"
        if rec.significant is False
        else "untested: one probe per cell"
        if rec.objective.scenario == DELIVERY
        else "untested"
    )
    costs = ", ".join(
        _lost(rec, baseline) if o.scenario == DELIVERY else _judged(o, dict(rec.costs).get(o.name), rec)
        for o in OBJECTIVES
        if o is not rec.objective
    )
    objective = rec.objective
    gain = _lost(rec, baseline) if objective.scenario == DELIVERY else _judged(objective, rec.gain, rec)
    return (
        f"{rec.objective.name}: {rec.cell} [{_settings(rec.settings, rec.producer_reuse, rec.hiredis)}]: "
        f"{gain} vs {baseline} ({noise}); in the others: {costs}"
    )


def sweep_text(sweep: Sweep) -> str:
    """One table per objective, the Pareto front, the recommendations."""
    parts = [objective_table(sweep, o) + "\n" for o in OBJECTIVES]
    parts.append(
        "PARETO FRONT (no other cell is as good on every objective and better on one): "
        + ", ".join(sweep.front)
    )
    parts += ["", "RECOMMENDATIONS (against the baseline cell, median of the rounds)"]
    parts += [recommendation_line(r, sweep.baseline) for r in sweep.recommendations]
    if sweep.warnings:
        parts.append(
            f"WARNING: the cells' runs gave {len(sweep.warnings)} warnings (wide spreads across rounds, "
            "timing overhead, producer capacity; under warnings in the JSON): the machine may be busy"
        )
    return "\n".join(parts)


def sweep_plot(sweep: Sweep, path: Path) -> Path:
    """:func:`sweep_png` written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sweep_png(sweep))
    return path


def sweep_png(sweep: Sweep) -> bytes:
    """Two scatter plots of the cells (enqueue latency vs drain, e2e p99 vs producer), the front in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = (("enqueue", "drain"), ("e2e_p99", "producer"))
    by_name = {o.name: o for o in OBJECTIVES}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    try:
        for ax, (x_name, y_name) in zip(axes, pairs, strict=True):
            x_obj, y_obj = by_name[x_name], by_name[y_name]
            for cell, scores in sweep.scores.items():
                x, y = scores[x_name], scores[y_name]
                if x is None or y is None:
                    continue
                ax.scatter([x], [y], color="tab:red" if cell in sweep.front else "tab:blue")
                ax.annotate(cell, (x, y), fontsize="small", xytext=(4, 3), textcoords="offset points")
            ax.set_xlabel(f"{x_obj.title} ({x_obj.unit}; lower is better)")
            ax.set_ylabel(f"{y_obj.title} ({y_obj.unit}; higher is better)")
            ax.grid(True, alpha=0.3)
        fig.suptitle("sweep: one point per cell (red: the Pareto front)")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, dpi=90, format="png")
    finally:
        plt.close(fig)
    return out.getvalue()
