"""What one ``bench run`` measured: its rows (:class:`Result`), the harness's own fidelity
(:class:`Fidelity`) and the whole run (:class:`Run`).

``bench.scenarios`` produces them; ``bench.report``, ``bench.html`` and ``bench.sweep`` read them. Kept
apart from the code that measures, so that rendering a run never imports the measuring (nor, through it,
the fault scenarios that render their own table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench import stats
from bench.config import Config


@dataclass(frozen=True)
class Result:
    """One row of the report: a scenario, on a pool (or on the producer side: ``pool=None``)."""

    scenario: str
    title: str
    pool: str | None
    concurrency: int | None
    latency: stats.LatencySummary | None = None
    throughput: stats.ThroughputSummary | None = None
    floor_ratio: float | None = None
    notes: tuple[str, ...] = ()
    config: Config = field(default_factory=Config)
    """The configuration this row measured (its pool and concurrency included)."""
    precision: tuple[stats.Precision, ...] = ()
    """How precisely the rounds pin the row's headline statistics (median, or p50 and p99), against the
    targets the adaptive rounds worked for (``defaults.PRECISION_TARGET*``)."""
    broker: str = "redis"
    """The broker kind this row measured (``bench.brokers.KINDS``); the result backend is always Redis."""

    @property
    def where(self) -> str:
        """``scenario``, ``scenario pool xN``, with `` on KIND`` for a broker other than Redis."""
        where = self.scenario if self.pool is None else f"{self.scenario} {self.pool} x{self.concurrency}"
        return where if self.broker == "redis" else f"{where} on {self.broker}"


@dataclass(frozen=True)
class Fidelity:
    """Whether the harness distorts what it measures, measured in the same run.

    ``timing_overhead*`` bound only the per-call clock reads of the enqueue loop (an interval: see
    ``loadgen.Overhead``); ``capacity_ratio`` compares the one-thread producer (what the open-loop
    generator can send) with the slowest drain.
    """

    timing_overhead: float
    timing_overhead_interval: tuple[float, float]
    timing_overhead_floor: float
    timing_overhead_floor_interval: tuple[float, float]
    overhead_calls: int
    overhead_pairs: int
    overhead_confidence: float
    producer_capacity: float | None
    producer_mode: str | None
    slowest_pool: str | None
    slowest_drain: float | None
    capacity_ratio: float | None
    generator_lag_max_s: float | None


@dataclass(frozen=True)
class Run:
    """Everything one ``bench run`` measured, plus the raw samples the plots need."""

    context: Mapping[str, Any]
    results: tuple[Result, ...]
    fidelity: Fidelity
    warnings: tuple[str, ...]
    reliability: tuple[Any, ...] | None
    duration_s: float
    samples: Mapping[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    errors: tuple[str, ...] = ()
    """Sections that failed after the benchmarks were measured (the report is still written)."""
