"""Helpers for tests that run the main job, ``python -m bench run``, as a user would (a subprocess)."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from bench import defaults
from bench.procs import harness_processes, wait_for

ROOT = Path(__file__).resolve().parents[2]


def interruptible() -> None:
    """``preexec_fn`` of a job the test will Ctrl-C: SIGINT back to its default in the child.

    A shell starts a background job (``cmd &``, nohup) with SIGINT ignored, its children inherit that,
    and Python installs no KeyboardInterrupt handler for a signal ignored at start-up: the test's Ctrl-C
    would then do nothing. Restoring the default makes the test independent of how pytest was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def job_env(tmp_path: Path, label: str = "main-job") -> tuple[dict[str, str], str]:
    """The environment of a job with a run id of its own and its temp dirs in ``tmp_path``."""
    run_id = f"{label}-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ)
    env[defaults.RUN_MARKER_ENV] = run_id
    env["TMPDIR"] = str(tmp_path)  # the job's temporary directories land here, where we can count them
    env.pop("BENCH_BROKER_URL", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env, run_id


def leftovers(tmp_path: Path, run_id: str) -> tuple[list[int], list[str]]:
    """Processes carrying ``run_id`` and ``celery-bench-*`` dirs in ``tmp_path``, once the job exited.

    multiprocessing's resource tracker outlives the job by a moment (it exits when the job's end of its
    pipe closes), so processes get ``HELPER_EXIT_TIMEOUT`` to go; a leaked worker or broker stays."""
    try:
        wait_for(
            lambda: not harness_processes(run_id),
            timeout=defaults.HELPER_EXIT_TIMEOUT,
            what="the job to settle",
        )
    except TimeoutError:
        pass  # reported below, with the pids
    procs = [p.pid for p in harness_processes(run_id)]
    dirs = sorted(p.name for p in tmp_path.glob(f"{defaults.TEMP_PREFIX}*"))
    return procs, dirs
