"""Render comparisons (``bench.compare``) and sweeps (``bench.sweep``) as terminal text.

Only formatting: every number shown was computed by ``bench.compare`` or ``bench.sweep``.
"""

from __future__ import annotations

import json

from bench.compare import Comparison, Key, Verdict
from bench.report import grid, number

COMPARE_HEADERS = ("figure", "pool", "config", "A median", "B median", "unit", "change", "significant")


def settings_label(config_key: str) -> str:
    """A configuration key (``bench.compare.config_key``) as ``app; name=value ...``."""
    if not config_key:
        return "-"
    data = json.loads(config_key)
    sets = " ".join(f"{k}={json.dumps(v)}" for k, v in data["settings"].items())
    return f"{data['app']}" + (f"; {sets}" if sets else "")


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
    return "-" if key[1] is None else f"{key[1]} x{key[2]}"


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
