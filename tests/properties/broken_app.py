"""A deliberately broken copy of the app under test, for the defect meta-test only.

``celery -A tests.properties.broken_app worker -Q <queue>`` with ``BROKEN_VARIANT=<name>`` and
``BROKEN_QUEUE=<queue>`` in its environment runs the real ``tasks`` app with one task's behaviour
broken (see :data:`VARIANTS`), on a queue of its own so that no other worker ever sees its messages.
Nothing in ``tasks/`` is changed: the break is applied here, in the worker process, at import.

``BROKEN_VARIANT=unbroken`` (:data:`CONTROL`) breaks nothing: the meta-test's control run, the same
app on the same kind of queue, where every property must pass.
"""

from __future__ import annotations

import os

from celery import chain
from celery.app.autoretry import add_autoretry_behaviour

from tasks import add, app, canvas, ledger

VARIANT_ENV = "BROKEN_VARIANT"
QUEUE_ENV = "BROKEN_QUEUE"

CONTROL = "unbroken"
"""The ``BROKEN_VARIANT`` that breaks nothing (the meta-test's control worker)."""


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


def _later_retries_ignore_countdown() -> None:
    """``flaky`` waits its countdown before the first retry only; later retries run at once.

    One retry, the strategy's smallest case, still passes: only a case with two retries shows it.
    """
    task = canvas.flaky
    run = task.run

    def broken(key, fail_times, max_retries, countdown):
        return run(key, fail_times, max_retries, countdown if task.request.retries == 0 else 0.0)

    task.run = broken


def _chord_drops_element() -> None:
    """The chord callback ``total`` loses the last header result."""
    canvas.total.run = lambda values: sum(values[:-1])


def _failure_swallowed_mid_chain() -> None:
    """``fail_on`` raises as the first task of a chain, but after a step it returns its input instead.

    A chain of only the failing step, the strategy's smallest case, still fails as it should: only a
    failing step behind another one shows it. The first task of a chain has no parent; every later
    one has the previous step as its parent.
    """
    task = canvas.fail_on

    def broken(x, bad, key):
        ledger.record(key, f"fail_on:{x}")
        if x == bad and task.request.parent_id is None:
            raise canvas.StepError(f"fail_on: refused input {x}")
        return x

    task.run = broken


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
    "later-retries-ignore-countdown": _later_retries_ignore_countdown,
    "chord-drops-element": _chord_drops_element,
    "failure-swallowed-mid-chain": _failure_swallowed_mid_chain,
    "failure-runs-rest": _failure_runs_rest,
}
"""Each broken variant of worker behaviour, by the name ``BROKEN_VARIANT`` selects."""


def _apply() -> None:
    variant = os.environ.get(VARIANT_ENV, "")
    queue = os.environ.get(QUEUE_ENV, "")
    if (variant not in VARIANTS and variant != CONTROL) or not queue:
        raise SystemExit(
            f"tests.properties.broken_app: set {VARIANT_ENV} to one of {', '.join(VARIANTS)} or "
            f"{CONTROL} (got {variant!r}) and {QUEUE_ENV} to a queue of its own (got {queue!r})"
        )
    app.conf.task_default_queue = queue
    if variant != CONTROL:
        VARIANTS[variant]()


_apply()

__all__ = ["app", "CONTROL", "VARIANTS"]
