"""Statistics over benchmark samples: immutable summaries, no printing.

Latencies are summarised with the median and its spread (IQR and MAD, computed exactly from the
samples), tail percentiles read from an HDR histogram (``hdrhistogram``, 3 significant digits, values
recorded in nanoseconds), and the coefficient of variation of the per-round medians. Throughputs are
summarised per round (one rate per round) with their median and coefficient of variation.

Following pyperf, a spread is *wide* when the standard deviation across rounds is at least 10% of their
mean; the summary then carries a warning (a string) for the reporter to print. This module never prints.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

WIDE_SPREAD = 0.10
"""A spread is wide when stdev >= this fraction of the mean (pyperf's threshold)."""

HDR_LOWEST_NS = 1
"""Smallest value the HDR histogram tracks, in nanoseconds."""

HDR_HIGHEST_NS = 3_600 * 1_000_000_000
"""Largest value the HDR histogram tracks, in nanoseconds (one hour; larger values are clamped)."""

HDR_DIGITS = 3
"""Significant decimal digits the HDR histogram keeps (relative error <= 0.1%)."""

P999_MIN_SAMPLES = 1_000
"""Fewest samples for which p99.9 is reported: below it the 99.9th percentile is the maximum (or an
interpolation between the largest values), so the summary leaves it ``None`` and the max stands alone."""

BOOTSTRAP_RESAMPLES = 2_000
"""Resamples of the percentile bootstrap that puts an interval around a paired median."""

CONFIDENCE = 0.95
"""Coverage of the intervals this module reports."""

UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
"""Seconds -> unit multipliers for latency summaries."""


class NoSamplesError(ValueError):
    """A summary was asked for an empty sample set (a benchmark that measured nothing)."""


@dataclass(frozen=True)
class LatencySummary:
    """A latency distribution in ``unit``: exact median/IQR/MAD, HDR percentiles, spread across rounds."""

    unit: str
    samples: int
    rounds: int
    mean: float
    stdev: float
    min: float
    median: float
    iqr: float
    mad: float
    p50: float
    p90: float
    p99: float
    p999: float | None
    """``None`` with fewer than ``P999_MIN_SAMPLES`` samples (it would be the maximum)."""
    max: float
    round_medians: tuple[float, ...]
    cv_rounds: float | None
    hdr: str
    warning: str | None


@dataclass(frozen=True)
class ThroughputSummary:
    """A rate in ``unit`` (e.g. tasks/s): one rate per round, their median and spread."""

    unit: str
    samples: int
    rounds: int
    median: float
    mean: float
    min: float
    max: float
    round_rates: tuple[float, ...]
    cv_rounds: float | None
    warning: str | None


# -- plain statistics ------------------------------------------------------------------------------
def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` with linear interpolation (numpy's default method)."""
    if not values:
        raise NoSamplesError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r} is outside 0..1")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def iqr(values: Sequence[float]) -> float:
    """Interquartile range: the 75th minus the 25th percentile."""
    return quantile(values, 0.75) - quantile(values, 0.25)


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median (unscaled)."""
    if not values:
        raise NoSamplesError("MAD of no values")
    center = statistics.median(values)
    return statistics.median(abs(v - center) for v in values)


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; ``None`` with fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean == 0:
        return None
    return statistics.stdev(values) / mean


def spread_warning(values: Sequence[float], *, what: str, unit: str) -> str | None:
    """pyperf's check: a warning when the stdev of ``values`` is >= 10% of their mean."""
    cv = coefficient_of_variation(values)
    if cv is None or cv < WIDE_SPREAD:
        return None
    mean = statistics.fmean(values)
    return (
        f"{what}: wide spread across rounds: stdev {statistics.stdev(values):.4g} {unit} is "
        f"{cv:.0%} of the mean {mean:.4g} {unit} (>= {WIDE_SPREAD:.0%}); the machine may be busy, "
        "rerun or add rounds"
    )


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or ``None`` when the reference is zero."""
    return None if reference == 0 else value / reference


@dataclass(frozen=True)
class PairedDifference:
    """How much A exceeds B, as a fraction, from paired blocks (A_i, B_i) measured side by side.

    ``median`` is the median over pairs of ``A_i / B_i - 1``; ``low``..``high`` its percentile-bootstrap
    interval at ``confidence``. The data bound the difference to that interval and no tighter: a
    difference smaller than the interval's width is not measured, only bounded.
    """

    pairs: int
    median: float
    low: float
    high: float
    confidence: float


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    rng: random.Random | None = None,
) -> PairedDifference:
    """The median of ``a_i / b_i - 1`` with a percentile-bootstrap interval (pairs resampled whole).

    ``rng`` defaults to a fixed seed, so the same blocks always give the same interval.
    """
    if len(a) != len(b):
        raise ValueError(f"paired blocks differ in number: {len(a)} vs {len(b)}")
    ratios = [x / y - 1.0 for x, y in zip(a, b, strict=True) if y > 0]
    if not ratios:
        raise NoSamplesError("paired difference of no (positive) pairs")
    draw = rng or random.Random(0)
    n = len(ratios)
    medians = sorted(statistics.median(draw.choices(ratios, k=n)) for _ in range(resamples))
    tail = (1.0 - confidence) / 2
    return PairedDifference(
        pairs=n,
        median=statistics.median(ratios),
        low=quantile(medians, tail),
        high=quantile(medians, 1.0 - tail),
        confidence=confidence,
    )


@dataclass(frozen=True)
class Precision:
    """How precisely a run pins one statistic: the median over rounds of that statistic, its interval.

    ``estimate`` is the median of the per-round values (e.g. each round's median latency, rate or p99);
    ``low``..``high`` its percentile-bootstrap interval at ``confidence`` (rounds resampled whole, fixed
    seed); ``half_width`` is half the interval's width relative to the estimate. The run reached its
    ``target`` when ``half_width <= target``: more rounds would not be expected to move the estimate by
    more than that fraction.
    """

    statistic: str
    estimate: float
    low: float
    high: float
    confidence: float
    rounds: int
    half_width: float
    target: float
    reached: bool


def median_interval(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    rng: random.Random | None = None,
) -> tuple[float, float, float]:
    """(median, low, high): ``values``' median and its percentile-bootstrap interval at ``confidence``.

    Deterministic: ``rng`` defaults to a fixed seed. One value gives a zero-width interval at that value
    (callers require a minimum number of rounds before they trust it).
    """
    if not values:
        raise NoSamplesError("median interval of no values")
    draw = rng or random.Random(0)
    n = len(values)
    medians = sorted(statistics.median(draw.choices(values, k=n)) for _ in range(resamples))
    tail = (1.0 - confidence) / 2
    return statistics.median(values), quantile(medians, tail), quantile(medians, 1.0 - tail)


def relative_half_width(estimate: float, low: float, high: float) -> float:
    """Half of ``high - low`` as a fraction of ``estimate`` (infinite for a zero estimate)."""
    return math.inf if estimate == 0 else (high - low) / 2 / abs(estimate)


def precision(
    values: Sequence[float], *, statistic: str, target: float, confidence: float = CONFIDENCE
) -> Precision:
    """The :class:`Precision` of the median of ``values`` (one value per round) against ``target``."""
    estimate, low, high = median_interval(values, confidence=confidence)
    half = relative_half_width(estimate, low, high)
    return Precision(
        statistic=statistic,
        estimate=estimate,
        low=low,
        high=high,
        confidence=confidence,
        rounds=len(values),
        half_width=half,
        target=target,
        reached=len(values) > 1 and half <= target,
    )


def precise(values: Sequence[float], target: float, *, min_rounds: int = 2) -> bool:
    """Whether at least ``min_rounds`` values pin their median within ``target`` (relative half-width)."""
    if len(values) < max(2, min_rounds):
        return False
    estimate, low, high = median_interval(values)
    return relative_half_width(estimate, low, high) <= target


# -- HDR histogram ---------------------------------------------------------------------------------
def histogram(samples_s: Sequence[float]) -> HdrHistogram:
    """An HDR histogram of ``samples_s`` (seconds), recorded in integer nanoseconds."""
    hist = HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_DIGITS)
    for value in samples_s:
        ns = min(max(round(value * 1e9), HDR_LOWEST_NS), HDR_HIGHEST_NS)
        hist.record_value(ns)
    return hist


def hdr_percentile(hist: HdrHistogram, percent: float, *, unit: str) -> float:
    """The ``percent`` percentile (0..100) of ``hist`` in ``unit``."""
    return hist.get_value_at_percentile(percent) / 1e9 * UNIT_SCALE[unit]


def cdf(samples: Sequence[float], *, points: int = 200) -> tuple[tuple[float, float], ...]:
    """At most ``points`` (value, cumulative fraction) pairs of the empirical CDF, for plotting."""
    if not samples:
        raise NoSamplesError("CDF of no samples")
    ordered = sorted(samples)
    n = len(ordered)
    step = max(1, n // points)
    idx = list(range(step - 1, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return tuple((ordered[i], (i + 1) / n) for i in idx)


# -- summaries -------------------------------------------------------------------------------------
def summarize_latency(
    rounds: Sequence[Sequence[float]], *, unit: str = "us", what: str = "latency"
) -> LatencySummary:
    """Summarise per-call latencies given in **seconds**, grouped by round, in ``unit``.

    Raises :class:`NoSamplesError` when there is no sample at all: a benchmark that measured nothing
    is an error, not an empty row.
    """
    if unit not in UNIT_SCALE:
        raise ValueError(f"unknown unit {unit!r}: choose one of {', '.join(UNIT_SCALE)}")
    scale = UNIT_SCALE[unit]
    kept = [list(r) for r in rounds if len(r)]
    flat = [v * scale for r in kept for v in r]
    if not flat:
        raise NoSamplesError(f"{what}: no samples were measured")
    hist = histogram([v for r in kept for v in r])
    medians = tuple(statistics.median(r) * scale for r in kept)
    return LatencySummary(
        unit=unit,
        samples=len(flat),
        rounds=len(kept),
        mean=statistics.fmean(flat),
        stdev=statistics.stdev(flat) if len(flat) > 1 else 0.0,
        min=min(flat),
        median=statistics.median(flat),
        iqr=iqr(flat),
        mad=mad(flat),
        p50=hdr_percentile(hist, 50, unit=unit),
        p90=hdr_percentile(hist, 90, unit=unit),
        p99=hdr_percentile(hist, 99, unit=unit),
        p999=hdr_percentile(hist, 99.9, unit=unit) if len(flat) >= P999_MIN_SAMPLES else None,
        max=max(flat),
        round_medians=medians,
        cv_rounds=coefficient_of_variation(medians),
        hdr=hist.encode().decode("ascii"),
        warning=spread_warning(medians, what=f"{what} (median per round)", unit=unit),
    )


def summarize_throughput(
    rounds: Sequence[tuple[int, float]], *, unit: str = "tasks/s", what: str = "throughput"
) -> ThroughputSummary:
    """Summarise rounds given as ``(count, seconds)`` pairs into rates in ``unit``."""
    rates = tuple(count / seconds for count, seconds in rounds if count > 0 and seconds > 0)
    if not rates:
        raise NoSamplesError(f"{what}: no round completed any work (rounds: {list(rounds)!r})")
    return ThroughputSummary(
        unit=unit,
        samples=sum(count for count, _ in rounds),
        rounds=len(rates),
        median=statistics.median(rates),
        mean=statistics.fmean(rates),
        min=min(rates),
        max=max(rates),
        round_rates=rates,
        cv_rounds=coefficient_of_variation(rates),
        warning=spread_warning(rates, what=what, unit=unit),
    )
