"""Retries as the seed writes them: ``self.retry(exc=...)`` and ``autoretry_for`` with ``max_retries``."""

from __future__ import annotations

import pytest
from celery import states

from bench import defaults
from tasks import ledger
from tasks.behaviour import PermanentError, TransientError, autoretry_until, retry_until

pytestmark = pytest.mark.integration
RESULT = defaults.RESULT_TIMEOUT


def _executions(key: str) -> int:
    return int(ledger.client().llen(key))


def test_self_retry_reaches_success(app, unique_key):
    key = unique_key("retry")
    res = retry_until.delay(key, fail_times=2, max_retries=3, countdown=0.1)
    assert res.get(timeout=RESULT) == {"attempts": 3, "retries": 2}
    assert res.state == states.SUCCESS
    assert _executions(key) == 3


def test_self_retry_fails_after_max_retries(app, unique_key):
    key = unique_key("retry")
    res = retry_until.delay(key, fail_times=10, max_retries=2, countdown=0.1)
    with pytest.raises(TransientError):
        res.get(timeout=RESULT)
    assert res.state == states.FAILURE
    assert isinstance(res.get(timeout=RESULT, propagate=False), TransientError)
    assert _executions(key) == 3  # the first run and max_retries=2 retries


def test_autoretry_reaches_success(app, unique_key):
    key = unique_key("auto")
    assert autoretry_until.delay(key, fail_times=2).get(timeout=RESULT) == 3
    assert _executions(key) == 3


def test_autoretry_fails_after_max_retries(app, unique_key):
    key = unique_key("auto")
    res = autoretry_until.delay(key, fail_times=100)
    with pytest.raises(TransientError):
        res.get(timeout=RESULT)
    assert _executions(key) == 4  # retry_kwargs={'max_retries': 3}


def test_autoretry_ignores_other_exceptions(app, unique_key):
    key = unique_key("auto")
    res = autoretry_until.delay(key, fail_times=1, error="permanent")
    with pytest.raises(PermanentError):
        res.get(timeout=RESULT)
    assert _executions(key) == 1
