"""Every timeout and size the harness uses, in one place.

Each constant carries its own docstring (the string literal under it). Timeouts are upper bounds for
polling loops, never sleeps: a loop returns as soon as its condition holds.
"""

from __future__ import annotations

BROKER_START_TIMEOUT = 10.0
"""Seconds a freshly started private ``redis-server`` has to answer PING."""

BROKER_STOP_TIMEOUT = 5.0
"""Seconds a private ``redis-server`` has to exit after SIGTERM before it is killed."""

WORKER_READY_TIMEOUT = 60.0
"""Seconds a ``celery worker`` has to answer a control ping after it was started.

Generous because prefork forks its children and imports the app before it consumes, and CI machines
are shared and noisy."""

PING_TIMEOUT = 0.5
"""Seconds one control ping waits for replies (the ready loop pings repeatedly)."""

WARM_STOP_TIMEOUT = 15.0
"""Seconds a worker has to finish its current tasks and exit after SIGTERM (warm shutdown)."""

COLD_STOP_TIMEOUT = 5.0
"""Seconds a worker has to exit after SIGQUIT (cold shutdown) before the whole tree is killed."""

KILL_TIMEOUT = 5.0
"""Seconds to wait for the process tree to disappear after SIGKILL."""

RESULT_TIMEOUT = 30.0
"""Seconds a test waits for a task result before it fails."""

POLL_INTERVAL = 0.02
"""Seconds between two checks of a polled condition."""

BEAT_INTERVAL = 0.5
"""Seconds between two runs of the periodic task when the harness starts ``celery beat``."""

WORKER_CONCURRENCY = 2
"""Default concurrency of prefork and threads workers (the machine has 2 cores)."""

POOLS_ALL = ("solo", "prefork", "threads")
"""Every pool the harness knows, in the order it runs them."""

TEMP_PREFIX = "celery-bench-"
"""Prefix of every temporary directory the harness creates (so a leak check can find strays)."""

RUN_MARKER_ENV = "CELERY_BENCH_RUN"
"""Environment variable set on every child process, holding the harness run id.

The leak checks look for processes that carry it."""

TEST_TASK_DELAY_ENV = "CELERY_BENCH_TEST_TASK_DELAY_S"
"""Test-only: seconds ``tasks.load.noop`` and ``tasks.load.stamp`` sleep before their body when a worker's
environment sets it. ``tests/benchmarks/test_gate.py`` sets it on a nested benchmark run to slow the worker
on purpose and prove the regression gate fails; nothing else sets it, and unset (or empty) it costs one
dict lookup at import."""

GATE_RUN_TIMEOUT = 900.0
"""Seconds one nested benchmark session of the gate's proof (``tests/benchmarks/test_gate.py``: a private
Redis, a worker, the enqueue, producer, drain and open-loop benchmarks of one pool) may take; ~1-2 min on a
busy 2-core machine."""

GATE_POLL = 0.5
"""Seconds between two checks of whether a nested benchmark session has exited."""

# -- fault scenarios (bench/faults) ------------------------------------------------------------------
FAULT_DRAIN_TIMEOUT = 240.0
"""Seconds the no-fault load (10,000 tasks) may take to execute (a busy 2-core machine manages ~1,000/s)."""

FAULT_SETTLE_TIMEOUT = 60.0
"""Seconds a fault scenario's tasks have to run after the fault (recovery included)."""

FAULT_STALL_TIMEOUT = 45.0
"""Seconds a worker has to consume again after its broker came back (longer: it stalled)."""

FAULT_PUBLISH_ERROR_BOUND = 40.0
"""Seconds ``apply_async`` to a down broker may take before the harness calls it hung."""

FAULT_POLL = 0.05
"""Seconds between two reads of a fault scenario's ledger."""

BROWSER_TIMEOUT = 60.0
"""Seconds headless Chromium has to load the HTML report and dump its rendered DOM
(``tests/unit/test_html.py``); a cold start on a loaded 2-core machine takes a few seconds."""

# -- repeatability (bench/repeat.py, the adaptive rounds of bench/scenarios.py) ------------------------
REPEAT_RUNS = 5
"""Sessions ``python -m bench repeat`` runs by default (the issue's measure: five quick runs in a row)."""

REPEAT_CV_TARGET = 0.05
"""Most a headline median (enqueue latency, producer and drain rates, open-loop p50) may vary across runs:
the coefficient of variation over ``REPEAT_RUNS`` sessions that ``bench repeat`` holds it to."""

REPEAT_CV_TARGET_TAIL = 0.10
"""The same for a tail figure (open-loop p99), which a few slow tasks move."""

PRECISION_TARGET = 0.025
"""Relative half-width of the 95% interval of a median over rounds (enqueue medians, producer and drain
rates, open-loop p50) at which ``bench run`` stops adding rounds to a step. If runs differed only by
sampling noise, the run-to-run CV would be about half of this (a 95% interval spans ~2 standard errors
each side), so it leaves room for the differences between sessions (a fresh broker and worker, the
machine's load) under ``REPEAT_CV_TARGET``."""

PRECISION_TARGET_TAIL = 0.05
"""The same for the open-loop p99 (median over rounds of each round's p99), against
``REPEAT_CV_TARGET_TAIL``."""

QUICK_BUDGET_S = {"enqueue": 15.0, "producer": 7.0, "drain": 12.0, "e2e": 15.0}
"""Seconds each adaptive step of a ``--quick`` run may spend adding rounds (``producer`` per mode,
``drain`` and ``e2e`` per pool): with the fixed parts, a quick run of the three pools stays under ~3
minutes on a quiet 2-core machine. A step that runs out of budget before its series are precise says so
in the report."""

FULL_BUDGET_S = {"enqueue": 60.0, "producer": 30.0, "drain": 60.0, "e2e": 90.0}
"""The same for a full run (per pool and concurrency for ``drain`` and ``e2e``)."""
