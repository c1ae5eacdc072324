"""Compare two JSON reports figure by figure: faster or slower, by how much, and whether it is significant.

``python -m bench compare A.json B.json`` (``bench.cli``) loads two reports (``bench run`` or
``bench sweep``), matches their rows by figure (``scenario``), pool, concurrency, broker (a Redis row
never matches a RabbitMQ one) and configuration (app and ``--set`` settings), and says per figure how B
compares with A, as pyperf's ``compare_to`` does:

* the **ratio** is in time per task, so it reads the same way for both kinds of figure: for a latency
  ``B / A``, for a rate ``A / B``; above 1 B is slower (``1.20x slower``), below 1 faster;
* **significance**: Welch's two-sample t-test on the rows' per-round values (``round_values``: the
  median of each round for a latency, the rate of each round for a throughput), two-sided at 95%.
  pyperf uses Student's t-test on its runs' values; Welch's does not assume equal spreads, which the
  rounds of two runs on a shared machine rarely have. A row with fewer than two rounds on either side
  (the open-loop end-to-end rows: one open-loop run per pool) cannot be tested and never gates;
* a **regression** is a significant slowdown beyond the threshold (``ratio - 1 > threshold``); the
  command exits 1 when there is one, so a CI can gate on it.

When the two reports share no configuration (e.g. A measured the defaults and B ``--set
worker_prefetch_multiplier=16``), rows are matched by figure, pool and concurrency alone and the
comparison says so. Bad input raises :class:`CompareError` (one line); the command line exits 2.
Nothing here prints (``bench.tables`` renders).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import machine

READABLE_KINDS = ("celery-bench-report", "celery-bench-sweep")
"""The JSON documents this module compares: a ``bench run`` report and a ``bench sweep`` report."""

SCHEMA_VERSION = 3
"""The report schema version compared (version 1 and 2 reports are migrated, ``bench.report.migrate``;
a sweep report of version 2 is read as is: its rows, without ``broker``, measured Redis)."""

READABLE_SCHEMAS = (1, 2, 3)
"""The schema versions ``load`` reads."""

DEFAULT_THRESHOLD = 0.10
"""A significant slowdown beyond this fraction (10%) is a regression (exit status 1)."""

T_CRITICAL_95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Two-sided 95% critical values of Student's t for 1..30 degrees of freedom (beyond: ``T_LARGE_DF``)."""

T_LARGE_DF = ((40, 2.021), (60, 2.000), (120, 1.980))
"""Critical values for larger degrees of freedom (a df between two entries takes the smaller df's)."""

T_INFINITE = 1.960


class CompareError(ValueError):
    """Bad input to a comparison; the message is one line naming the file and the fix."""


Key = tuple[str, str | None, int | None, str, str]
"""A figure's identity: scenario, pool, concurrency, broker kind, configuration (app and ``--set``, as
JSON)."""


@dataclass(frozen=True)
class Figure:
    """One row of a report, reduced to what a comparison needs."""

    scenario: str
    pool: str | None
    concurrency: int | None
    config: str
    kind: str
    unit: str
    median: float
    rounds: tuple[float, ...]
    broker: str = "redis"

    @property
    def key(self) -> Key:
        return (self.scenario, self.pool, self.concurrency, self.broker, self.config)


@dataclass(frozen=True)
class Verdict:
    """How B's figure compares with A's (see the module docstring)."""

    a: Figure
    b: Figure
    ratio: float
    """Time per task, B over A: > 1 B is slower."""
    significant: bool | None
    """``None``: too few rounds to test (fewer than two on a side)."""
    t: float | None
    regression: bool

    @property
    def change(self) -> float:
        """The relative change of the figure itself, ``(B - A) / A`` (a latency or a rate)."""
        return (self.b.median - self.a.median) / self.a.median if self.a.median else math.inf


@dataclass(frozen=True)
class Comparison:
    """Every matched figure, what only one side has, and how the rows were matched."""

    a_path: str
    b_path: str
    threshold: float
    verdicts: tuple[Verdict, ...]
    only_a: tuple[Key, ...]
    only_b: tuple[Key, ...]
    matched_on_config: bool
    a_config: str
    b_config: str
    machine_drift: Mapping[str, float] = field(default_factory=dict)
    """Per machine control (``bench.machine``) in both reports: B's over A's, above 1 B's machine slower."""

    @property
    def regressions(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.regression)


