"""``python -m bench compare`` on two real reports of ``bench run --quick --pool solo`` (a private Redis)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from bench.procs import reap_run
from tests.integration.jobs import ROOT, job_env, leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform.startswith("win"), reason="needs a private redis-server"),
]

JOB_TIMEOUT = 300.0
"""Seconds one small --quick run may take here (about 30 s on 2 shared cores)."""

COMPARE_TIMEOUT = 60.0
"""Seconds ``bench compare`` may take (it reads two files; the time is Python's start-up)."""

SMALL = ["--quick", "--pool", "solo", "--no-reliability", "--no-plots", "--samples", "100"]
SMALL += ["--drain-tasks", "200", "--duration", "2"]


def _job(tmp_path, name: str):
    out = tmp_path / f"{name}.json"
    env, run_id = job_env(tmp_path, f"compare-{name}")
    argv = [sys.executable, "-m", "bench", "run", *SMALL, "--json", str(out)]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
        procs, dirs = leftovers(tmp_path, run_id)
    finally:
        reap_run(run_id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert procs == [] and dirs == [], (procs, dirs)
    return out


def _compare(*args) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "bench", "compare", *map(str, args)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=COMPARE_TIMEOUT)


def test_compare_two_real_reports(tmp_path):
    a, b = _job(tmp_path, "a"), _job(tmp_path, "b")
    rows = json.loads(a.read_text())["results"]

    done = _compare(a, b, "--threshold", "1000")  # no slowdown is 11x: whatever the noise, exit 0
    assert done.returncode == 0, done.stderr
    for row in rows:
        pool = "-" if row["pool"] is None else f"{row['pool']} x{row['concurrency']}"
        assert any(
            line.split()[:1] == [row["scenario"]] and pool in line for line in done.stdout.splitlines()
        )
    assert "no significant regression beyond 1000%" in done.stdout

    same = _compare(a, a)
    assert same.returncode == 0 and "REGRESSION" not in same.stdout and "yes (" not in same.stdout

    # B's apply_async three times A's in every round (5 rounds, a spread of a few %): exit 1
    slow = json.loads(a.read_text())
    enqueue = next(r for r in slow["results"] if r["scenario"] == "enqueue.apply_async")
    enqueue["median"] *= 3
    enqueue["round_values"] = [v * 3 for v in enqueue["round_values"]]
    slowed = tmp_path / "slow.json"
    slowed.write_text(json.dumps(slow))
    failed = _compare(a, slowed)
    assert failed.returncode == 1, failed.stdout
    assert "significantly slower by more than 10%: enqueue.apply_async - (3.00x slower" in failed.stdout

    broken = copy.deepcopy(slow)
    broken["schema"] = 99
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    bad = _compare(a, tmp_path / "broken.json")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "schema 99" in bad.stderr
