"""The properties themselves: each takes a :class:`~tests.properties.target.Target` and one drawn case,
runs it on the target's real worker and compares what happened with the model (``model.py``).

They are plain functions, so the pool tests (``test_chains.py``, ``test_retries.py``) and the defect
meta-test (``test_catches_defects.py``) run exactly the same assertions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from celery import chain, chord, group, states
from celery.canvas import Signature
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from tasks import add, multiply
from tasks.canvas import (
    AUTORETRY_MAX_RETRIES,
    LINGER_TIMEOUT,
    FlakyError,
    OtherError,
    StepError,
    autoretry_plan,
    backoff_tasks,
    fail_on,
    flaky,
    flaky_add,
    ledger_add,
    ledger_multiply,
    total,
)

from . import model
from .model import Step
from .strategies import (
    AutoretryCase,
    BackoffCase,
    ChainCase,
    ChainRetryCase,
    CountdownCase,
    FailCase,
    GroupCase,
    Nested,
    NestedCase,
    RetryCase,
)
from .target import (
    RESULT_TIMEOUT,
    ResultTimeout,
    Target,
    attempts,
    lineage,
    new_key,
    raised_at,
    records,
    wait_until,
)

CLOCK_TOLERANCE = 0.01
"""Seconds a measured gap may fall short of its countdown.

All times are ``time.time()`` on the worker's machine. The worker holds a retried message until its
ETA (``now + countdown``, stamped after the attempt raised) by converting that wall-clock ETA to the
monotonic clock (kombu ``to_timestamp``) and never fires a timer entry before it is due; the only
slack is the ETA's microsecond rounding and the drift between the wall and monotonic clocks over a few
seconds (NTP slews at most 500 ppm, i.e. under 3 ms here). 10 ms covers both with room to spare."""

RETRY_COUNTDOWN = 0.1
"""Seconds between attempts where the countdown is not the subject (counts, outcome, chains).

Not 0: with a zero countdown on a concurrent pool (prefork, threads) the retry can finish before the
attempt that scheduled it has stored its RETRY state, which then overwrites the retry's final state
(a Celery race, reproduced deterministically by ``test_an_attempt_outliving_its_retry_keeps_the_final_state``
and recorded there as a strict xfail). 0.1 s puts the retry's start far behind that store."""

TASK_ERRORS = (StepError, FlakyError, OtherError)
"""The exceptions the tasks under test raise on purpose: where a property expects a value, getting one
of them instead is a property failure (an ``AssertionError``), not an error of the harness."""

GROUP_POLL = 0.02
"""Seconds between two polls of a group's results (Celery's default, 0.5 s, dominates a small group)."""

_OPS = {"add": add, "multiply": multiply}
_LEDGER_OPS = {"add": ledger_add, "multiply": ledger_multiply}


def _equal(what: str, got: object, expected: object) -> None:
    assert got == expected, f"{what}: got {got!r}, expected {expected!r}"


def _sig(step: Step, first: int | None = None) -> Signature:
    """``op.s(k)`` / ``op.si(fixed, k)``; the chain's first step gets its input explicitly."""
    task = _OPS[step.op]
    if step.fixed is not None:
        return task.si(step.fixed, step.operand)
    return task.s(step.operand) if first is None else task.s(first, step.operand)


def _signatures(start: int, steps: Sequence[Step]) -> list[Signature]:
    return [_sig(step, start if i == 0 else None) for i, step in enumerate(steps)]


def _get(result: AsyncResult, what: str, key: str | None = None, **options: Any) -> Any:
    """``result.get``; no result in time raises :class:`ResultTimeout` with the state of every step and
    the ledger, not a bare error. A task's own exception propagates (for ``pytest.raises``)."""
    try:
        return result.get(timeout=RESULT_TIMEOUT, **options)
    except CeleryTimeoutError:
        steps = [(link.id, link.state) for link in lineage(result)]
        ledger = records(key) if key else []
        raise ResultTimeout(
            f"{what}: no result after {RESULT_TIMEOUT}s; steps (id, state) {steps}; ledger {ledger}"
        ) from None


def _value(result: AsyncResult, what: str, key: str | None = None, **options: Any) -> Any:
    """:func:`_get` where a value is expected: a task error instead fails the property."""
    try:
        return _get(result, what, key, **options)
    except TASK_ERRORS as error:
        raise AssertionError(f"{what}: expected a value, the task raised {error!r}") from error


def _assert_lineage(result: AsyncResult, values: Sequence[int], key: str | None = None) -> None:
    """Each step's ``AsyncResult`` (walking ``parent`` links back) holds the intermediate value."""
    links = lineage(result)
    got = [_value(link, f"step {i + 1} of {len(links)}", key) for i, link in enumerate(links)]
    _equal("intermediate results (parent links)", got, list(values))


# -- chains ---------------------------------------------------------------------------------------


