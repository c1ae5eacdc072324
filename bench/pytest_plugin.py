"""pytest options and fixtures of the harness (registered by the repository's ``conftest.py``).

Layers, each a fixture a test suite may override by redefining it:

``bench_broker_url_option`` -> ``bench_broker`` (session: a private Redis, or ``--broker-url``)
-> ``pool`` (session-scoped parameter: one value per selected pool, set in one place below)
-> ``pool_worker`` (session per pool: one real worker, reused by every test of that pool)
-> ``make_worker`` (per test: extra workers, e.g. ``-Q add_queue``, stopped after the test).

pytest finishes a session-scoped parametrised fixture before it sets up the next parameter, so the
pool workers run one at a time and a task sent by a ``solo`` test can only be consumed by the ``solo``
worker (the tests check it through the executing node's name).
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench import config as bench_config_module
from bench import defaults, pools, procs, stale
from bench.broker import Broker, BrokerError, from_option
from bench.procs import raise_on_sigterm
from bench.worker import Beat, Worker


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("celery-bench", "Celery verification harness")
    group.addoption(
        "--pool",
        action="append",
        default=None,
        metavar="NAME",
        help=f"worker pool to test (repeatable; one of {', '.join(defaults.POOLS_ALL)}); "
        "default: every pool this platform supports",
    )
    group.addoption(
        "--broker-url",
        default=os.environ.get("BENCH_BROKER_URL") or None,
        metavar="URL",
        help="use this Redis instead of starting a private one (never flushed or stopped); "
        "env BENCH_BROKER_URL",
    )
    group.addoption(
        "--app",
        dest="bench_app",
        default=None,
        metavar="MODULE[:ATTR]",
        help=f"the Celery app the workers run (default: the seed's {bench_config_module.DEFAULT_APP}); "
        "tests written for the seed app are skipped under another",
    )
    group.addoption(
        "--set",
        dest="bench_sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Celery setting for the workers (repeatable; VALUE as JSON or a Python literal)",
    )


def runs_parallel_by_default(config: pytest.Config) -> bool:
    """Whether this run gets ``defaults.TEST_WORKERS`` pytest-xdist workers though it asked for none.

    Not where the user chose (``-n``, ``--dist``; ``-n 0`` is serial) or xdist is absent (``-p no:xdist``),
    not in an xdist worker itself, not for ``--pdb``/``--trace``/``--collect-only``, not with
    ``--broker-url`` (one broker cannot be shared by xdist workers, see ``pytest_configure``), and not
    for benchmarks (pytest-benchmark disables itself under xdist)."""
    option = config.option
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return False
    if option.numprocesses is not None or option.dist != "no":
        return False
    if option.usepdb or option.trace or option.collectonly or option.broker_url:
        return False
    benchmarks = getattr(option, "benchmark_only", False) or not getattr(option, "benchmark_skip", True)
    return not benchmarks


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on ``defaults.TEST_WORKERS`` pytest-xdist workers unless told otherwise (see above).

    Set here, not as ``-n`` in ``addopts``, so that ``-p no:xdist`` still works (an ``-n`` would then be an
    unknown option). Runs before xdist's own hook, which reads the option: both are ``tryfirst``, and
    this plugin is registered after xdist (by the repository's ``conftest.py``)."""
    if runs_parallel_by_default(config):
        config.option.numprocesses = defaults.TEST_WORKERS
        config.option.dist = "worksteal"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pools(*names): run this test only on these pools")
    config.addinivalue_line("markers", "any_app: runs under any --app (not only the seed's tasks)")
    raise_on_sigterm()
    try:
        config._bench_pools = pools.select(config.getoption("pool"))  # type: ignore[attr-defined]
    except ValueError as exc:
        raise pytest.UsageError(f"--pool: {exc}") from None
    try:
        config._bench_config = bench_config_module.build(  # type: ignore[attr-defined]
            config.getoption("bench_app"), config.getoption("bench_sets")
        )
    except bench_config_module.ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None

    if config.getoption("broker_url") and getattr(config.option, "numprocesses", None):
        # Each xdist worker is a session with pool workers of its own: on one shared broker they would
        # consume each other's tasks. A private broker per xdist worker is what keeps them apart.
        raise pytest.UsageError(
            "--broker-url cannot be shared by pytest-xdist workers (their pool workers would take each "
            "other's tasks): add -n 0, or drop --broker-url to give each xdist worker a private Redis"
        )


