"""The pieces the worker properties rely on, checked without a worker: the JSON serializer carries
integers of any size the properties draw, and the backoff model is Celery's own formula."""

from __future__ import annotations

import sys

import pytest
from celery.utils.time import get_exponential_backoff_interval
from hypothesis import given
from hypothesis import strategies as st
from kombu.utils.json import dumps, loads

from . import model
from .strategies import BEYOND_64_BITS

pytestmark = pytest.mark.properties

DIGITS_LIMIT = sys.get_int_max_str_digits()
"""CPython's limit on int <-> str conversion (4300 digits by default; 0 means unlimited)."""


@given(st.integers() | st.sampled_from(BEYOND_64_BITS) | st.integers(min_value=2**200, max_value=2**2000))
def test_kombu_json_round_trips_big_integers(n):
    assert loads(dumps({"args": [n, -n]})) == {"args": [n, -n]}


@pytest.mark.skipif(DIGITS_LIMIT == 0, reason="int <-> str conversion limit disabled")
def test_integers_past_the_digit_limit_cannot_be_sent():
    # Not a Celery defect: CPython refuses to turn such an int into a decimal string (documented in
    # docs/properties.md); the properties stay well below it (products of a few ~100-bit values).
    with pytest.raises(ValueError, match="integer string conversion"):
        dumps(10**DIGITS_LIMIT)


@given(
    factor=st.integers(min_value=1, max_value=60),
    maximum=st.integers(min_value=1, max_value=3600),
    retries=st.integers(min_value=0, max_value=30),
)
def test_backoff_model_is_celerys_formula(factor, maximum, retries):
    expected = model.backoff_bound(factor, maximum, retries)
    assert get_exponential_backoff_interval(factor, retries, maximum, full_jitter=False) == expected
    assert 0 <= get_exponential_backoff_interval(factor, retries, maximum, full_jitter=True) <= expected


@given(fail_times=st.integers(0, 6), max_retries=st.integers(0, 5))
def test_autoretry_model_agrees_with_the_retry_model_on_flaky_plans(fail_times, max_retries):
    # A plan of only "flaky" failures is the plain retry case: k failures, m retries.
    outcome = model.autoretry_outcome(["flaky"] * fail_times, max_retries)
    assert outcome == model.retry_outcome(fail_times, max_retries)
