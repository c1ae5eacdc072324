"""Tasks for the behaviours of the seed article beyond arithmetic.

Each one exists to make one documented behaviour observable: ``bind=True`` and ``request.id``, explicit
task names, a stacked decorator, retries (``self.retry`` and ``autoretry_for``), a periodic task.
"""

import functools
import time

from tasks import app, ledger


class TransientError(Exception):
    """A failure worth retrying (the seed's ``Twitter.FailWhaleError``)."""


class PermanentError(Exception):
    """A failure that must not be retried."""


@app.task(bind=True)
def task_id(self):
    """The seed's ``bind=True`` example: the first argument is the task, ``self.request.id`` its id."""
    return self.request.id


@app.task(bind=True)
def where(self):
    """Which worker node ran this (lets a test prove which pool executed it)."""
    return self.request.hostname


@app.task(name="seed.explicitly_named")
def named(x, y):
    """A task with an explicit ``name=`` (the seed: ``@app.task(name='tasks.add')``)."""
    return x + y


def logged(func):
    """A plain decorator; the seed says ``@app.task`` must stay the outermost one."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return ("logged", func(*args, **kwargs))

    return wrapper


@app.task
@logged
def stacked_add(x, y):
    return x + y


@app.task
def fail(message, work=0.0):
    """Always raises ``ValueError(message)``, after ``work`` seconds."""
    if work:
        time.sleep(work)
    raise ValueError(message)


@app.task
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


@app.task(bind=True)
def retry_until(self, key, fail_times, max_retries=3, countdown=0.0):
    """The seed's ``raise self.retry(exc=exc)``: fail the first ``fail_times`` runs, then succeed.

    Each execution appends its start time to the Redis list ``key``; the result reports the number of
    retries Celery says this run is (``self.request.retries``).
    """
    attempt = ledger.record(key, time.time())
    try:
        if attempt <= fail_times:
            raise TransientError(f"{key}: attempt {attempt} of {fail_times} planned failures")
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_retries) from exc
    return {"attempts": attempt, "retries": self.request.retries}


@app.task(
    autoretry_for=(TransientError,),
    retry_kwargs={"max_retries": 3, "countdown": 0.1},
)
def autoretry_until(key, fail_times, error="transient"):
    """The seed's ``autoretry_for=... retry_kwargs={'max_retries': N}`` (here N = 3).

    Raises ``TransientError`` (retried) or, with ``error='permanent'``, ``PermanentError`` (not retried)
    for the first ``fail_times`` executions.
    """
    attempt = ledger.record(key, time.time())
    if attempt <= fail_times:
        kind = TransientError if error == "transient" else PermanentError
        raise kind(f"{key}: attempt {attempt} of {fail_times} planned failures")
    return attempt


@app.task(bind=True)
def heartbeat(self, key="beat:heartbeat"):
    """The periodic task in ``beat_schedule``: records each run's time and worker node."""
    return ledger.record(key, f"{time.time()}|{self.request.hostname}")


@app.task
def config_value(name):
    """The value of setting ``name`` as the executing worker sees it."""
    return app.conf.get(name)
