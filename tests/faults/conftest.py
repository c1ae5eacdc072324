"""Fixtures of the fault tier: a broker the faults may restart, and a leak check after every scenario."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from bench.broker import Broker, BrokerError, from_option
from bench.procs import harness_processes


@pytest.fixture(scope="module")
def fault_broker(bench_broker_url_option: str | None, bench_run_id: str) -> Iterator[Broker]:
    """A private Redis with append-only persistence (restartable), or the user's ``--broker-url``."""
    broker = from_option(bench_broker_url_option, appendonly=True)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def no_leaks(bench_run_id: str, fault_broker: Broker) -> Iterator[list[int]]:
    """Collects the pids a scenario started; after the test, none of them (nor any new harness
    process of this run) may still be alive."""
    before = {p.pid for p in harness_processes(bench_run_id)}
    started: list[int] = []
    yield started
    alive = [pid for pid in started if psutil.pid_exists(pid) and _running(pid)]
    assert not alive, f"processes left behind by the scenario: {alive}"
    broker_pid = fault_broker.process.pid if fault_broker.process is not None else None
    stray = [p for p in harness_processes(bench_run_id) if p.pid not in before and p.pid != broker_pid]
    assert not stray, f"harness processes left behind: {[(p.pid, p.name()) for p in stray]}"


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
