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
from collections.abc import Callable

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


# -- bounded waiting inside a task ---------------------------------------------------------------

LINGER_TIMEOUT = 10.0
"""Seconds a task waits (:func:`_linger_until`) for another attempt's store before it goes on."""

LINGER_POLL = 0.01
"""Seconds between two polls of :func:`_linger_until` (the waits it bounds last milliseconds)."""


def _linger_until(condition: Callable[[], object]) -> bool:
    """Poll ``condition`` every :data:`LINGER_POLL` s for at most :data:`LINGER_TIMEOUT` s; whether it held.

    The worker-side twin of ``bench.procs.wait_for``, for two reasons. The app under test does not
    depend on the harness (``bench`` names the app by import path so that it can verify a user's own
    app; nothing in ``tasks`` imports ``bench``). And a task must not raise when the wait runs out: the
    attempt records what it saw and goes on, so the test reports that instead of a changed task state.
    """
    deadline = time.monotonic() + LINGER_TIMEOUT
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(LINGER_POLL)
    return True


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


def _fail_or_retry(task, key, fail_times, *, max_retries, countdown):
    """Record this execution; the first ``fail_times`` ones ``raise task.retry(exc=FlakyError(...))``.

    Returns the 1-based number of the (succeeding) execution."""
    attempt = _attempt(task, key)
    if attempt <= fail_times:
        _raised(key)
        raise task.retry(
            exc=FlakyError(f"{key}: attempt {attempt} of {fail_times} planned failures"),
            countdown=countdown,
            max_retries=max_retries,
        )
    return attempt


@app.task(bind=True)
def flaky(self, key, fail_times, max_retries, countdown):
    """Fail the first ``fail_times`` executions with ``FlakyError``, retrying after ``countdown``.

    ``raise self.retry(exc=FlakyError(...), countdown=..., max_retries=...)`` as the seed article
    writes it. Returns ``{"attempts": n, "retries": self.request.retries}`` of the succeeding run.
    """
    attempt = _fail_or_retry(self, key, fail_times, max_retries=max_retries, countdown=countdown)
    return {"attempts": attempt, "retries": self.request.retries}


@app.task(bind=True)
def flaky_add(self, x, y, key, fail_times, countdown):
    """``x + y`` as a chain step, after failing and retrying its first ``fail_times`` executions."""
    _fail_or_retry(self, key, fail_times, max_retries=fail_times, countdown=countdown)
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


def _retry_stored(self, exc, task_id, args, kwargs, einfo):
    """``on_retry`` of the backoff tasks: ledger that this attempt's RETRY state is in the backend.

    Celery calls ``on_retry`` right after ``mark_as_retry`` (``celery.app.trace.handle_retry``).
    """
    ledger.record(f"{args[0]}:retry-stored", task_id)


def _backoff_body(self, key, fail_times):
    attempt = _attempt(self, key)
    if attempt <= fail_times:
        _raised(key)
        raise FlakyError(f"{key}: attempt {attempt} of {fail_times} planned failures")
    # A jittered countdown can be 0, and then this attempt may start (prefork, threads) before the one
    # that retried it has stored its RETRY state, which would then overwrite this attempt's SUCCESS
    # (the race ``test_an_attempt_outliving_its_retry_keeps_the_final_state`` records). Storing SUCCESS
    # only after every earlier RETRY is stored keeps the property about backoff, and its check of the
    # final result unconditional. Start times are recorded above, so the measured gaps are unaffected.
    ordered = _linger_until(lambda: ledger.client().llen(f"{key}:retry-stored") >= attempt - 1)
    ledger.record(f"{key}:ordered", "stored" if ordered else "timeout")
    value = {"attempts": attempt, "retries": self.request.retries}
    ledger.record(f"{key}:returned", json.dumps(value))
    return value


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
        on_retry=_retry_stored,
    )(body)


backoff_tasks = {config: _make_backoff_task(*config) for config in BACKOFF_CONFIGS}
"""``(factor, maximum, jitter) -> task`` for every configuration in :data:`BACKOFF_CONFIGS`."""


# -- a retry whose attempt outlives its retry (the RETRY-overwrites-a-final-state race) -------------


def _linger_for_state(task_id, wanted, key):
    """Wait (bounded, :func:`_linger_until`) until ``task_id`` is in state ``wanted``; ledger the state."""
    seen = []

    def reached():
        seen.append(app.AsyncResult(task_id).state)
        return seen[-1] == wanted

    _linger_until(reached)
    ledger.record(f"{key}:lingered", seen[-1])


class _StoreStall:
    """An exception argument that holds Celery's result store open between its read and its write.

    ``KeyValueStoreBackend._store_result`` JSON-encodes the exception arguments once before it reads
    the current state (to check they serialize) and once after (to write). The second encoding ledgers
    ``<key>:read`` (the read is done) and waits until the task's retry has stored SUCCESS, so the read
    saw RETRY and the write lands after SUCCESS. The retry waits for ``<key>:read`` before it returns:
    had its SUCCESS come before the read, Celery would skip this write (its SUCCESS guard), and the
    reproduction would depend on timing.
    """

    def __init__(self, task_id, key):
        self.task_id, self.key, self.calls = task_id, key, 0

    def __json__(self):
        self.calls += 1
        if self.calls == 2:
            ledger.record(f"{self.key}:read", self.task_id)
            _linger_for_state(self.task_id, "SUCCESS", self.key)
        return f"stall:{self.key}"

    def __repr__(self):
        return f"_StoreStall({self.key!r})"


@app.task(bind=True)
def retry_outlived(self, key, final):
    """Retry once with no countdown; the first attempt is still finishing when the retry completes.

    ``final="failure"``: the retry fails for good (``FlakyError``, no retry left); the first attempt,
    having published its retry (``self.retry(throw=False)``), does more work until that FAILURE is
    stored, then raises its ``Retry``. ``final="success"``: the retry returns ``"done"``; the first
    attempt's RETRY state is written while the retry stores SUCCESS (:class:`_StoreStall`).
    Either way the task's final state should be the retry's: FAILURE or SUCCESS.
    """
    attempt = _attempt(self, key)
    if attempt > 1:
        if final == "success":
            _linger_until(lambda: ledger.client().llen(f"{key}:read"))  # see _StoreStall
            return "done"
        raise self.retry(exc=FlakyError(f"{key}: attempt {attempt} failed for good"), max_retries=1)
    if final == "success":
        exc = FlakyError(_StoreStall(self.request.id, key))
        raise self.retry(exc=exc, countdown=0, max_retries=1)
    retry = self.retry(exc=FlakyError(f"{key}: attempt 1"), countdown=0, max_retries=1, throw=False)
    _linger_for_state(self.request.id, "FAILURE", key)
    raise retry
