"""bench.stats against known inputs: no server, no wall time."""

from __future__ import annotations

import math
import statistics

import pytest
from hdrh.histogram import HdrHistogram

from bench import stats


def test_quantile_interpolates_linearly():
    values = [4.0, 1.0, 3.0, 2.0]
    assert stats.quantile(values, 0.0) == 1.0
    assert stats.quantile(values, 0.25) == 1.75
    assert stats.quantile(values, 0.5) == 2.5
    assert stats.quantile(values, 1.0) == 4.0


def test_quantile_rejects_nonsense():
    with pytest.raises(stats.NoSamplesError):
        stats.quantile([], 0.5)
    with pytest.raises(ValueError, match="outside 0..1"):
        stats.quantile([1.0], 1.5)


def test_iqr_and_mad_known_values():
    assert stats.iqr([1.0, 2.0, 3.0, 4.0]) == 1.5
    # The textbook example: median 2, absolute deviations 1 1 0 0 2 4 7 -> MAD 1.
    assert stats.mad([1, 1, 2, 2, 4, 6, 9]) == 1


def test_coefficient_of_variation():
    assert stats.coefficient_of_variation([10.0, 12.0, 14.0]) == pytest.approx(2.0 / 12.0)
    assert stats.coefficient_of_variation([5.0]) is None
    assert stats.coefficient_of_variation([0.0, 0.0]) is None


def test_spread_warning_follows_pyperfs_ten_percent():
    assert stats.spread_warning([99.0, 101.0], what="x", unit="us") is None  # cv 1.4%
    warning = stats.spread_warning([9.0, 11.0], what="enqueue", unit="us")  # cv 14%
    assert warning is not None and "enqueue" in warning and "14%" in warning and ">= 10%" in warning
    # Just below and at the threshold: stdev/mean for [a, b] is |a-b| / (sqrt(2) * mean).
    below = 0.0999 * math.sqrt(2) * 100
    assert stats.spread_warning([100 - below / 2, 100 + below / 2], what="x", unit="us") is None
    at = 0.1001 * math.sqrt(2) * 100
    assert stats.spread_warning([100 - at / 2, 100 + at / 2], what="x", unit="us") is not None


def test_ratio():
    assert stats.ratio(6.0, 2.0) == 3.0
    assert stats.ratio(1.0, 0.0) is None


def test_latency_summary_of_known_samples():
    # 1..1000 microseconds, given in seconds, in two rounds.
    first = [i * 1e-6 for i in range(1, 501)]
    second = [i * 1e-6 for i in range(501, 1001)]
    s = stats.summarize_latency([first, second], unit="us", what="known")
    assert s.samples == 1000 and s.rounds == 2 and s.unit == "us"
    assert s.median == pytest.approx(500.5)
    assert s.mean == pytest.approx(500.5)
    assert s.min == pytest.approx(1.0) and s.max == pytest.approx(1000.0)
    assert s.iqr == pytest.approx(499.5)
    assert s.mad == pytest.approx(250.0)
    # HDR percentiles keep 3 significant digits.
    for got, want in ((s.p50, 500), (s.p90, 900), (s.p99, 990), (s.p999, 999)):
        assert got == pytest.approx(want, rel=2e-3)
    assert s.round_medians == pytest.approx((250.5, 750.5))
    assert s.cv_rounds == pytest.approx(statistics.stdev([250.5, 750.5]) / 500.5)
    assert s.warning is not None  # the two rounds differ by a factor of three
    decoded = HdrHistogram.decode(s.hdr.encode())
    assert decoded.get_total_count() == 1000


def test_p999_is_left_out_below_a_thousand_samples():
    # With 999 samples the 99.9th percentile is the maximum: the summary does not pretend otherwise.
    below = stats.summarize_latency([[i * 1e-6 for i in range(1, 1000)]], unit="us")
    assert below.samples == 999 and below.p999 is None and below.max == pytest.approx(999.0)
    at = stats.summarize_latency([[i * 1e-6 for i in range(1, 1001)]], unit="us")
    assert at.p999 == pytest.approx(999, rel=2e-3)


def test_paired_difference_brackets_a_known_shift():
    # Every A block is 10% longer than its B block, give or take 2%: the interval holds 10% and is narrow.
    b = [1.0 + 0.01 * (i % 7) for i in range(40)]
    a = [x * (1.10 + 0.02 * ((-1) ** i)) for i, x in enumerate(b)]
    d = stats.paired_difference(a, b)
    assert d.pairs == 40 and d.confidence == stats.CONFIDENCE
    assert d.low <= 0.10 <= d.high and d.low <= d.median <= d.high
    assert d.high - d.low <= 0.04 + 1e-9
    assert stats.paired_difference(a, b) == d  # a fixed seed: the same blocks, the same interval


def test_paired_difference_interval_widens_with_noise_and_holds_zero():
    # No true difference, +-20% noise between pairs: the median says little, the interval says so.
    b = [1.0] * 30
    a = [1.0 + 0.2 * ((-1) ** i) * (i % 5) / 4 for i in range(30)]
    d = stats.paired_difference(a, b)
    assert d.low < 0.0 < d.high or d.median == 0.0
    assert d.high - d.low > 0.04  # wider than a 2% target on each side: the check cannot bound it


def test_paired_difference_rejects_unpaired_or_empty_blocks():
    with pytest.raises(ValueError, match="differ in number"):
        stats.paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(stats.NoSamplesError):
        stats.paired_difference([], [])


def test_latency_summary_units():
    s = stats.summarize_latency([[0.002, 0.004, 0.006]], unit="ms")
    assert s.median == pytest.approx(4.0) and s.max == pytest.approx(6.0)
    assert s.rounds == 1 and s.cv_rounds is None and s.warning is None
    with pytest.raises(ValueError, match="unknown unit"):
        stats.summarize_latency([[1.0]], unit="fortnights")


def test_no_samples_is_an_error():
    with pytest.raises(stats.NoSamplesError, match="nothing: no samples"):
        stats.summarize_latency([[], []], what="nothing")
    with pytest.raises(stats.NoSamplesError, match="no round completed"):
        stats.summarize_throughput([(0, 1.0)], what="drain")


def test_throughput_summary_of_known_rounds():
    t = stats.summarize_throughput([(100, 0.5), (100, 1.0), (300, 2.0)], what="drain")
    assert t.round_rates == (200.0, 100.0, 150.0)
    assert t.median == 150.0 and t.min == 100.0 and t.max == 200.0
    assert t.samples == 500 and t.rounds == 3 and t.unit == "tasks/s"
    assert t.cv_rounds == pytest.approx(50.0 / 150.0)
    assert t.warning is not None and "drain" in t.warning
    steady = stats.summarize_throughput([(1000, 1.0), (1010, 1.0)])
    assert steady.warning is None


def test_cdf_points():
    points = stats.cdf([3.0, 1.0, 2.0, 4.0], points=10)
    assert points == ((1.0, 0.25), (2.0, 0.5), (3.0, 0.75), (4.0, 1.0))
    thinned = stats.cdf([float(i) for i in range(1000)], points=10)
    assert len(thinned) == 10 and thinned[-1] == (999.0, 1.0)
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in zip(thinned, thinned[1:], strict=False))


def test_summaries_are_immutable():
    s = stats.summarize_latency([[0.001]])
    with pytest.raises(AttributeError):
        s.median = 0.0  # type: ignore[misc]
