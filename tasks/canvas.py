"""Tasks for the canvas and retry properties (chains, groups, chords, retries).

Each task makes one behaviour observable from outside the worker: the chain steps append what they
computed to a ledger list (``tasks.ledger``) so a test can tell which steps ran, in which order; the
retrying tasks append one JSON record per execution (start time on the worker, ``request.retries``,
the ETA Celery scheduled the execution for, the time the attempt raised) so a test can count attempts
and compare the gaps between them with the countdown asked for.

Keys come from the caller (unique per test example), so examples never see each other's records.
"""

import json
import time

from tasks import app, ledger


class StepError(Exception):
    """Raised by :func:`fail_on` for its chosen input: a chain step that fails."""


class FlakyError(Exception):
    """A planned, retryable failure (the ``exc=`` the retrying tasks pass to ``retry``)."""


class OtherError(Exception):
    """A failure of another type: ``autoretry_for=(FlakyError,)`` must not retry it."""


# -- chain steps with a side-effect ledger ---------------------------------------------------------


@app.task
def ledger_add(x, y, key):
    """``x + y``, recording ``add:<x>:<y>`` in the list ``key`` first."""
    ledger.record(key, f"add:{x}:{y}")
    return x + y


@app.task
def ledger_multiply(x, y, key):
    """``x * y``, recording ``multiply:<x>:<y>`` in the list ``key`` first."""
    ledger.record(key, f"multiply:{x}:{y}")
    return x * y


@app.task
def fail_on(x, bad, key):
    """Pass ``x`` through, or raise ``StepError`` when ``x == bad``; records ``fail_on:<x>`` first."""
    ledger.record(key, f"fail_on:{x}")
    if x == bad:
        raise StepError(f"fail_on: refused input {x}")
    return x


@app.task
def total(values):
    """A chord callback: the sum of the header's results."""
    return sum(values)


# -- retrying tasks ------------------------------------------------------------------------------


def _attempt(task, key):
    """Record this execution's start (time, retries, ETA) and return its 1-based number."""
    request = task.request
    return ledger.record(
        key,
        json.dumps({"start": time.time(), "retries": request.retries, "eta": request.eta}),
    )


def _raised(key):
    """Record the moment an attempt raises (the retry's ETA is computed right after it)."""
    ledger.record(f"{key}:raised", json.dumps({"raised": time.time()}))


@app.task(bind=True)
def flaky(self, key, fail_times, max_retries, countdown):
    """Fail the first ``fail_times`` executions with ``FlakyError``, retrying after ``countdown``.

    ``raise self.retry(exc=FlakyError(...), countdown=..., max_retries=...)`` as the seed article
    writes it. Returns ``{"attempts": n, "retries": self.request.retries}`` of the succeeding run.
    """
    attempt = _attempt(self, key)
    if attempt <= fail_times:
        _raised(key)
        raise self.retry(
            exc=FlakyError(f"{key}: attempt {attempt} of {fail_times} planned failures"),
            countdown=countdown,
            max_retries=max_retries,
        )
    return {"attempts": attempt, "retries": self.request.retries}


@app.task(bind=True)
def flaky_add(self, x, y, key, fail_times, countdown):
    """``x + y`` as a chain step, after failing and retrying its first ``fail_times`` executions."""
    attempt = _attempt(self, key)
    if attempt <= fail_times:
        _raised(key)
        raise self.retry(
            exc=FlakyError(f"{key}: attempt {attempt} of {fail_times} planned failures"),
            countdown=countdown,
            max_retries=fail_times,
        )
    return x + y


AUTORETRY_MAX_RETRIES = 2
"""``max_retries`` of :func:`autoretry_plan` (fixed: ``retry_kwargs`` is read when the task is made)."""

AUTORETRY_COUNTDOWN = 0.1
"""Seconds between two attempts of :func:`autoretry_plan`."""


@app.task(
    bind=True,
    autoretry_for=(FlakyError,),
    retry_kwargs={"max_retries": AUTORETRY_MAX_RETRIES, "countdown": AUTORETRY_COUNTDOWN},
)
def autoretry_plan(self, key, plan):
    """Execution ``n`` raises ``plan[n-1]`` (``"flaky"`` -> FlakyError, ``"other"`` -> OtherError).

    Past the end of ``plan`` it succeeds and returns the execution number. Only ``FlakyError`` is
    listed in ``autoretry_for``.
    """
    attempt = _attempt(self, key)
    if attempt <= len(plan):
        kind = FlakyError if plan[attempt - 1] == "flaky" else OtherError
        _raised(key)
        raise kind(f"{key}: attempt {attempt} planned {plan[attempt - 1]}")
    return attempt


# Exponential backoff (``retry_backoff``) is fixed per task when the task is created, so the property
# draws one of these configurations. Celery 5.7 turns the factor into ``int(max(1.0, factor))`` and
# ``retry_backoff_max`` into an int (celery PR #8295), so every factor here is a whole number of
# seconds; the sub-second countdowns are exercised by :func:`flaky` instead.
BACKOFF_MAX_RETRIES = 3
"""``max_retries`` of the backoff tasks."""

BACKOFF_CONFIGS = (
    # (retry_backoff factor, retry_backoff_max, retry_jitter)
    (1, 1, False),
    (1, 2, False),
    (2, 2, False),
    (1, 2, True),
    (2, 4, True),
)
"""The ``retry_backoff`` configurations a backoff task exists for."""


def backoff_task_name(factor: int, maximum: int, jitter: bool) -> str:
    return f"tasks.canvas.backoff_f{factor}_max{maximum}_{'jitter' if jitter else 'exact'}"


def _backoff_body(self, key, fail_times):
    attempt = _attempt(self, key)
    if attempt <= fail_times:
        _raised(key)
        raise FlakyError(f"{key}: attempt {attempt} of {fail_times} planned failures")
    return {"attempts": attempt, "retries": self.request.retries}


def _make_backoff_task(factor: int, maximum: int, jitter: bool):
    def body(self, key, fail_times):
        return _backoff_body(self, key, fail_times)

    body.__name__ = body.__qualname__ = backoff_task_name(factor, maximum, jitter).rsplit(".", 1)[1]
    body.__module__ = __name__
    return app.task(
        bind=True,
        name=backoff_task_name(factor, maximum, jitter),
        autoretry_for=(FlakyError,),
        max_retries=BACKOFF_MAX_RETRIES,
        retry_backoff=factor,
        retry_backoff_max=maximum,
        retry_jitter=jitter,
    )(body)


backoff_tasks = {config: _make_backoff_task(*config) for config in BACKOFF_CONFIGS}
"""``(factor, maximum, jitter) -> task`` for every configuration in :data:`BACKOFF_CONFIGS`."""
