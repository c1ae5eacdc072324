"""Render comparisons (``bench.compare``) and sweeps (``bench.sweep``) as terminal text.

Only formatting: every number shown was computed by ``bench.compare`` or ``bench.sweep``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import stats
from bench.compare import Comparison, Key, Verdict
from bench.report import grid, number, percent
from bench.sweep import OBJECTIVES, Objective, Recommendation, Sweep, relative

COMPARE_HEADERS = ("figure", "pool", "config", "A median", "B median", "unit", "change", "significant")


def settings_label(config_key: str) -> str:
    """A configuration key (``bench.compare.config_key``) as ``app; name=value ...``."""
    if not config_key:
        return "-"
    data = json.loads(config_key)
    sets = " ".join(f"{k}={json.dumps(v)}" for k, v in data["settings"].items())
    sets += " producer reused" if data.get("producer_reuse") else ""
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
def _settings(settings: Iterable[tuple[str, Any]], producer_reuse: bool = False) -> str:
    text = " ".join(f"{k}={json.dumps(v)}" for k, v in settings)
    text += " apply_async(producer=held)" if producer_reuse else ""
    return text.strip() or "(the app's own)"


def _signed(change: float | None) -> str:
    return "-" if change is None else f"{change:+.0%}"


def _judged(objective: Objective, change: float | None) -> str:
    """A relative change of ``objective``'s figure, with whether it is better or worse."""
    if change is None:
        return f"{objective.name} -"
    if abs(change) < 0.005:
        return f"{objective.name} ±0%"
    good = change < 0 if objective.lower_is_better else change > 0
    return f"{objective.name} {change:+.0%} ({'better' if good else 'worse'})"


def objective_table(sweep: Sweep, objective: Objective) -> str:
    """One objective: every cell, best first, with its change against the baseline."""
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
            "*" if name in sweep.front else "", _settings(cells[name].settings, cells[name].producer_reuse),
        ])  # fmt: skip
    return f"{objective.title.upper()} ({objective.field} of the rounds' figures)\n" + grid(headers, rows)


def recommendation_line(rec: Recommendation, baseline: str) -> str:
    if rec.gain is None:
        return f"{rec.objective.name}: keep {baseline} (no cell did better)"
    noise = (
        "significant"
        if rec.significant
        else "within the rounds' noise"
        if rec.significant is False
        else "untested"
    )
    costs = ", ".join(_judged(o, dict(rec.costs).get(o.name)) for o in OBJECTIVES if o is not rec.objective)
    return (
        f"{rec.objective.name}: {rec.cell} [{_settings(rec.settings, rec.producer_reuse)}]: "
        f"{_judged(rec.objective, rec.gain)} vs {baseline} ({noise}); in the others: {costs}"
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
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90, format="png")
    finally:
        plt.close(fig)
    return path
