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

TEST_WORKERS = 2
"""pytest-xdist workers the test suite runs on when no ``-n`` is given (``conftest.py``).

Each is a session of its own with its own private Redis and pool workers. Most of the suite waits (worker
starts, restore sweeps, drains) rather than computes, so two workers halve it on a 2-core machine;
``-n 0`` (or ``-p no:xdist``) runs it serially, ``-n N`` on N workers."""
