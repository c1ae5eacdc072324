"""Retries (``self.retry``, ``autoretry_for``, countdowns, exponential backoff, inside a chain), on
every selected pool's real worker."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings

from . import checks, strategies
from .model import Step
from .profiles import FIXTURES_OK, examples
from .strategies import ChainRetryCase, RetryCase
from .target import Target

pytestmark = pytest.mark.properties


def _target(app, worker) -> Target:
    return Target(app=app, node=worker.node)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.retries)
@example(case=RetryCase(fail_times=2, max_retries=2))
@example(case=RetryCase(fail_times=3, max_retries=2))
def test_retry_counts_and_outcome(app, worker, case):
    checks.retry_outcome(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK, max_examples=examples(0.5))
@given(case=strategies.countdowns)
def test_retry_waits_its_countdown(app, worker, case):
    checks.retry_countdown(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.autoretries)
def test_autoretry_retries_only_the_listed_error(app, worker, case):
    checks.autoretry_only_listed(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK, max_examples=examples(0.3))
@given(case=strategies.backoffs)
def test_retry_backoff_intervals(app, worker, case):
    checks.retry_backoff(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.chain_retries)
@example(  # celery#6631's shape: pre-work, then a retried step chained to the rest
    case=ChainRetryCase(
        1, (Step("add", 2),), 10, fail_times=2, tenths=1, after=(Step("multiply", 3),), nested=True
    )
)
def test_chain_continues_after_a_retried_step(app, worker, case):
    checks.retry_inside_chain(_target(app, worker), case)