def chain_folds(target: Target, case: ChainCase) -> None:
    """A chain of ``add(k)`` / ``multiply(k)`` (``.s`` or ``.si``) returns the Python fold."""
    values = case.values
    result = target.send(chain(*_signatures(case.start, case.steps)))
    _equal("chain result", _value(result, "chain result"), values[-1])
    _assert_lineage(result, values)


def _nested_sig(node: Nested, start: int | None) -> tuple[Signature, None]:
    if isinstance(node, Step):
        return _sig(node, start), None
    parts = []
    for child in node:
        sig, start = _nested_sig(child, start)
        parts.append(sig)
    return chain(*parts), None


def nested_chain_folds(target: Target, case: NestedCase) -> None:
    """Chains inside chains fold like their flattened steps."""
    sig, _ = _nested_sig(case.tree, case.start)
    result = target.send(sig)
    _equal("nested chain result", _value(result, "nested chain result"), case.values[-1])
    _assert_lineage(result, case.values)


def group_and_chord_fold(target: Target, case: GroupCase) -> None:
    """A group of chains returns each chain's fold, in order; a chord over them sums the folds."""
    expected = [c.values[-1] for c in case.chains]

    def header() -> list[Signature]:
        return [chain(*_signatures(c.start, c.steps)) for c in case.chains]

    grouped = target.send(group(header()))
    _equal("group results", _value(grouped, "group results", interval=GROUP_POLL), expected)
    summed = target.send(chord(header(), total.s()))
    _equal("chord sum", _value(summed, "chord sum"), sum(expected))


def failing_step_stops_chain(target: Target, case: FailCase) -> None:
    """A step that raises stops the chain: later steps never run, the chain's result carries the error.

    Checked through the ledger (what ran, in order), not only through the result.
    """
    key = new_key("fail")
    sigs: list[Signature] = []
    expected: list[str] = []
    value = case.start
    for index in range(len(case.steps) + 1):
        if index == case.position:
            args = (value,) if not sigs else ()
            sigs.append(fail_on.s(*args, bad=case.bad, key=key))
            expected.append(f"fail_on:{value}")
            if case.fails:
                break
        if index == len(case.steps):
            break
        step = case.steps[index]
        task = _LEDGER_OPS[step.op]
        sigs.append(task.s(value, step.operand, key=key) if not sigs else task.s(step.operand, key=key))
        expected.append(f"{step.op}:{value}:{step.operand}")
        value = step(value)
    if case.fails:
        # The steps after the failing one, which must never run.
        sigs.extend(_LEDGER_OPS[s.op].s(s.operand, key=key) for s in case.steps[case.position :])

    result = target.send(chain(*sigs))
    if case.fails:
        message = f"fail_on: refused input {case.fail_input}"
        with pytest.raises(StepError) as raised:
            _get(result, "failing chain", key)
        _equal("error message", str(raised.value), message)
        returned = _get(result, "failing chain", key, propagate=False)
        assert isinstance(returned, StepError), f"get(propagate=False) returned {returned!r}"
        _equal("returned error", str(returned), message)
        _equal("chain state", result.state, states.FAILURE)
        target.wait_idle()  # anything still going to run has run now
    else:
        _equal("chain result", _value(result, "chain result", key), value)
    _equal("steps that ran (ledger)", records(key), expected)


# -- retries --------------------------------------------------------------------------------------


def _assert_retry_counts(key: str, executions: int) -> None:
    runs = attempts(key)
    assert len(runs) == executions, f"{len(runs)} executions, expected {executions}"
    _equal("request.retries per execution", [run["retries"] for run in runs], list(range(executions)))


def retry_outcome(target: Target, case: RetryCase) -> None:
    """``self.retry(exc=..., max_retries=m)`` for the first k runs: success iff k <= m, exact counts."""
    key = new_key("retry")
    expected = model.retry_outcome(case.fail_times, case.max_retries)
    result = target.send(flaky.s(key, case.fail_times, case.max_retries, RETRY_COUNTDOWN))
    if expected.succeeds:
        got = _value(result, "retry result", key)
        _equal("result", got, {"attempts": case.fail_times + 1, "retries": case.fail_times})
        _equal("state", result.state, states.SUCCESS)
    else:
        with pytest.raises(FlakyError, match=f"attempt {case.max_retries + 1} of {case.fail_times} "):
            _get(result, "retry result", key)
        returned = _get(result, "retry result", key, propagate=False)
        assert isinstance(returned, FlakyError), f"get(propagate=False) returned {returned!r}"
        _equal("state", result.state, states.FAILURE)
    # The final state is stored by the last execution, so the count is complete now.
    _assert_retry_counts(key, expected.executions)


def _scheduled(run: dict, raise_time: float) -> float:
    """The countdown a retried execution was sent with: its ETA minus the previous raise.

    Celery sends a zero countdown without an ETA (run now), so no ETA means zero.
    """
    if run["eta"] is None:
        return 0.0
    return datetime.fromisoformat(run["eta"]).timestamp() - raise_time