# -- loading ------------------------------------------------------------------------------------------
def load(path: Path) -> dict[str, Any]:
    """A report from ``path`` as plain data (version 1 migrated); raises :class:`CompareError`."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CompareError(f"{path}: no such file; give the path of a JSON report of bench run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"{path}: cannot read it ({exc}); give a readable JSON report") from None
    except ValueError as exc:
        raise CompareError(f"{path}: not JSON ({exc}); give a JSON report of bench run") from None
    if not isinstance(doc, dict) or doc.get("kind") not in READABLE_KINDS:
        raise CompareError(
            f"{path}: not a celery-bench report (no kind {READABLE_KINDS[0]!r}); check the path"
        )
    if doc.get("schema") not in READABLE_SCHEMAS or (doc["kind"] != READABLE_KINDS[0] and doc["schema"] == 1):
        raise CompareError(
            f"{path}: report schema {doc.get('schema')!r}, this harness compares schemas "
            f"{', '.join(map(str, READABLE_SCHEMAS))}; compare it with the harness version that wrote it"
        )
    if doc["kind"] == READABLE_KINDS[0] and isinstance(doc.get("results"), list) and doc["results"]:
        from bench.report import migrate

        doc = migrate(doc)
    if not isinstance(doc.get("results"), list) or not doc["results"]:
        raise CompareError(f"{path}: the report has no results to compare; rerun the benchmark")
    return doc


def config_key(config: Mapping[str, Any] | None) -> str:
    """The configuration as a matching key: app and ``--set`` settings (the pool is in the key already)."""
    config = config or {}
    key = {"app": config.get("app"), "settings": config.get("settings") or {}}
    if config.get("producer_reuse"):
        key["producer_reuse"] = True
    if config.get("hiredis") is not None:
        key["hiredis"] = config["hiredis"]
    return json.dumps(key, sort_keys=True)


def figures(doc: Mapping[str, Any], *, path: str = "report") -> tuple[Figure, ...]:
    """The rows of a loaded report as :class:`Figure` records; raises :class:`CompareError`."""
    out = []
    for i, row in enumerate(doc["results"]):
        try:
            out.append(
                Figure(
                    scenario=str(row["scenario"]),
                    pool=row["pool"],
                    concurrency=row["concurrency"],
                    config=config_key(row.get("config")),
                    kind=str(row["kind"]),
                    unit=str(row["unit"]),
                    median=float(row["median"]),
                    rounds=tuple(float(v) for v in row["round_values"]),
                    broker=str(row.get("broker") or "redis"),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CompareError(
                f"{path}: results[{i}] is not a report row ({type(exc).__name__}: {exc}); "
                "the file does not follow the report schema (python -m bench schema)"
            ) from None
    return tuple(out)


# -- statistics ---------------------------------------------------------------------------------------
def t_critical(df: float) -> float:
    """The two-sided 95% critical value of Student's t for ``df`` degrees of freedom (rounded down)."""
    whole = max(1, math.floor(df))
    if whole <= len(T_CRITICAL_95):
        return T_CRITICAL_95[whole - 1]
    value = T_CRITICAL_95[-1]
    for at_least, critical in T_LARGE_DF:
        if whole >= at_least:
            value = critical
    return T_INFINITE if whole >= 1000 else value


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """Welch's t statistic and degrees of freedom of ``b`` vs ``a``; ``None`` with < 2 values a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(b) - statistics.fmean(a)
    if va + vb == 0:
        return (0.0 if diff == 0 else math.copysign(math.inf, diff)), float(len(a) + len(b) - 2)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df


def significant(a: Sequence[float], b: Sequence[float]) -> tuple[bool | None, float | None]:
    """Whether ``b`` differs from ``a`` (Welch, two-sided, 95%) and the t statistic; ``None``: untestable."""
    tested = welch(a, b)
    if tested is None:
        return None, None
    t, df = tested
    return abs(t) > t_critical(df), t


def verdict(a: Figure, b: Figure, threshold: float) -> Verdict:
    """B's figure against A's (see the module docstring)."""
    if a.median <= 0 or b.median <= 0:
        raise CompareError(f"{a.scenario}: a median of zero cannot be compared (A {a.median}, B {b.median})")
    ratio = b.median / a.median if a.kind == "latency" else a.median / b.median
    is_significant, t = significant(a.rounds, b.rounds)
    return Verdict(
        a=a,
        b=b,
        ratio=ratio,
        significant=is_significant,
        t=t,
        regression=bool(is_significant) and ratio - 1 > threshold,
    )


# -- matching -----------------------------------------------------------------------------------------
def compare_figures(
    a: Iterable[Figure], b: Iterable[Figure], *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[tuple[Verdict, ...], tuple[Key, ...], tuple[Key, ...], bool]:
    """Matched verdicts, keys only in A, keys only in B, and whether the configurations were matched."""
    a_rows, b_rows = {f.key: f for f in a}, {f.key: f for f in b}
    matched_on_config = bool(a_rows.keys() & b_rows.keys())
    if not matched_on_config:  # two configurations: compare the same figure on the same pool
        a_rows = {(*k[:4], ""): f for k, f in a_rows.items()}
        b_rows = {(*k[:4], ""): f for k, f in b_rows.items()}
    verdicts = []
    for key, fa in a_rows.items():
        fb = b_rows.get(key)
        if fb is None:
            continue
        if (fa.kind, fa.unit) != (fb.kind, fb.unit):
            raise CompareError(
                f"{fa.scenario}: A is {fa.kind} in {fa.unit}, B {fb.kind} in {fb.unit}; reports of "
                "different harness versions: compare reports of the same schema"
            )
        verdicts.append(verdict(fa, fb, threshold))
    only_a = tuple(k for k in a_rows if k not in b_rows)
    only_b = tuple(k for k in b_rows if k not in a_rows)
    return tuple(verdicts), only_a, only_b, matched_on_config


def compare_files(a_path: Path, b_path: Path, *, threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Load and compare two reports; raises :class:`CompareError` on bad input or nothing in common."""
    if not (threshold >= 0 and math.isfinite(threshold)):
        raise CompareError(f"--threshold {threshold * 100:g}: give a percentage >= 0, e.g. --threshold 5")
    a_doc, b_doc = load(a_path), load(b_path)
    verdicts, only_a, only_b, on_config = compare_figures(
        figures(a_doc, path=str(a_path)), figures(b_doc, path=str(b_path)), threshold=threshold
    )
    if not verdicts:
        raise CompareError(
            f"{a_path} and {b_path} have no figure in common (scenario, pool, concurrency, broker); "
            "compare reports of the same pools and brokers"
        )
    return Comparison(
        a_path=str(a_path),
        b_path=str(b_path),
        threshold=threshold,
        verdicts=verdicts,
        only_a=only_a,
        only_b=only_b,
        matched_on_config=on_config,
        a_config=config_key(a_doc.get("context", {}).get("config")),
        b_config=config_key(b_doc.get("context", {}).get("config")),
        machine_drift=machine.drift(a_doc.get("context", {}), b_doc.get("context", {})),
    )
