"""The README's test command runs on pytest-xdist workers; ``-n 0`` runs it serially.

Which options keep a run serial is checked without a nested run in ``tests/unit/test_xdist.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import defaults
from bench.worker import PROJECT_ROOT

pytestmark = pytest.mark.integration

NESTED_TIMEOUT = 120.0
"""Seconds a nested pytest run of one small unit-test file may take (two xdist workers start)."""


def _nested(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BENCH_BROKER_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/unit/test_stats.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=NESTED_TIMEOUT,
    )


def test_the_readme_command_runs_on_xdist_workers_and_n0_serially():
    parallel = _nested()
    assert parallel.returncode == 0, parallel.stdout[-2000:]
    assert f"created: {defaults.TEST_WORKERS}/{defaults.TEST_WORKERS} workers" in parallel.stdout
    serial = _nested("-n", "0")
    assert serial.returncode == 0, serial.stdout[-2000:]
    assert "workers" not in serial.stdout
