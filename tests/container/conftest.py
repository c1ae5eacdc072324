"""pytest-celery's container tier: the seed checks against one worker container per pool.

Loaded only by ``tox -e docker`` (``pytest tests/container -p celery -p docker_tools``): the default
pytest config disables both plugins, and then every test here is skipped with that reason. Without a
Docker engine every test is skipped with the engine's error (``BENCH_REQUIRE_DOCKER=1``, set in CI, turns
that into a failure).

pytest-celery's fixtures, overridden by redefinition (its layered model; ``celery_setup`` is its own):

``celery_broker_cluster``  -> Redis only (pytest-celery's ``celery_redis_broker`` container)
``celery_backend_cluster`` -> Redis only (``celery_redis_backend``)
``celery_worker_cluster``  -> ``bench_pool_worker``: one container built from the project's Dockerfile
                              running ``celery -A tasks worker --pool=<pool>``, one per ``container_pool``

The ``celery_worker`` name clash (pytest-celery#442): with ``-p celery`` both ``celery.contrib.pytest``
(an in-process worker) and pytest-celery (a container) define ``celery_worker``, and which one a test
gets depends on import order. This tier never asks for it: the cluster above does not depend on it, the
tests reach the worker through ``celery_setup.worker``, and collection refuses a test here that requests
``celery_worker`` (or the legacy ``celery_app``/``celery_session_worker`` family) by name.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from celery import Celery
from pytest_celery import (
    CeleryBackendCluster,
    CeleryBrokerCluster,
    CeleryTestBackend,
    CeleryTestBroker,
    CeleryTestWorker,
    CeleryWorkerCluster,
    CeleryWorkerContainer,
)
from pytest_celery.vendors.worker.defaults import DEFAULT_WORKER_CONTAINER_TIMEOUT
from pytest_docker_tools import build, container, fxtr

from bench import defaults

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]

REDIS_IMAGE = "redis:7-alpine"
"""Broker and backend image (pytest-celery defaults to ``redis:latest``; pinned as in the compose file)."""

ENGINE_PING_TIMEOUT = 5
"""Seconds the Docker engine has to answer before the tier is skipped."""

LEGACY_FIXTURES = ("celery_worker", "celery_app", "celery_session_worker", "celery_session_app")
"""``celery.contrib.pytest`` fixtures this tier must not use (pytest-celery#442)."""

TIER_HINT = "run it with `tox -e docker` (pytest tests/container -p celery -p docker_tools)"


# -- the worker image and one container class per pool -----------------------------------------------


class BenchWorkerContainer(CeleryWorkerContainer):
    """A worker from the project's image: the seed app (``-A tasks``) on one pool."""

    pool: ClassVar[str] = ""

    @classmethod
    def command(cls, *args: str, **kwargs: object) -> list[str]:
        concurrency = 1 if cls.pool == "solo" else defaults.WORKER_CONCURRENCY
        return [
            "celery", "-A", "tasks", "worker",
            f"--pool={cls.pool}",
            f"--concurrency={concurrency}",
            f"--hostname={cls.worker_name()}@%h",
            f"--queues={cls.worker_queue()}",
            f"--loglevel={cls.log_level()}",
            "--without-gossip", "--without-mingle",
            *args,
        ]  # fmt: skip

    @classmethod
    def worker_name(cls) -> str:
        return f"bench_{cls.pool}"


class SoloWorkerContainer(BenchWorkerContainer):
    pool = "solo"


class PreforkWorkerContainer(BenchWorkerContainer):
    pool = "prefork"


class ThreadsWorkerContainer(BenchWorkerContainer):
    pool = "threads"


WORKER_CONTAINERS: dict[str, type[BenchWorkerContainer]] = {
    c.pool: c for c in (SoloWorkerContainer, PreforkWorkerContainer, ThreadsWorkerContainer)
}

bench_worker_image = build(path=str(PROJECT_ROOT), tag="celery-bench/worker:container-tier")


def _worker_container(cls: type[BenchWorkerContainer]):  # type: ignore[no-untyped-def]
    return container(
        image="{bench_worker_image.id}",
        environment=fxtr("default_worker_env"),  # CELERY_BROKER_URL / CELERY_RESULT_BACKEND: the env contract
        network="{default_pytest_celery_network.name}",
        wrapper_class=cls,
        timeout=DEFAULT_WORKER_CONTAINER_TIMEOUT,
        command=cls.command(),
    )


solo_worker_container = _worker_container(SoloWorkerContainer)
prefork_worker_container = _worker_container(PreforkWorkerContainer)
threads_worker_container = _worker_container(ThreadsWorkerContainer)


# -- pytest-celery's layers, overridden -----------------------------------------------------------------


def container_pools(config: pytest.Config) -> list[str]:
    """``--pool`` if given (the containers run Linux, so every pool exists there), else all of them."""
    return list(dict.fromkeys(config.getoption("pool") or defaults.POOLS_ALL))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "container_pool" in metafunc.fixturenames:
        metafunc.parametrize("container_pool", container_pools(metafunc.config))


@pytest.fixture
def default_redis_broker_image() -> str:
    return REDIS_IMAGE


@pytest.fixture
def default_redis_backend_image() -> str:
    return REDIS_IMAGE


@pytest.fixture
def celery_broker_cluster(celery_redis_broker: CeleryTestBroker) -> Iterator[CeleryBrokerCluster]:
    cluster = CeleryBrokerCluster(celery_redis_broker)
    yield cluster
    cluster.teardown()


@pytest.fixture
def celery_backend_cluster(celery_redis_backend: CeleryTestBackend) -> Iterator[CeleryBackendCluster]:
    cluster = CeleryBackendCluster(celery_redis_backend)
    yield cluster
    cluster.teardown()


@pytest.fixture
def bench_pool_worker(
    container_pool: str, request: pytest.FixtureRequest, celery_setup_app: Celery
) -> Iterator[CeleryTestWorker]:
    """The worker container of ``container_pool``, as a pytest-celery node."""
    worker_container = request.getfixturevalue(f"{container_pool}_worker_container")
    worker = CeleryTestWorker(worker_container, app=celery_setup_app)
    yield worker
    worker.teardown()


@pytest.fixture
def celery_worker_cluster(bench_pool_worker: CeleryTestWorker) -> Iterator[CeleryWorkerCluster]:
    cluster = CeleryWorkerCluster(bench_pool_worker)
    yield cluster
    cluster.teardown()


# -- when the tier cannot run ---------------------------------------------------------------------------


def docker_engine_error() -> str | None:
    """None if a Docker engine answers, else why not (one line)."""
    error = None
    with warnings.catch_warnings():
        # A client that never connected leaves its socket to the garbage collector; collect it here,
        # where its ResourceWarning is expected, not in whichever test runs next.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=ENGINE_PING_TIMEOUT)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - any failure means "no engine here", reported verbatim
            where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            error = f"no Docker engine answers at {where}: {first_line}"
        gc.collect()
    return error


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(item.path).parents]
    if not mine:
        return
    for item in mine:
        legacy = sorted(set(LEGACY_FIXTURES) & set(getattr(item, "fixturenames", ())))
        if legacy:
            raise pytest.UsageError(
                f"{item.nodeid} requests {', '.join(legacy)}: with -p celery that name is both "
                "celery.contrib.pytest's and pytest-celery's (pytest-celery#442); use celery_setup "
                "(celery_setup.worker, celery_setup.app) instead"
            )
    if not (config.pluginmanager.has_plugin("celery") and config.pluginmanager.has_plugin("docker_tools")):
        reason = f"container tier: pytest-celery is disabled by the default config; {TIER_HINT}"
    else:
        reason = docker_engine_error() or ""
        if reason and os.environ.get("BENCH_REQUIRE_DOCKER") == "1":
            raise pytest.UsageError(f"BENCH_REQUIRE_DOCKER=1 but {reason}")
        if reason:
            reason = f"container tier: {reason}; it needs one (`docker info` must work)"
    if reason:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))