SEED_WORKER_FIXTURES = ("pool_worker", "make_worker", "make_beat")
"""Fixtures that start workers of the app under test: a test using one is written for the seed app
(it sends the seed's tasks) unless it is marked ``any_app``."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--app`` other than the seed's, skip the tests written for the seed app."""
    configured: bench_config_module.Config = config._bench_config  # type: ignore[attr-defined]
    if configured.app == bench_config_module.DEFAULT_APP:
        return
    skip = pytest.mark.skip(
        reason=f"written for the seed app ({bench_config_module.DEFAULT_APP}); --app is {configured.app}"
    )
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if uses.intersection(SEED_WORKER_FIXTURES) and item.get_closest_marker("any_app") is None:
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Mark this session's children with its run id and owner, and remove what killed runs left."""
    worker = getattr(session.config, "workerinput", {}).get("workerid")
    if worker:  # a pytest-xdist worker: a run id inside the controller's; its controller cleaned up
        base = os.environ.get(defaults.RUN_MARKER_ENV) or uuid.uuid4().hex[:12]
        os.environ[defaults.RUN_MARKER_ENV] = base if base.endswith(f".{worker}") else f"{base}.{worker}"
        procs.run_id()
        return
    procs.run_id()
    line = stale.summary(stale.clean())
    if line:
        capture = session.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            sys.stderr.write(f"bench: {line}\n")
            sys.stderr.flush()


def selected_pools(config: pytest.Config) -> list[str]:
    return list(config._bench_pools)  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The one place where tests are parametrised over pools."""
    if "pool" not in metafunc.fixturenames:
        return
    chosen = selected_pools(metafunc.config)
    marker = metafunc.definition.get_closest_marker("pools")
    if marker is not None:
        chosen = [p for p in chosen if p in marker.args]
    if not chosen:
        # An empty parametrisation would silently run nothing: make it a visible skip instead.
        metafunc.parametrize(
            "pool",
            [
                pytest.param(
                    None,
                    marks=pytest.mark.skip(
                        reason=f"none of the selected pools {selected_pools(metafunc.config)} applies"
                    ),
                )
            ],
            scope="session",
        )
        return
    metafunc.parametrize("pool", chosen, scope="session")


@pytest.fixture(scope="session")
def bench_run_id() -> str:
    """This session's run id (children carry it in ``CELERY_BENCH_RUN`` for leak checks).

    Under pytest-xdist each worker is a session of its own (its own broker and pool workers), and its
    run id is ``<run id>.<worker id>`` (set in :func:`pytest_sessionstart`): a leak check inside one
    worker sees only that worker's processes, while ``harness_processes(<run id>)`` from outside still
    finds every worker's."""
    return procs.run_id()


@pytest.fixture(scope="session")
def bench_broker_url_option(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("broker_url")


@pytest.fixture(scope="session")
def bench_broker(bench_broker_url_option: str | None, bench_run_id: str) -> Iterator[Broker]:
    """The broker and result backend of the session: a private Redis unless ``--broker-url``."""
    broker = from_option(bench_broker_url_option)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.exit(str(exc), returncode=2)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def bench_config(request: pytest.FixtureRequest) -> bench_config_module.Config:
    """The configuration under test (``--app``, ``--set``), without a pool."""
    return request.config._bench_config  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="session")
def pool_worker(
    pool: str, bench_broker: Broker, bench_config: bench_config_module.Config
) -> Iterator[Worker]:
    """One real worker for ``pool`` (the configured app and settings), reused by every test of that pool."""
    settings = bench_config.on(pool, None).worker_kwargs()
    worker = Worker(bench_broker.url, **settings, name=f"session-{pool}-{uuid.uuid4().hex[:6]}")
    with worker:
        yield worker


@pytest.fixture
def make_worker(
    bench_broker: Broker, bench_config: bench_config_module.Config
) -> Iterator[Callable[..., Worker]]:
    """Start extra workers for one test (``make_worker(pool=..., queues=[...])``); all are stopped.

    They run the configured app with its ``--set`` settings unless the test says otherwise."""
    started: list[Worker] = []

    def factory(**kwargs: Any) -> Worker:
        kwargs.setdefault("broker_url", bench_broker.url)
        for key, value in bench_config.worker_kwargs().items():
            kwargs.setdefault(key, value)
        worker = Worker(**kwargs)
        started.append(worker)
        return worker.start()

    try:
        yield factory
    finally:
        for worker in reversed(started):
            worker.stop()


@pytest.fixture
def make_beat(bench_broker: Broker) -> Iterator[Callable[..., Beat]]:
    """Start ``celery beat`` for one test; stopped after it."""
    started: list[Beat] = []

    def factory(**kwargs: Any) -> Beat:
        kwargs.setdefault("broker_url", bench_broker.url)
        beat = Beat(**kwargs)
        started.append(beat)
        return beat.start()

    try:
        yield factory
    finally:
        for beat in started:
            beat.stop()


@pytest.fixture
def unique_key() -> Callable[[str], str]:
    """Keys no other test or example can produce: ``unique_key('retries')``."""
    base = f"t:{uuid.uuid4().hex[:12]}"

    def make(label: str = "") -> str:
        return f"{base}:{label}:{uuid.uuid4().hex[:8]}"

    return make
