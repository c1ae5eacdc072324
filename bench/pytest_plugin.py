"""pytest options and fixtures of the harness (registered by the repository's ``conftest.py``).

Layers, each a fixture a test suite may override by redefining it:

``bench_backend`` (session: a private Redis, the result backend, or a ``--broker-url redis://``)
-> ``broker_kind`` (session-scoped parameter: one value per selected broker kind, set below)
-> ``bench_broker`` (session per kind: the backend's Redis itself for ``redis``, a private RabbitMQ node
   for ``rabbitmq``, or the user's ``--broker-url``)
-> ``pool`` (session-scoped parameter: one value per selected pool, set in one place below)
-> ``pool_worker`` (session per broker x pool: one real worker, reused by every test of that cell)
-> ``make_worker`` (per test: extra workers, e.g. ``-Q add_queue``, stopped after the test).

Test ids name both axes, broker first: ``test_chain[rabbitmq-prefork]``. The result backend is always
Redis; the broker is the axis. pytest finishes a session-scoped parametrised fixture before it sets up
the next parameter, so the pool workers run one at a time and a task sent by a ``solo`` test can only be
consumed by the ``solo`` worker (the tests check it through the executing node's name).
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench import brokers, defaults, pools, procs, stale
from bench import config as bench_config_module
from bench.broker import Broker, BrokerError, from_option
from bench.brokers import BrokerHandle
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
        "--broker",
        dest="bench_brokers",
        action="append",
        default=None,
        metavar="KIND",
        help=f"broker to test on (repeatable; one of {', '.join(brokers.KINDS)}); default: every broker "
        "this machine can start (the result backend is a private Redis either way)",
    )
    group.addoption(
        "--broker-url",
        default=os.environ.get("BENCH_BROKER_URL") or None,
        metavar="URL",
        help="use this broker (redis:// or amqp://) instead of starting a private one (never flushed or "
        "stopped); a redis:// URL is the result backend too; env BENCH_BROKER_URL",
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
    config.addinivalue_line("markers", "pools(*names, reason=None): run this test only on these pools")
    config.addinivalue_line(
        "markers",
        "brokers(*kinds, reason=None): run this test only on these broker kinds (the skip says why)",
    )
    config.addinivalue_line("markers", "any_app: runs under any --app (not only the seed's tasks)")
    config.addinivalue_line(
        "markers", "green_on_rabbitmq: a fault test characterised for gevent and eventlet on RabbitMQ too"
    )
    raise_on_sigterm()
    try:
        config._bench_pools = pools.select(config.getoption("pool"))  # type: ignore[attr-defined]
    except ValueError as exc:
        raise pytest.UsageError(f"--pool: {exc}") from None
    try:
        config._bench_brokers = select_brokers(  # type: ignore[attr-defined]
            config.getoption("bench_brokers"), config.getoption("broker_url")
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
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


def select_brokers(
    requested: list[str] | None,
    broker_url: str | None,
    support: Callable[[str], brokers.BrokerSupport] = brokers.support,
) -> list[str]:
    """The broker kinds of this run: ``--broker`` (validated), the kind of ``--broker-url``, or every kind
    this machine can start. Raises ``ValueError`` with one line naming the option and the fix.

    With nothing requested and no broker startable here, it is ``["redis"]``: a session that needs no
    broker (the unit tier) still runs, and one that does stops at ``bench_backend`` with the reason."""
    if broker_url:
        try:
            kind = brokers.kind_of_url(broker_url)
        except BrokerError as exc:
            raise ValueError(f"--broker-url: {exc}") from None
        if requested and set(requested) != {kind}:
            asked = ", ".join(requested)
            raise ValueError(f"--broker-url is a {kind} URL but --broker asks for {asked}: give one of them")
        return [kind]
    if not requested:
        return [k for k in brokers.KINDS if support(k).available] or ["redis"]
    chosen: list[str] = []
    for kind in requested:
        try:
            info = support(kind)
        except ValueError as exc:  # an unknown kind
            raise ValueError(f"--broker: {exc}") from None
        if not info.available:
            raise ValueError(f"--broker: {kind} is unavailable here: {info.reason}")
        chosen.extend([kind] if kind not in chosen else [])
    return chosen


def selected_pools(config: pytest.Config) -> list[str]:
    return list(config._bench_pools)  # type: ignore[attr-defined]


def selected_brokers(config: pytest.Config) -> list[str]:
    return list(config._bench_brokers)  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The one place where tests are parametrised over broker kinds and pools (ids ``redis-solo``)."""
    axes = (("broker_kind", "brokers", selected_brokers), ("pool", "pools", selected_pools))
    for argname, marker_name, selected in axes:
        if argname in metafunc.fixturenames:
            _parametrize_axis(metafunc, argname, selected(metafunc.config), marker_name)


