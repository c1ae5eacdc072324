"""Fixtures of the fault tier: a broker the faults may restart, and a leak check after every scenario."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterator

import psutil
import pytest

from bench.broker import Broker, BrokerError, find_redis_server, from_option
from bench.procs import harness_processes


def require_redis_server() -> None:
    """Skip the test (clear reason) where the harness cannot start a private ``redis-server``."""
    if sys.platform == "win32":
        pytest.skip("needs a private redis-server, which the harness does not run on Windows")
    try:
        find_redis_server()
    except BrokerError as exc:
        pytest.skip(f"needs a private redis-server: {exc}")


@pytest.fixture
def redis_server() -> None:
    """For tests that start their own ``private_redis()``: skipped where none can run."""
    require_redis_server()


@pytest.fixture(scope="module")
def fault_broker(bench_broker_url_option: str | None, bench_run_id: str) -> Iterator[Broker]:
    """A private Redis with append-only persistence (restartable), or the user's ``--broker-url``."""
    if not bench_broker_url_option:
        require_redis_server()
    broker = from_option(bench_broker_url_option, appendonly=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def harness_pids(run_id: str) -> set[int]:
    """Pids of the live processes carrying this run's marker (a leak check's baseline)."""
    return {p.pid for p in harness_processes(run_id)}


def assert_no_leaks(
    run_id: str, broker: Broker, *, before: Collection[int], started: Collection[int]
) -> None:
    """None of ``started`` is alive, nor any harness process of this run but the broker not in ``before``."""
    alive = [pid for pid in started if psutil.pid_exists(pid) and _running(pid)]
    assert not alive, f"processes left behind by the scenario: {alive}"
    broker_pid = broker.process.pid if broker.process is not None else None
    stray = [p for p in harness_processes(run_id) if p.pid not in before and p.pid != broker_pid]
    assert not stray, f"harness processes left behind: {[(p.pid, p.name()) for p in stray]}"


@pytest.fixture
def no_leaks(bench_run_id: str, fault_broker: Broker) -> Iterator[list[int]]:
    """Collects the pids a scenario started; after the test, none of them (nor any new harness
    process of this run) may still be alive."""
    before = harness_pids(bench_run_id)
    started: list[int] = []
    yield started
    assert_no_leaks(bench_run_id, fault_broker, before=before, started=started)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
