"""Tasks for the fault scenarios: each execution records itself in a ledger of its own.

Every task takes ``run`` (a harness-chosen run id) and uses its own Celery task id as the ledger's
per-task id (the harness picks the ids before it publishes, so it knows exactly what it enqueued).
An execution records itself with atomic Redis operations under ``rel:<run>:*``, a key space nothing
else writes to:

``rel:<run>:start``  hash, task id -> number of times an execution *started* (a delivery)
``rel:<run>:done``   hash, task id -> number of times an execution *completed* (the side effect)
``rel:<run>:pid``    hash, task id -> pid of the process that started it last (to kill that child)

Short tasks (:func:`mark`) record start and done in one MULTI/EXEC, so they either ran or did not.
Long tasks (:func:`work`) record the start, work, then record the completion; an execution killed in
between leaves a start without a done. ``bench.ledger`` keeps the same key layout (checked by a test).
"""

import logging
import os
import time

from celery import signals

from tasks import app, ledger

KEY_PREFIX = "rel"
KEY_TTL_SECONDS = 24 * 3600
"""Ledger keys expire after a day, so a run against a user's broker leaves nothing for good."""


def key(run, kind):
    return f"{KEY_PREFIX}:{run}:{kind}"


def _record_start(run, task_id):
    pipe = ledger.client().pipeline(transaction=True)
    pipe.hincrby(key(run, "start"), task_id, 1)
    pipe.hset(key(run, "pid"), task_id, os.getpid())
    pipe.expire(key(run, "start"), KEY_TTL_SECONDS)
    pipe.expire(key(run, "pid"), KEY_TTL_SECONDS)
    return int(pipe.execute()[0])


def _record_done(run, task_id):
    pipe = ledger.client().pipeline(transaction=True)
    pipe.hincrby(key(run, "done"), task_id, 1)
    pipe.expire(key(run, "done"), KEY_TTL_SECONDS)
    return int(pipe.execute()[0])


def _mark(request, run):
    pipe = ledger.client().pipeline(transaction=True)
    pipe.hincrby(key(run, "start"), request.id, 1)
    pipe.hincrby(key(run, "done"), request.id, 1)
    pipe.expire(key(run, "start"), KEY_TTL_SECONDS)
    pipe.expire(key(run, "done"), KEY_TTL_SECONDS)
    return int(pipe.execute()[1])


@app.task(bind=True, ignore_result=True)
def mark(self, run):
    """Record one execution at once (the load scenarios: thousands of these). No result stored."""
    return _mark(self.request, run)


@app.task(bind=True)
def mark_with_result(self, run):
    """As :func:`mark`, with a stored result (the redelivered countdown task is inspected by state)."""
    return _mark(self.request, run)


def _work(request, run, seconds, then):
    attempt = _record_start(run, request.id)
    time.sleep(seconds if attempt == 1 else then)  # the work: a fault is injected while it runs
    return _record_done(run, request.id)


@app.task(bind=True)
def work(self, run, seconds, then=None):
    """A long-working task under the worker's settings (``task_acks_late`` etc. from the config).

    The first execution works ``seconds``; a redelivered one (the start count is above one) works
    ``then`` seconds (default: as long), so a test can kill a long first run and wait briefly for
    the second.
    """
    return _work(self.request, run, seconds, seconds if then is None else then)


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
def work_late(self, run, seconds, then=None):
    """As :func:`work`, acknowledged after it returns and requeued if its worker process dies."""
    return _work(self.request, run, seconds, seconds if then is None else then)


@signals.after_setup_logger.connect
def log_accepted(**_):
    """With ``TASKS_LOG_ACCEPTED=1`` (the shutdown scenarios' workers): log Celery's ``Task accepted``
    line, written when the pool takes a task, where it acknowledges one without ``acks_late``.

    Celery writes it only if ``celery.worker.request`` was debug-enabled when that module ran its
    ``__optimize__`` (at import; nothing calls it again in 5.7.0): a worker started with
    ``--loglevel=DEBUG`` here wrote no such line. Here that one logger goes to DEBUG (nothing else does)
    and the check runs again."""
    if os.environ.get("TASKS_LOG_ACCEPTED") != "1":
        return
    from celery.worker import request

    logging.getLogger(request.__name__).setLevel(logging.DEBUG)
    request.__optimize__()