def _parametrize_axis(metafunc: pytest.Metafunc, argname: str, selected: list[str], marker_name: str) -> None:
    marker = metafunc.definition.get_closest_marker(marker_name)
    applies = list(marker.args) if marker is not None else selected
    chosen = [value for value in selected if value in applies]
    if not chosen:
        # An empty parametrisation would silently run nothing: make it a visible skip instead.
        why = marker.kwargs.get("reason") if marker is not None else None
        reason = f"none of the selected {marker_name} {selected} applies (this test: {applies}"
        reason += f": {why})" if why else ")"
        skip = pytest.param(None, marks=pytest.mark.skip(reason=reason), id=f"no-{argname}")
        metafunc.parametrize(argname, [skip], scope="session")
        return
    metafunc.parametrize(argname, chosen, scope="session")


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
def bench_backend(bench_broker_url_option: str | None, bench_run_id: str) -> Iterator[Broker]:
    """The session's result backend (and the ledger's store): a private Redis, or ``--broker-url`` when
    that is a Redis (then it is the broker too, as a user's single Redis would be)."""
    url = bench_broker_url_option
    broker = from_option(url if url and brokers.kind_of_url(url) == "redis" else None)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.exit(str(exc), returncode=2)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def bench_broker(
    broker_kind: str, bench_backend: Broker, bench_broker_url_option: str | None
) -> Iterator[Broker | BrokerHandle]:
    """The session's broker of ``broker_kind``: for ``redis`` the backend's Redis itself (one server, as
    most deployments run it), for ``rabbitmq`` a private node (or the user's ``--broker-url amqp://``)."""
    if broker_kind == "redis":
        yield bench_backend
        return
    url = bench_broker_url_option
    handle = brokers.external(url) if url else brokers.private(broker_kind)
    try:
        handle.start()
    except BrokerError as exc:
        pytest.exit(f"{broker_kind}: {exc}", returncode=2)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def bench_config(request: pytest.FixtureRequest) -> bench_config_module.Config:
    """The configuration under test (``--app``, ``--set``), without a pool."""
    return request.config._bench_config  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="session")
def pool_worker(
    broker_kind: str,
    pool: str,
    bench_broker: Broker | BrokerHandle,
    bench_backend: Broker,
    bench_config: bench_config_module.Config,
) -> Iterator[Worker]:
    """One real worker for ``pool`` on ``broker_kind`` (the configured app and settings), reused by every
    test of that cell."""
    settings = bench_config.on(pool, None).worker_kwargs()
    name = f"session-{broker_kind}-{pool}-{uuid.uuid4().hex[:6]}"
    worker = Worker(bench_broker.url, **settings, backend_url=bench_backend.url, name=name)
    with worker:
        yield worker


@pytest.fixture
def make_worker(
    bench_broker: Broker | BrokerHandle, bench_backend: Broker, bench_config: bench_config_module.Config
) -> Iterator[Callable[..., Worker]]:
    """Start extra workers for one test (``make_worker(pool=..., queues=[...])``); all are stopped.

    They run the configured app with its ``--set`` settings unless the test says otherwise."""
    started: list[Worker] = []

    def factory(**kwargs: Any) -> Worker:
        kwargs.setdefault("broker_url", bench_broker.url)
        kwargs.setdefault("backend_url", bench_backend.url)
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
def make_beat(bench_broker: Broker | BrokerHandle, bench_backend: Broker) -> Iterator[Callable[..., Beat]]:
    """Start ``celery beat`` for one test; stopped after it."""
    started: list[Beat] = []

    def factory(**kwargs: Any) -> Beat:
        kwargs.setdefault("broker_url", bench_broker.url)
        kwargs.setdefault("backend_url", bench_backend.url)
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
