"""No secret on any command line: ``ps`` shows every process's argv to every user of the machine.

The private Redis's password reaches the server through a 0600 config file, and the broker URL reaches
workers and beat through their environment. Checked twice: every argv the harness hands to ``exec``
(``subprocess.Popen`` and ``multiprocessing``'s spawn command line, recorded) during a small real run of
the main job, and the ``psutil`` command line of every live child, prefork's pool and ``celery beat``
included.
"""

from __future__ import annotations

import dataclasses
import multiprocessing.spawn
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import psutil
import pytest
import redis

from bench import procs, scenarios
from bench.broker import Broker, private_redis
from bench.procs import harness_processes
from bench.progress import PlannedStep
from bench.worker import Beat, Worker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform.startswith("win"), reason="needs a private redis-server and prefork"),
]

SMALL = dataclasses.replace(
    scenarios.QUICK,
    enqueue_rounds=1,
    enqueue_per_round=20,
    overhead_blocks=4,
    overhead_per_block=10,
    producer_rounds=1,
    producer_per_thread=20,
    drain_rounds=1,
    drain_tasks=20,
    e2e_rate=20.0,
    e2e_seconds=1.0,
)
"""The smallest run of the main job that still starts every kind of child (broker, worker, producers)."""


@pytest.fixture
def exec_argvs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every argv this process hands to ``exec`` while the test runs: ``subprocess.Popen`` (every
    ManagedProcess) and multiprocessing's spawn command line (the producer processes)."""
    seen: list[list[str]] = []

    class Recording(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Sequence[str], *rest: object, **kwargs: object) -> None:
            seen.append([str(a) for a in args])
            super().__init__(args, *rest, **kwargs)  # type: ignore[arg-type]

    spawn_command_line = multiprocessing.spawn.get_command_line

    def recording_command_line(**kwargs: object) -> list[str]:
        argv = spawn_command_line(**kwargs)
        seen.append([str(a) for a in argv])
        return argv

    monkeypatch.setattr(subprocess, "Popen", Recording)
    monkeypatch.setattr(multiprocessing.spawn, "get_command_line", recording_command_line)
    yield seen


def _live_cmdlines() -> list[list[str]]:
    """Command lines of this run's live children (never this process)."""
    lines = []
    for proc in harness_processes(procs.run_id()):
        try:
            if proc.pid != os.getpid():
                lines.append(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
    return lines


class CmdlineSnapshots:
    """A progress listener that reads the live children's command lines at every step of the run."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def started(self, plan: Sequence[PlannedStep]) -> None:
        pass

    def step(self, message: str) -> None:
        self.seen.extend(_live_cmdlines())

    def note(self, message: str) -> None:
        pass


def _carrying(argvs: list[list[str]], secret: str) -> list[str]:
    return [argv[0] for argv in argvs if secret in " ".join(argv) or "requirepass" in " ".join(argv)]


def test_no_argv_of_a_real_run_carries_the_password(exec_argvs, monkeypatch):
    brokers: list[Broker] = []
    from_option = scenarios.from_option

    def keep(url: str | None, **kwargs: bool) -> Broker:
        brokers.append(from_option(url, **kwargs))
        return brokers[-1]

    monkeypatch.setattr(scenarios, "from_option", keep)
    live = CmdlineSnapshots()
    options = scenarios.Options(pools=("solo",), quick=True, reliability=False, plan=SMALL)
    scenarios.run(options, progress=live)
    password = brokers[0].password
    assert len(password) >= 16
    execs = " ".join(" ".join(argv) for argv in exec_argvs)
    assert "redis-server" in execs and " worker " in execs and "--multiprocessing-fork" in execs
    assert _carrying(exec_argvs, password) == []
    names = " ".join(" ".join(line) for line in live.seen)
    assert "redis-server" in names and " worker " in names, "no live child was seen"
    assert _carrying(live.seen, password) == []


def test_no_live_child_carries_the_password_and_the_config_file_is_private(exec_argvs):
    with private_redis() as broker:
        assert broker.tmpdir is not None
        config = broker.tmpdir / "redis.conf"
        assert config.stat().st_mode & 0o777 == 0o600
        assert config.read_text().splitlines()[0] == f"requirepass {broker.password}"
        with pytest.raises(redis.AuthenticationError):  # the server did read it
            redis.Redis(host=broker.host, port=broker.port, socket_timeout=2).ping()
        with Worker(broker.url, pool="prefork") as worker, Beat(broker.url):
            assert worker.child_pids(), "prefork's pool children should be up"
            live = _live_cmdlines()
        assert any("beat" in line for line in live) and sum("worker" in line for line in live) >= 2
        assert _carrying(live, broker.password) == []
        assert _carrying(exec_argvs, broker.password) == []
