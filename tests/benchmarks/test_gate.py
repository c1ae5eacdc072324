"""Proof that the regression gate sees what it gates: a slower worker fails it, an unchanged one passes.

CI gates ``tox -e bench`` with ``--benchmark-compare --benchmark-compare-fail=median:25%`` against the last
default-branch run. This test runs the benchmark suite of one pool as nested pytest sessions (each with its
own private Redis and worker), into a temporary benchmark storage:

1. a baseline, saved (``--benchmark-save``);
2. three unchanged sessions compared with it under the gate: each must pass;
3. a session whose worker is slowed on purpose (the test-only ``bench.defaults.TEST_TASK_DELAY_ENV``: every
   ``noop`` / ``stamp`` task sleeps ``SLOWDOWN_S`` first): it must fail the gate, and the gate must name the
   drain and the open-loop benchmarks.

It requests the ``benchmark`` fixture only to belong to the benchmark tier (run by ``--benchmark-only``,
skipped by the default run's ``--benchmark-skip``); it records no timing of its own, so nothing of it
enters the outer session's comparison. ``GATE_POOL`` is the pool it proves the gate on: one pool keeps it
to ~5 nested sessions (~5-8 min on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import defaults
from bench.procs import ManagedProcess, wait_for
from bench.worker import PROJECT_ROOT

GATE = "median:25%"
"""The gate CI applies (``.github/workflows/ci.yml``)."""

GATE_POOL = "solo"
"""The pool the proof runs on (the worker slowed is that pool's)."""

SLOWDOWN_S = 0.002
"""Seconds each benchmark task sleeps in the slowed session: about one solo task's own cost (~1-2 ms here),
so the drain time and the open-loop median grow by roughly 2x, several times the gate's 25%."""

UNCHANGED_RUNS = 3
"""Unchanged sessions that must pass the gate in a row."""

SUITE = ("tests/benchmarks/test_enqueue.py", "tests/benchmarks/test_pools.py")
"""Every gated benchmark (this module excluded: a nested session must not nest again)."""

GATED_BY_THE_WORKER = ("test_drain", "test_e2e_open_loop")
"""The benchmarks whose timed value includes the worker's time per task."""

REGRESSED = re.compile(
    r"^\s*(\S+)(?: \([^)]*\))? - Field 'median' has failed PercentageRegressionCheck: ([-0-9.]+) >", re.M
)
"""A line of pytest-benchmark's 'Performance has regressed' report: the benchmark (then the baseline it was
compared with, in parentheses), and how many percent slower its median is."""


@dataclass(frozen=True)
class Session:
    """One nested benchmark session: its exit status, its output, the gate's verdict, the timed medians."""

    returncode: int
    output: str
    regressed: dict[str, float]
    medians: dict[str, float]


def _session(tmp: Path, name: str, extra: list[str], *, slowdown: float | None = None) -> Session:
    storage, report = tmp / "storage", tmp / f"{name}.json"
    argv = [
        sys.executable, "-m", "pytest", *SUITE, "-p", "no:randomly", "-p", "no:cacheprovider",
        "--benchmark-only", "--benchmark-enable", f"--pool={GATE_POOL}", f"--benchmark-storage=file://{storage}",
        f"--benchmark-json={report}", *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", defaults.TEST_TASK_DELAY_ENV)}
    if slowdown is not None:
        env[defaults.TEST_TASK_DELAY_ENV] = str(slowdown)
    with ManagedProcess(argv, name=f"gate session {name}", log_path=tmp / f"{name}.log", env=env,
                        cwd=PROJECT_ROOT) as proc:  # fmt: skip
        wait_for(lambda: not proc.alive(), timeout=defaults.GATE_RUN_TIMEOUT, what=f"gate session {name}",
                 interval=defaults.GATE_POLL)  # fmt: skip
        code = proc.returncode()
        output = proc.log_text()
    assert code is not None
    medians = {}
    if report.exists():
        medians = {b["name"]: b["stats"]["median"] for b in json.loads(report.read_text())["benchmarks"]}
    regressed = {m.group(1): float(m.group(2)) for m in REGRESSED.finditer(output)}
    return Session(code, output, regressed, medians)


def _tail(session: Session) -> str:
    return "\n".join(session.output.splitlines()[-40:])


def _compare(tmp: Path, name: str, *, slowdown: float | None = None) -> Session:
    gate = ["--benchmark-compare=0001", f"--benchmark-compare-fail={GATE}"]
    return _session(tmp, name, gate, slowdown=slowdown)


@pytest.mark.pools(GATE_POOL)
@pytest.mark.timeout((UNCHANGED_RUNS + 2) * defaults.GATE_RUN_TIMEOUT)  # the suite's 600 s is per session
def test_the_gate_fails_a_slowed_worker_and_passes_unchanged_runs(benchmark, pool, tmp_path, capsys):
    tmp = tmp_path / f"gate-{uuid.uuid4().hex[:6]}"
    baseline = _session(tmp, "baseline", ["--benchmark-save=baseline"])
    assert baseline.returncode == 0, f"the baseline session failed:\n{_tail(baseline)}"
    assert list((tmp / "storage").glob("*/0001_baseline.json")), "no saved baseline"

    for i in range(1, UNCHANGED_RUNS + 1):
        unchanged = _compare(tmp, f"unchanged-{i}")
        ratios = {k: unchanged.medians[k] / baseline.medians[k] for k in baseline.medians}
        with capsys.disabled():
            print(f"\ngate proof: unchanged run {i}: median / baseline {_ratios(ratios)}")
        assert unchanged.returncode == 0 and not unchanged.regressed, (
            f"unchanged run {i} of {UNCHANGED_RUNS} failed the gate {GATE}: {unchanged.regressed}; "
            f"median / baseline {_ratios(ratios)}\n{_tail(unchanged)}"
        )

    slowed = _compare(tmp, "slowed", slowdown=SLOWDOWN_S)
    ratios = {k: slowed.medians[k] / baseline.medians[k] for k in baseline.medians if k in slowed.medians}
    with capsys.disabled():
        print(f"\ngate proof: worker slowed by {SLOWDOWN_S * 1e3:g} ms/task: {_ratios(ratios)}")
    assert slowed.returncode != 0 and "Performance has regressed" in slowed.output, _tail(slowed)
    named = {name.split("[")[0] for name in slowed.regressed}
    assert set(GATED_BY_THE_WORKER) <= named, f"the gate named only {slowed.regressed}"


def _ratios(ratios: dict[str, float]) -> str:
    """Each benchmark's median over the baseline's, and the machine's load (the gate's usual confounder)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return ", ".join(f"{k} {v:.2f}x" for k, v in sorted(ratios.items())) + f" (1-min load average {load:.1f})"
