"""pytest-celery's container tier: the seed checks against one worker container per pool.

Loaded only by ``tox -e docker`` (``pytest tests/container -p celery -p docker_tools``): the default
pytest config disables both plugins, and then every test here is skipped with that reason - except the
compose smoke (``test_compose.py``), which needs no plugin and runs wherever an engine and Compose v2
answer. Without a Docker engine every test is skipped with the engine's error (``BENCH_REQUIRE_DOCKER=1``,
set in CI, turns that into a failure).

pytest-celery's fixtures, overridden by redefinition (its layered model; ``celery_setup`` is its own):

``default_redis_broker``   -> pytest-celery's Redis container, as ``ReachableRedisContainer`` (below),
``default_redis_backend``     with ``/data`` on a tmpfs (no anonymous volume is left behind)
``celery_broker_cluster``  -> Redis only (pytest-celery's ``celery_redis_broker`` container)
``celery_backend_cluster`` -> Redis only (``celery_redis_backend``)
``celery_worker_cluster``  -> ``bench_pool_worker``: one container built from the project's Dockerfile
                              running ``celery -A tasks worker --pool=<pool>``, one per ``container_pool``
``celery_setup_app``       -> pytest-celery's app, refused (one line, before any test runs) unless its
                              broker and backend URLs reach the containers' own Redis servers; with
                              ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` removed from this
                              process's environment (Celery would prefer them to the app's settings)

Where the client finds the containers (``reachable.py``): pytest-celery's Redis client URL is
``localhost:<port>`` with the port pytest-docker-tools reports, which inside a container (``/.dockerenv``)
is the container's internal 6379 - i.e. the Redis of the machine running the tests, not the container's.
``ReachableRedisContainer`` gives pytest-celery an address this process actually reaches instead (the
published port on the engine's host, the published port through the network's gateway, or the
container's own address), proven by the server's ``run_id``, so the tier works on a plain host (CI) and in a
dev container alike, and never talks to a broker it did not start.

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
from pytest_celery.vendors.redis.container import RedisContainer
from pytest_celery.vendors.redis.defaults import REDIS_CONTAINER_TIMEOUT
from pytest_celery.vendors.worker.defaults import DEFAULT_WORKER_CONTAINER_TIMEOUT
from pytest_docker_tools import build, container, fxtr

from bench import defaults, pools
from tests.container import reachable
from tests.container.compose import compose_error

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]

REDIS_IMAGE = "redis:7-alpine"
"""Broker and backend image (pytest-celery defaults to ``redis:latest``; pinned as in the compose file)."""

ENGINE_PING_TIMEOUT = 5
"""Seconds the Docker engine has to answer before the tier is skipped."""

LEGACY_FIXTURES = ("celery_worker", "celery_app", "celery_session_worker", "celery_session_app")
"""``celery.contrib.pytest`` fixtures this tier must not use (pytest-celery#442)."""

TIER_HINT = "run it with `tox -e docker` (pytest tests/container -p celery -p docker_tools)"


# -- the broker and backend containers, addressed by what this process reaches -------------------------


class ReachableRedisContainer(RedisContainer):
    """pytest-celery's Redis container; its client URL (``host_url``) is an address proven to reach it."""

    @property
    def reachable(self) -> reachable.Address:
        """Resolved once per start of the container (a restart may publish another port)."""
        started = self.attrs["State"]["StartedAt"]
        cache: dict[str, reachable.Address] = self.__dict__.setdefault("_reachable", {})
        if started not in cache:
            cache.clear()
            cache[started] = reachable.resolve(self)
        return cache[started]

    @property
    def host_url(self) -> str:
        address = self.reachable
        return f"{self.prefix()}{address.host}:{address.port}/{self.vhost}"

    @property
    def port(self) -> int:
        return self.reachable.port


def _redis_container(role: str):  # type: ignore[no-untyped-def]
    """pytest-celery's ``default_redis_<role>`` container with ``ReachableRedisContainer`` as its wrapper."""
    return container(
        image=f"{{default_redis_{role}_image}}",
        ports=fxtr(f"default_redis_{role}_ports"),
        environment=fxtr(f"default_redis_{role}_env"),
        network="{default_pytest_celery_network.name}",
        wrapper_class=ReachableRedisContainer,
        timeout=REDIS_CONTAINER_TIMEOUT,
        command=fxtr(f"default_redis_{role}_command"),
        tmpfs={"/data": ""},  # the image declares VOLUME /data: an anonymous volume per container otherwise
    )


default_redis_broker = _redis_container("broker")
default_redis_backend = _redis_container("backend")


@pytest.fixture(autouse=True)
def no_broker_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery prefers ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` over any app's configuration: set
    in this process (a shell, a dev container's image), they would send pytest-celery's app elsewhere."""
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)


def require_reachable(container: ReachableRedisContainer, role: str) -> None:
    """Fail the test at once, in one line, when this process cannot reach the container's own Redis."""
    try:
        container.reachable  # noqa: B018 - resolving is the check
    except reachable.Unreachable as exc:
        reason = str(exc)
    else:
        return
    pytest.fail(f"container tier: the {role} container: {reason}", pytrace=False)


# -- the worker image and one container class per pool -----------------------------------------------


class BenchWorkerContainer(CeleryWorkerContainer):
    """A worker from the project's image: the seed app (``-A tasks``) on one pool."""

    pool: ClassVar[str] = ""

    @classmethod
    def command(cls, *args: str, **kwargs: object) -> list[str]:
        concurrency = pools.default_concurrency(cls.pool)
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


class GeventWorkerContainer(BenchWorkerContainer):
    pool = "gevent"  # the image installs '.[test]', which includes the green extra


class EventletWorkerContainer(BenchWorkerContainer):
    pool = "eventlet"


WORKER_CONTAINERS: dict[str, type[BenchWorkerContainer]] = {
    c.pool: c
    for c in (
        SoloWorkerContainer,
        PreforkWorkerContainer,
        ThreadsWorkerContainer,
        GeventWorkerContainer,
        EventletWorkerContainer,
    )
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
gevent_worker_container = _worker_container(GeventWorkerContainer)
eventlet_worker_container = _worker_container(EventletWorkerContainer)


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
    require_reachable(celery_redis_broker.container, "broker")
    cluster = CeleryBrokerCluster(celery_redis_broker)
    yield cluster
    cluster.teardown()


@pytest.fixture
def celery_backend_cluster(celery_redis_backend: CeleryTestBackend) -> Iterator[CeleryBackendCluster]:
    require_reachable(celery_redis_backend.container, "result backend")
    cluster = CeleryBackendCluster(celery_redis_backend)
    yield cluster
    cluster.teardown()


@pytest.fixture
def celery_setup_app(
    celery_setup_app: Celery,
    celery_broker_cluster: CeleryBrokerCluster,
    celery_backend_cluster: CeleryBackendCluster,
) -> Celery:
    """pytest-celery's app (this fixture's own name: the plugin's), once its URLs reach the containers."""
    for role, url, cluster in (
        ("broker", celery_setup_app.conf.broker_url, celery_broker_cluster),
        ("result backend", celery_setup_app.conf.result_backend, celery_backend_cluster),
    ):
        try:
            reachable.check_url(url, cluster[0].container)
        except reachable.Unreachable as exc:
            reason = str(exc)
        else:
            continue
        pytest.fail(f"container tier: the client's {role} URL {reason}", pytrace=False)
    return celery_setup_app


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


COMPOSE_TESTS = (HERE / "test_compose.py", HERE / "test_host_faults.py")
"""The compose smoke and the host faults: they need an engine and Compose v2, not pytest-celery (so they
run in the default run)."""


def missing_engine(what: str, *, compose: bool) -> str:
    """Why ``what`` cannot run for want of an engine (or of Compose v2), "" if it can.

    ``BENCH_REQUIRE_DOCKER=1`` (CI) turns a missing engine into a usage error instead of a skip.
    """
    reason = docker_engine_error() or (compose_error() if compose else None)
    if reason and os.environ.get("BENCH_REQUIRE_DOCKER") == "1":
        raise pytest.UsageError(f"BENCH_REQUIRE_DOCKER=1 but {reason}")
    return f"{what}: {reason}; it needs one (`docker info` must work)" if reason else ""


def skip_reason(config: pytest.Config, *, compose: bool) -> str:
    if compose:
        return missing_engine("compose smoke", compose=True)
    if not (config.pluginmanager.has_plugin("celery") and config.pluginmanager.has_plugin("docker_tools")):
        return f"container tier: pytest-celery is disabled by the default config; {TIER_HINT}"
    return missing_engine("container tier", compose=False)


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
    reasons: dict[bool, str] = {}  # is it the compose smoke? -> why it cannot run here ("" if it can)
    for item in mine:
        compose = Path(item.path) in COMPOSE_TESTS
        if compose not in reasons:
            reasons[compose] = skip_reason(config, compose=compose)
        if reasons[compose]:
            item.add_marker(pytest.mark.skip(reason=reasons[compose]))
