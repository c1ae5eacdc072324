"""``kill -9`` of a running harness: nothing it started survives it, and the next run removes its dirs.

A real ``python -m bench run`` is SIGKILLed once its worker (solo, or prefork with its pool children) and
its private ``redis-server`` are up and draining; every process it started must be gone within
``PARENT_DEATH_TIMEOUT`` (the kernel's parent death signal, and Celery's own for prefork's children).
Its temp dirs stay, since nothing of the killed run could remove them: the next run does, in one line
on stderr (a ``python -m bench run`` after the solo kill, a pytest session after the prefork kill, so
both entry points are covered). The stale cleanup itself is checked on real processes and dirs: a dead
owner's are removed, a live owner's and unmarked ones are not.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench import defaults, stale
from bench.broker import find_redis_server, redis_version, server_config
from bench.procs import Owner, harness_processes, reap_run, this_owner, wait_for
from tests.integration.jobs import ROOT, job_env, leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="PR_SET_PDEATHSIG is Linux's; elsewhere the next run's cleanup removes the children",
    ),
]

JOB_TIMEOUT = 300.0
"""Seconds a job may take to reach its drain, or a following run to finish (a minute or less here)."""

CLEANUP_LINE = "left by killed run(s)"


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _started_tree(job: subprocess.Popen[bytes], run_id: str, pool: str, err: Path) -> list[psutil.Process]:
    """Everything the job started, once its worker drains (prefork: with its pool children); else []."""
    if job.poll() is not None:
        raise AssertionError(f"the job exited with {job.returncode}: {err.read_text()[-3000:]}")
    if not re.search(rf"{pool} x\d+: drain", err.read_text()):
        return []
    tree = {p.pid: p for p in psutil.Process(job.pid).children(recursive=True)}
    tree.update((p.pid, p) for p in harness_processes(run_id) if p.pid != job.pid)
    names = [p.name() for p in tree.values() if _running(p)]
    workers = [p for p in tree.values() if _running(p) and "worker" in p.cmdline()]
    pool_children = [c for w in workers for c in w.children()]
    if "redis-server" not in names or not workers or (pool == "prefork" and not pool_children):
        return []
    return list(tree.values())


def _kill_mid_run(tmp_path: Path, pool: str) -> tuple[str, list[str]]:
    """Start a job, SIGKILL it mid-drain, check nothing it started survives; its run id and dirs."""
    env, run_id = job_env(tmp_path, "sigkill")
    err = tmp_path / "killed-job.stderr"
    argv = [sys.executable, "-m", "bench", "run", "--quick", "--no-reliability", "--no-plots",
            "--pool", pool, "--broker", "redis", "--json", str(tmp_path / "killed.json")]  # fmt: skip
    with err.open("wb") as stderr:
        job = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        tree = wait_for(
            lambda: _started_tree(job, run_id, pool, err), timeout=JOB_TIMEOUT,
            what=f"the {pool} worker and the private redis-server of {run_id} to drain",
        )  # fmt: skip
        assert isinstance(tree, list)
        os.kill(job.pid, signal.SIGKILL)
        assert job.wait(timeout=defaults.KILL_TIMEOUT) == -signal.SIGKILL
        try:
            wait_for(
                lambda: not any(_running(p) for p in tree) and not harness_processes(run_id),
                timeout=defaults.PARENT_DEATH_TIMEOUT, what="the killed job's children to die",
            )  # fmt: skip
        except TimeoutError:
            survivors = [f"{p.pid} {p.name()}" for p in tree if _running(p)]  # no cmdline: passwords
            raise AssertionError(f"outlived the SIGKILLed harness: {survivors}") from None
        procs, dirs = leftovers(tmp_path, run_id)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        reap_run(run_id)  # last resort if this test failed: its own run must not leak into others
    assert procs == []
    assert any(d.startswith(f"{defaults.TEMP_PREFIX}redis-") for d in dirs), dirs  # what the next run removes
    return run_id, dirs


def _one_cleanup_line(output: str, run_id: str, dirs: list[str]) -> None:
    lines = [line for line in output.splitlines() if CLEANUP_LINE in line]
    assert len(lines) == 1, output[-3000:]
    assert run_id in lines[0] and f"and {len(dirs)} temp dirs {CLEANUP_LINE}" in lines[0], lines[0]


@pytest.mark.pools("solo")
def test_sigkill_mid_run_then_next_bench_run_cleans_up(pool, tmp_path):
    run_id, dirs = _kill_mid_run(tmp_path, pool)
    env, next_id = job_env(tmp_path, "after-sigkill")
    argv = [sys.executable, "-m", "bench", "run", "--quick", "--no-reliability", "--no-plots",
            "--pool", pool, "--broker", "redis", "--samples", "20", "--rounds", "1", "--drain-tasks", "20",
            "--rate", "20", "--duration", "1", "--json", str(tmp_path / "next.json")]  # fmt: skip
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    finally:
        reap_run(next_id)
    assert done.returncode == 0, done.stderr[-3000:]
    _one_cleanup_line(done.stderr, run_id, dirs)
    assert leftovers(tmp_path, run_id) == ([], [])


@pytest.mark.pools("prefork")
def test_sigkill_mid_run_then_next_pytest_session_cleans_up(pool, tmp_path):
    run_id, dirs = _kill_mid_run(tmp_path, pool)
    env, next_id = job_env(tmp_path, "after-sigkill")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_stats.py"]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    finally:
        reap_run(next_id)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    _one_cleanup_line(done.stderr, run_id, dirs)
    assert leftovers(tmp_path, run_id) == ([], [])


# -- the stale cleanup on real processes and dirs ----------------------------------------------------
def _dead_owner() -> Owner:
    """The owner marker of a process that ran and is gone."""
    proc = subprocess.Popen(["sleep", "60"])
    owner = Owner(proc.pid, psutil.Process(proc.pid).create_time())
    proc.kill()
    proc.wait()
    return owner


def _marked(argv: list[str], run: str, owner: Owner | None) -> subprocess.Popen[bytes]:
    markers = (defaults.RUN_MARKER_ENV, defaults.OWNER_MARKER_ENV)
    env = {k: v for k, v in os.environ.items() if k not in markers}
    env[defaults.RUN_MARKER_ENV] = run
    if owner is not None:
        env[defaults.OWNER_MARKER_ENV] = owner.marker()
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)


def _stale_redis_server(tmp: Path, run: str, owner: Owner) -> subprocess.Popen[bytes]:
    """A real redis-server configured as the harness configures its private one (no TCP port here)."""
    binary = find_redis_server()
    config = tmp / "stale-redis.conf"
    socket = tmp / "stale-redis.sock"  # no TCP port: the socket file says it is up
    config.write_text(server_config("x" * 32, redis_version(binary)) + f"port 0\nunixsocket {socket}\n")
    return _marked([binary, str(config)], run, owner)


def _marked_dir(tmp: Path, name: str, run: str, owner: Owner | None) -> Path:
    path = tmp / f"{defaults.TEMP_PREFIX}{name}"
    path.mkdir()
    (path / "redis.log").write_text("a log\n")
    if owner is not None:
        (path / defaults.OWNER_FILE).write_text(json.dumps({"run": run, "owner": owner.marker()}))
    return path


def test_stale_cleanup_removes_a_dead_runs_broker_and_dirs_and_spares_live_and_unmarked_ones(tmp_path):
    dead, live = _dead_owner(), this_owner()
    sleepers = {
        "dead": _stale_redis_server(tmp_path, "stale-dead-run", dead),
        "live": _marked(["sleep", "300"], "stale-live-run", live),
        "unmarked": _marked(["sleep", "300"], "stale-old-harness", None),  # no owner: an older harness
    }
    dirs = {
        "dead": _marked_dir(tmp_path, "redis-dead", "stale-dead-run", dead),
        "live": _marked_dir(tmp_path, "worker-live", "stale-live-run", live),
        "unmarked": _marked_dir(tmp_path, "beat-unmarked", "", None),
    }
    try:
        expected = {"dead": ("stale-dead-run", dead), "live": ("stale-live-run", live)}

        def up() -> bool:
            marks = {k: stale.marked_in(psutil.Process(sleepers[k].pid).environ()) for k in expected}
            return (tmp_path / "stale-redis.sock").exists() and marks == expected

        wait_for(up, timeout=defaults.BROKER_START_TIMEOUT, what="the marked processes to be up")
        handles = {k: psutil.Process(p.pid) for k, p in sleepers.items()}
        assert handles["dead"].name() == "redis-server"
        left = stale.clean(tmp_path)  # kills and reaps (they are this process's children: no zombie)
        assert not _running(handles["dead"])
        assert _running(handles["live"]) and _running(handles["unmarked"])
    finally:
        for proc in sleepers.values():
            proc.kill()
            proc.wait()
    assert sleepers["dead"].pid in left.pids and "stale-dead-run" in left.runs
    assert sleepers["live"].pid not in left.pids and "stale-live-run" not in left.runs
    assert not dirs["dead"].exists() and dirs["live"].is_dir() and dirs["unmarked"].is_dir()
    assert left.dirs == (dirs["dead"],)
    line = stale.summary(left)
    assert line is not None and "stale-dead-run" in line and "1 temp dir left by" in line