def _scheduled_and_measured(key: str) -> list[tuple[float, float]]:
    """Per retry: (countdown Celery scheduled = next ETA - raise time, measured gap between starts)."""
    runs, raised = attempts(key), raised_at(key)
    assert len(raised) == len(runs) - 1, f"{len(raised)} raises for {len(runs)} executions"
    pairs = []
    for before, after, raise_time in zip(runs[:-1], runs[1:], raised, strict=True):
        pairs.append((_scheduled(after, raise_time), after["start"] - before["start"]))
    return pairs


def retry_countdown(target: Target, case: CountdownCase) -> None:
    """Each retry starts no earlier than its countdown after the previous attempt (on the worker)."""
    key = new_key("countdown")
    result = target.send(flaky.s(key, case.fail_times, case.fail_times, case.countdown))
    _value(result, "countdown result", key)
    _assert_retry_counts(key, case.fail_times + 1)
    for n, (scheduled, gap) in enumerate(_scheduled_and_measured(key)):
        assert scheduled >= case.countdown - CLOCK_TOLERANCE, (
            f"retry {n + 1} scheduled {scheduled:.3f}s after the raise, countdown {case.countdown}s"
        )
        assert gap >= case.countdown - CLOCK_TOLERANCE, (
            f"retry {n + 1} started {gap:.3f}s after the previous attempt, countdown {case.countdown}s"
        )


def autoretry_only_listed(target: Target, case: AutoretryCase) -> None:
    """``autoretry_for=(FlakyError,)`` retries FlakyError (up to max_retries) and nothing else."""
    key = new_key("autoretry")
    expected = model.autoretry_outcome(case.plan, AUTORETRY_MAX_RETRIES)
    result = target.send(autoretry_plan.s(key, list(case.plan)))
    if expected.succeeds:
        _equal("result", _value(result, "autoretry result", key), expected.executions)
    else:
        error = {"FlakyError": FlakyError, "OtherError": OtherError}[expected.error or ""]
        with pytest.raises(error, match=f"attempt {expected.executions} planned"):
            _get(result, "autoretry result", key)
        returned = _get(result, "autoretry result", key, propagate=False)
        assert isinstance(returned, error), f"get(propagate=False) returned {returned!r}"
    _assert_retry_counts(key, expected.executions)


def retry_backoff(target: Target, case: BackoffCase) -> None:
    """``retry_backoff``: countdown n is ``min(max, factor * 2**n)`` (at most that with jitter).

    The countdown Celery chose is read from the retried execution's ETA: ``floor(eta - raise +
    tolerance)``; Celery's backoff countdowns are whole seconds, and the ETA is stamped right after
    the raise (far less than a second later). The measured gap between starts must not be shorter.
    """
    key = new_key("backoff")
    task = backoff_tasks[(case.factor, case.maximum, case.jitter)]
    result = target.send(task.s(key, case.fail_times))
    expected = {"attempts": case.fail_times + 1, "retries": case.fail_times}
    wait_until(
        lambda: records(f"{key}:returned"),
        timeout=RESULT_TIMEOUT + LINGER_TIMEOUT,
        what=f"{task.name} to succeed",
    )
    _equal("returned (ledger)", [json.loads(r) for r in records(f"{key}:returned")], [expected])
    _equal("SUCCESS stored after every RETRY (ledger)", records(f"{key}:ordered"), ["stored"])
    _assert_retry_counts(key, case.fail_times + 1)
    for n, (scheduled, gap) in enumerate(_scheduled_and_measured(key)):
        bound = model.backoff_bound(case.factor, case.maximum, n)
        chosen = math.floor(scheduled + CLOCK_TOLERANCE)
        if case.jitter:
            assert 0 <= chosen <= bound, f"retry {n + 1}: jittered countdown {chosen}s, bound {bound}s"
        else:
            assert chosen == bound, f"retry {n + 1}: countdown {chosen}s, expected {bound}s"
        assert gap >= chosen - CLOCK_TOLERANCE, (
            f"retry {n + 1}: started {gap:.3f}s after, countdown {chosen}s"
        )
    # Unconditional, a jittered countdown of 0 included: the succeeding attempt stores SUCCESS only
    # after every earlier attempt's RETRY is stored (``tasks.canvas._backoff_body``), which takes the
    # RETRY race (see RETRY_COUNTDOWN) out of this property.
    _equal("result", _value(result, "backoff result", key), expected)
    _equal("state", result.state, states.SUCCESS)


def retry_inside_chain(target: Target, case: ChainRetryCase) -> None:
    """A retrying step in a chain: the chain continues with the retried step's final result."""
    key = new_key("chainretry")
    before = _signatures(case.start, case.before)
    retried_input = () if before else (case.start,)
    middle = flaky_add.s(
        *retried_input, case.operand, key=key, fail_times=case.fail_times, countdown=case.tenths / 10
    )
    after = [_sig(step) for step in case.after]
    sig = chain(*before, chain(middle, *after)) if case.nested else chain(*before, middle, *after)
    result = target.send(sig)
    _equal("chain result", _value(result, "chain result", key), case.values[-1])
    _assert_lineage(result, case.values, key)
    _assert_retry_counts(key, case.fail_times + 1)
