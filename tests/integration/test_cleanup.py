"""Nothing is left behind: no ``celery`` or private ``redis-server`` process, no temp dir.

Each test runs the harness as a user would (a nested ``pytest`` on real workers), in a temp dir of its
own and with a run id every child inherits, then looks for anything that survived: after a normal run,
and after a run interrupted with Ctrl-C (SIGINT to the foreground process group, as a terminal does).
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
from bench.procs import harness_processes, wait_for
from bench.worker import PROJECT_ROOT

pytestmark = pytest.mark.integration
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
    )
    return proc, run_id, tmp


def _assert_nothing_left(run_id: str, tmp: Path) -> None:
    survivors = [f"{p.pid} {' '.join(p.cmdline())}" for p in harness_processes(run_id)]
    assert survivors == [], f"processes left behind: {survivors}"
    strays = sorted(p.name for p in tmp.iterdir() if p.name.startswith(defaults.TEMP_PREFIX))
    assert strays == [], f"temp dirs left behind: {strays}"


def _worker_with_children(run_id: str) -> bool:
    for proc in harness_processes(run_id):
        try:
            if "worker" in proc.cmdline() and proc.children():
                return True
        except psutil.NoSuchProcess:
            continue
    return False


def test_nothing_left_after_a_run(tmp_path):
    proc, run_id, tmp = _nested(
        tmp_path,
        "tests/integration/test_seed.py",
        "-k",
        "chain or bound",
        "--pool",
        "prefork",
    )
    out, _ = proc.communicate(timeout=NESTED_TIMEOUT)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert b"2 passed" in out
    _assert_nothing_left(run_id, tmp)


def test_nothing_left_after_ctrl_c(tmp_path):
    proc, run_id, tmp = _nested(tmp_path, "tests/integration/test_seed.py", "--pool", "prefork")
    try:
        # Interrupt once the prefork worker and its children are up, in the middle of the run.
        wait_for(lambda: _worker_with_children(run_id), timeout=NESTED_TIMEOUT, what="a prefork worker")
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=NESTED_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()[-3000:]
    _assert_nothing_left(run_id, tmp)
