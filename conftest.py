"""Binds the harness's pytest plugin to the Celery app under test (``tasks``).

``bench`` never imports ``tasks``; this file is where the two meet. The ``bench_app`` fixture points the
test process's ``tasks.app`` at the session's broker, so ``add.delay(...)`` in a test goes where the
workers listen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from celery import Celery

from bench.broker import Broker
from bench.brokers import BrokerHandle
from bench.worker import Worker

pytest_plugins = ["bench.pytest_plugin", "tests.properties.profiles"]

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def bench_app(bench_broker: Broker | BrokerHandle, bench_backend: Broker) -> Iterator[Celery]:
    """``tasks.app`` configured for the session's broker (the current broker kind) and result backend."""
    # Celery prefers these variables over any app's configuration: left set (e.g. by a user's shell) they
    # would send this process's apps to another broker. Children get the session broker explicitly.
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        os.environ.pop(name, None)
    import tasks

    tasks.app.conf.broker_url = bench_broker.url
    tasks.app.conf.result_backend = bench_backend.url
    yield tasks.app
    forget_connections(tasks.app)


def forget_connections(app: Celery) -> None:
    """Drop ``app``'s broker connection pool *and* its producer pool, so the next broker kind of the
    session gets new ones. ``Celery.close()`` drops only the first (celery 5.x): its producer pool, keyed
    on a connection to the previous broker, would go on publishing there."""
    app.close()
    if "amqp" in app.__dict__:  # a cached_property: only there once something published
        app.amqp._producer_pool = None


@pytest.fixture
def app(bench_app: Celery, pool_worker: Worker) -> Celery:
    """The app, with the current pool's worker running and ready."""
    return bench_app


@pytest.fixture
def worker(pool_worker: Worker) -> Worker:
    return pool_worker
