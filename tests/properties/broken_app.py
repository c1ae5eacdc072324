"""A deliberately broken copy of the app under test, for the defect meta-test only.

``celery -A tests.properties.broken_app worker -Q <queue>`` with ``BROKEN_VARIANT=<name>`` and
``BROKEN_QUEUE=<queue>`` in its environment runs the real ``tasks`` app with one task's behaviour
broken (see :data:`VARIANTS`), on a queue of its own so that no other worker ever sees its messages.
Nothing in ``tasks/`` is changed: the break is applied here, in the worker process, at import.
"""

from __future__ import annotations

import os

from celery import chain
from celery.app.autoretry import add_autoretry_behaviour

from tasks import add, app, canvas, ledger

VARIANT_ENV = "BROKEN_VARIANT"
QUEUE_ENV = "BROKEN_QUEUE"


def _chain_drops_argument() -> None:
    """``add(x, y)`` returns ``y``: a chain step that drops the value it received."""
    add.run = lambda x, y, work=None: y


def _autoretry_wrong_exception() -> None:
    """``autoretry_plan`` retries on ``OtherError`` instead of ``FlakyError``."""
    task = canvas.autoretry_plan._get_current_object()
    task.run = task._orig_run
    del task._orig_run
    add_autoretry_behaviour(task, autoretry_for=(canvas.OtherError,))


def _retry_off_by_one() -> None:
    """``flaky`` allows one retry more than its ``max_retries``."""
    run = canvas.flaky.run

    def broken(key, fail_times, max_retries, countdown):
        return run(key, fail_times, max_retries + 1, countdown)

    canvas.flaky.run = broken


def _retry_ignores_countdown() -> None:
    """``flaky`` retries at once, whatever countdown it was given."""
    run = canvas.flaky.run

    def broken(key, fail_times, max_retries, countdown):
        return run(key, fail_times, max_retries, 0.0)

    canvas.flaky.run = broken


def _chord_drops_element() -> None:
    """The chord callback ``total`` loses the last header result."""
    canvas.total.run = lambda values: sum(values[:-1])


def _failure_swallowed() -> None:
    """``fail_on`` records itself but returns its input instead of raising: the chain goes on."""

    def broken(x, bad, key):
        ledger.record(key, f"fail_on:{x}")
        return x

    canvas.fail_on.run = broken


def _failure_runs_rest() -> None:
    """``fail_on`` raises as it should, but first starts the rest of its chain itself.

    The chain's own result still fails (the restarted steps get new ids): only the ledger, read once
    the worker is idle, shows that later steps ran.
    """
    task = canvas.fail_on

    def broken(x, bad, key):
        ledger.record(key, f"fail_on:{x}")
        if x == bad:
            rest = [
                app.signature(d["task"], args=d["args"], kwargs=d["kwargs"])
                for d in reversed(task.request.chain or [])
            ]
            if rest:
                chain(*rest).apply_async((x,))
            raise canvas.StepError(f"fail_on: refused input {x}")
        return x

    task.run = broken


VARIANTS = {
    "chain-drops-argument": _chain_drops_argument,
    "autoretry-wrong-exception": _autoretry_wrong_exception,
    "retry-off-by-one": _retry_off_by_one,
    "retry-ignores-countdown": _retry_ignores_countdown,
    "chord-drops-element": _chord_drops_element,
    "failure-swallowed": _failure_swallowed,
    "failure-runs-rest": _failure_runs_rest,
}
"""Each broken variant of worker behaviour, by the name ``BROKEN_VARIANT`` selects."""


def _apply() -> None:
    variant = os.environ.get(VARIANT_ENV, "")
    queue = os.environ.get(QUEUE_ENV, "")
    if variant not in VARIANTS or not queue:
        raise SystemExit(
            f"tests.properties.broken_app: set {VARIANT_ENV} to one of {', '.join(VARIANTS)} "
            f"(got {variant!r}) and {QUEUE_ENV} to a queue of its own (got {queue!r})"
        )
    app.conf.task_default_queue = queue
    VARIANTS[variant]()


_apply()

__all__ = ["app", "VARIANTS"]
