"""Nothing is left behind: no ``celery``, private ``redis-server`` or RabbitMQ node process, no temp dir.

Each test runs the harness as a user would (a nested ``pytest`` on real workers, on the broker kind of
the test's id), in a temp dir of its own and with a run id every child inherits, then looks for anything
that survived: after a normal run, and after a run interrupted with Ctrl-C (SIGINT to the foreground
process group, as a terminal does).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from bench import defaults
from bench.procs import harness_processes, reap_run, wait_for
from bench.worker import PROJECT_ROOT
from tests.integration.jobs import interruptible

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX process groups and SIGINT"),
]
NESTED_TIMEOUT = 300.0
"""Seconds a nested harness run may take before the test fails (it is killed then)."""


def _nested(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    run_id = uuid.uuid4().hex
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), **{defaults.RUN_MARKER_ENV: run_id})
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=interruptible,  # noqa: PLW1509 - only resets SIGINT (no locks, no threads)
    )
    return proc, run_id, tmp


def _leftovers(run_id: str, tmp: Path) -> tuple[list[str], list[str]]:
    survivors = [f"{p.pid} {p.name()}" for p in harness_processes(run_id)]  # no cmdline: it holds passwords
    strays = sorted(p.name for p in tmp.iterdir() if p.name.startswith(defaults.TEMP_PREFIX))
    return survivors, strays


def _worker_with_children(run_id: str) -> bool:
    for proc in harness_processes(run_id):
        try:
            if "worker" in proc.cmdline() and proc.children():
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def _stop_nested(proc: subprocess.Popen[bytes], run_id: str) -> None:
    """If the nested run is still going (this test failed or timed out), stop it and all it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    reap_run(run_id)


def test_nothing_left_after_a_run(tmp_path, broker_kind):
    proc, run_id, tmp = _nested(
        tmp_path,
        "tests/integration/test_seed.py",
        "-k",
        "chain or bound",
        "--pool",
        "prefork",
        "--broker",
        broker_kind,
    )
    try:
        out, _ = proc.communicate(timeout=NESTED_TIMEOUT)
        survivors, strays = _leftovers(run_id, tmp)  # looked at before the last-resort reaping below
    finally:
        _stop_nested(proc, run_id)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert b"2 passed" in out
    assert survivors == [], f"processes left behind: {survivors}"
    assert strays == [], f"temp dirs left behind: {strays}"


def test_nothing_left_after_ctrl_c(tmp_path, broker_kind):
    argv = ["tests/integration/test_seed.py", "--pool", "prefork", "--broker", broker_kind]
    proc, run_id, tmp = _nested(tmp_path, *argv)
    try:
        # Interrupt once the prefork worker and its children are up, in the middle of the run.
        wait_for(lambda: _worker_with_children(run_id), timeout=NESTED_TIMEOUT, what="a prefork worker")
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=NESTED_TIMEOUT)
        survivors, strays = _leftovers(run_id, tmp)  # looked at before the last-resort reaping below
    finally:
        _stop_nested(proc, run_id)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()[-3000:]
    assert survivors == [], f"processes left behind: {survivors}"
    assert strays == [], f"temp dirs left behind: {strays}"
