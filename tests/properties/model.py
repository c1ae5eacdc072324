"""The reference model the properties compare real workers with: plain Python, no Celery.

A chain of ``add`` / ``multiply`` steps is a left fold; a retrying task that fails its first ``k``
executions with ``max_retries = m`` succeeds after ``k + 1`` executions when ``k <= m`` and fails after
``m + 1`` otherwise; exponential backoff waits ``min(maximum, factor * 2 ** n)`` before retry ``n + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Op = Literal["add", "multiply"]
OPS: tuple[Op, ...] = ("add", "multiply")


def apply(op: Op, x: int, y: int) -> int:
    return x + y if op == "add" else x * y


@dataclass(frozen=True)
class Step:
    """One chain step: ``op.s(operand)`` (partial), or ``op.si(fixed, operand)`` when ``fixed`` is set."""

    op: Op
    operand: int
    fixed: int | None = None

    @property
    def immutable(self) -> bool:
        return self.fixed is not None

    def __call__(self, previous: int) -> int:
        return apply(self.op, previous if self.fixed is None else self.fixed, self.operand)


def fold(start: int, steps: Sequence[Step]) -> list[int]:
    """The value after each step of a chain started from ``start`` (the first step receives it)."""
    values: list[int] = []
    value = start
    for step in steps:
        value = step(value)
        values.append(value)
    return values


@dataclass(frozen=True)
class RetryOutcome:
    """What a retrying task must end in: success or not, after how many executions."""

    succeeds: bool
    executions: int
    error: str | None = None  # the exception type name the failure carries


def retry_outcome(fail_times: int, max_retries: int) -> RetryOutcome:
    """``self.retry(exc=FlakyError(...), max_retries=m)`` on each of the first ``k`` executions."""
    if fail_times <= max_retries:
        return RetryOutcome(succeeds=True, executions=fail_times + 1)
    return RetryOutcome(succeeds=False, executions=max_retries + 1, error="FlakyError")


def autoretry_outcome(plan: Sequence[str], max_retries: int) -> RetryOutcome:
    """``autoretry_for=(FlakyError,)``: execution ``n`` raises ``plan[n-1]``, then succeeds.

    ``"flaky"`` is retried while retries remain; ``"other"`` fails at once.
    """
    for index, kind in enumerate(plan):
        if kind == "other":
            return RetryOutcome(succeeds=False, executions=index + 1, error="OtherError")
        if index == max_retries:  # a flaky failure with no retry left
            return RetryOutcome(succeeds=False, executions=index + 1, error="FlakyError")
    return RetryOutcome(succeeds=True, executions=len(plan) + 1)


def backoff_bound(factor: int, maximum: int, retries: int) -> int:
    """Seconds before retry ``retries + 1`` with ``retry_backoff=factor``, ``retry_backoff_max=maximum``."""
    return min(maximum, factor * 2**retries)
