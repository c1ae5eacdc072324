"""A subset of the seed article's checks, run through pytest-celery against a worker container per pool.

The same behaviours as tests/integration/test_seed.py, but the worker is a container built from the
project's Dockerfile, and the broker and backend are pytest-celery's Redis containers. The test side uses
``celery_setup.app`` (pytest-celery's app, pointed at those containers) and names the tasks, as the
harness does, so nothing here reconfigures the ``tasks`` app of this process.
"""

from __future__ import annotations

import pytest
from celery import chain, states
from pytest_celery import RESULT_TIMEOUT, CeleryTestSetup

pytestmark = pytest.mark.container

POOL_MODULES = {
    "solo": "solo",
    "prefork": "prefork",
    "threads": "thread",
    "gevent": "gevent",
    "eventlet": "eventlet",
}
"""The module of each pool's class (``celery.concurrency.<module>:TaskPool``)."""

CONTROL_TIMEOUT = 10.0
"""Seconds a remote-control request waits for the worker's reply."""


def test_the_container_runs_this_pool(celery_setup: CeleryTestSetup, container_pool: str):
    node = celery_setup.worker.hostname()
    stats = celery_setup.app.control.inspect(destination=[node], timeout=CONTROL_TIMEOUT).stats()
    assert stats is not None and node in stats, f"{node} did not answer inspect stats: {stats}"
    module = POOL_MODULES[container_pool]
    assert stats[node]["pool"]["implementation"] == f"celery.concurrency.{module}:TaskPool"
    # ...and that node is the one executing this setup's tasks.
    assert celery_setup.app.signature("tasks.behaviour.where").delay().get(timeout=RESULT_TIMEOUT) == node


def test_add_delay_get(celery_setup: CeleryTestSetup):
    res = celery_setup.app.signature("tasks.add").delay(2, 8)
    assert isinstance(res.id, str) and len(res.id) >= 32
    assert res.get(timeout=RESULT_TIMEOUT) == 10
    assert res.state == states.SUCCESS


def test_chain(celery_setup: CeleryTestSetup):
    app = celery_setup.app
    flow = chain(app.signature("tasks.add", args=(4, 4)), app.signature("tasks.multiply", args=(8,)))
    assert flow().get(timeout=RESULT_TIMEOUT) == 64


def test_bound_task_returns_its_own_id(celery_setup: CeleryTestSetup):
    res = celery_setup.app.signature("tasks.behaviour.task_id").delay()
    assert res.get(timeout=RESULT_TIMEOUT) == res.id
