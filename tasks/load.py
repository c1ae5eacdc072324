"""Tasks for the benchmarks: a no-op and a task that stamps its start time on the worker.

The harness sends them by name (``tasks.load.noop``, ``tasks.load.stamp``); it never imports them.
"""

import time

from tasks import app


@app.task
def noop(*args, **kwargs):
    """Do nothing: what is left is Celery's own cost per task (receive, execute, store the result)."""
    return None


@app.task
def stamp(*args, **kwargs):
    """Return the wall-clock time (``time.time()``) at which the task body started on the worker.

    The producer compares it with the time it meant to enqueue the task (same host, same clock).
    """
    return time.time()
