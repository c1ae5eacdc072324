"""Tasks for the benchmarks: a no-op and a task that stamps its start time on the worker.

The harness sends them by name (``tasks.load.noop``, ``tasks.load.stamp``); it never imports them.
"""

import os
import time

from tasks import app

# Test-only (bench.defaults.TEST_TASK_DELAY_ENV): a regression on purpose, so that the benchmark gate's
# proof (tests/benchmarks/test_gate.py) can show the gate fails on a slower worker. Unset in every other run.
_TEST_DELAY_S = float(os.environ.get("CELERY_BENCH_TEST_TASK_DELAY_S") or 0.0)


def _test_delay():
    if _TEST_DELAY_S > 0:
        time.sleep(_TEST_DELAY_S)


@app.task
def noop(*args, **kwargs):
    """Do nothing: what is left is Celery's own cost per task (receive, execute, store the result)."""
    _test_delay()
    return None


@app.task
def stamp(*args, **kwargs):
    """Return the wall-clock time (``time.time()``) at which the task body started on the worker.

    The producer compares it with the time it meant to enqueue the task (same host, same clock).
    """
    _test_delay()
    return time.time()
