"""hypothesis strategies for the properties: the cases they draw, as frozen records.

Integers include 0, negatives and values beyond 64 bits (JSON carries them as arbitrary-precision
numbers). Bounds keep one example cheap on a real worker: chains of at most :data:`MAX_STEPS` steps,
at most :data:`MAX_FAILURES` planned failures, countdowns in tenths of a second. Every strategy
shrinks towards short chains, small numbers and few failures, so a failing property reports the
smallest chain / (k, m) that fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

from tasks.canvas import BACKOFF_CONFIGS

from .model import OPS, Step, fold

MAX_STEPS = 6
"""Longest chain drawn."""

MAX_FAILURES = 4
"""Most planned failures (and largest ``max_retries``) drawn for ``self.retry`` tasks."""

MAX_COUNTDOWN_TENTHS = 5
"""Longest retry countdown drawn, in tenths of a second."""

BEYOND_64_BITS = (2**63 - 1, 2**63, -(2**63) - 1, 2**64, -(2**64), 2**64 + 1, 2**100, -(2**127))
"""Edge values around and past the 64-bit limits."""

ints = st.one_of(
    st.integers(min_value=-20, max_value=20),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.sampled_from(BEYOND_64_BITS),
)
"""Small first (shrinking lands here), then wide and 64-bit edge values."""

partial_steps = st.builds(Step, op=st.sampled_from(OPS), operand=ints)
mixed_steps = st.builds(Step, op=st.sampled_from(OPS), operand=ints, fixed=st.none() | ints)


@dataclass(frozen=True)
class ChainCase:
    """``chain(op0.s(start, k0), op1.s(k1), ...)``: steps after the first receive the previous value."""

    start: int
    steps: tuple[Step, ...]

    @property
    def values(self) -> list[int]:
        return fold(self.start, self.steps)


def chains(*, steps: st.SearchStrategy[Step] = partial_steps, max_size: int = MAX_STEPS) -> st.SearchStrategy:
    return st.builds(ChainCase, start=ints, steps=st.lists(steps, min_size=1, max_size=max_size).map(tuple))


# A nested chain is a tuple whose items are steps or nested chains.
Nested = Step | tuple["Nested", ...]


def flatten(node: Nested) -> list[Step]:
    if isinstance(node, Step):
        return [node]
    return [step for child in node for step in flatten(child)]


@dataclass(frozen=True)
class NestedCase:
    """``chain(step, chain(step, chain(...)), step)``: folds like its flattened steps."""

    start: int
    tree: tuple[Nested, ...]

    @property
    def steps(self) -> list[Step]:
        return flatten(self.tree)

    @property
    def values(self) -> list[int]:
        return fold(self.start, self.steps)


nested_trees = st.recursive(
    partial_steps,
    lambda children: st.lists(children, min_size=1, max_size=3).map(tuple),
    max_leaves=MAX_STEPS,
)
nested_chains = st.builds(
    NestedCase,
    start=ints,
    tree=nested_trees.map(lambda tree: tree if isinstance(tree, tuple) else (tree,)),
)


@dataclass(frozen=True)
class GroupCase:
    """Chains run side by side in a group (results in order) and as a chord header (summed)."""

    chains: tuple[ChainCase, ...]


groups = st.builds(GroupCase, chains=st.lists(chains(max_size=3), min_size=1, max_size=4).map(tuple))


@dataclass(frozen=True)
class FailCase:
    """A ledger chain with ``fail_on`` inserted before step ``position``.

    ``fail_on`` raises for its input when ``fails``; otherwise its ``bad`` value is the input plus
    ``offset`` (never zero), and it passes the value through.
    """

    start: int
    steps: tuple[Step, ...]
    position: int
    fails: bool
    offset: int

    @property
    def fail_input(self) -> int:
        before = fold(self.start, self.steps[: self.position])
        return before[-1] if before else self.start

    @property
    def bad(self) -> int:
        return self.fail_input if self.fails else self.fail_input + self.offset


@st.composite
def failing_chains(draw: st.DrawFn) -> FailCase:
    steps = tuple(draw(st.lists(partial_steps, min_size=0, max_size=MAX_STEPS - 1)))
    return FailCase(
        start=draw(ints),
        steps=steps,
        position=draw(st.integers(min_value=0, max_value=len(steps))),
        fails=draw(st.booleans().map(lambda b: not b)),  # shrinks towards a failing step
        offset=draw(ints.filter(lambda n: n != 0)),
    )


@dataclass(frozen=True)
class RetryCase:
    """``flaky``: fail the first ``fail_times`` executions, ``max_retries`` allowed."""

    fail_times: int
    max_retries: int


retries = st.builds(
    RetryCase,
    fail_times=st.integers(min_value=0, max_value=MAX_FAILURES),
    max_retries=st.integers(min_value=0, max_value=MAX_FAILURES),
)


@dataclass(frozen=True)
class CountdownCase:
    """``flaky`` with ``countdown = tenths / 10`` seconds, failing ``fail_times`` times, then succeeding."""

    fail_times: int
    tenths: int

    @property
    def countdown(self) -> float:
        return self.tenths / 10


countdowns = st.builds(
    CountdownCase,
    fail_times=st.integers(min_value=1, max_value=3),
    tenths=st.integers(min_value=1, max_value=MAX_COUNTDOWN_TENTHS),
)


@dataclass(frozen=True)
class AutoretryCase:
    """``autoretry_plan``: execution ``n`` raises ``plan[n-1]`` (``flaky`` is retried, ``other`` not)."""

    plan: tuple[Literal["flaky", "other"], ...]


autoretries = st.builds(
    AutoretryCase, plan=st.lists(st.sampled_from(("flaky", "other")), max_size=4).map(tuple)
)


@dataclass(frozen=True)
class BackoffCase:
    """A ``retry_backoff`` task of :data:`tasks.canvas.BACKOFF_CONFIGS`, failing ``fail_times`` times."""

    factor: int
    maximum: int
    jitter: bool
    fail_times: int


def _backoff_case(config: tuple[int, int, bool], fail_times: int) -> BackoffCase:
    factor, maximum, jitter = config
    return BackoffCase(factor=factor, maximum=maximum, jitter=jitter, fail_times=fail_times)


backoffs = st.builds(_backoff_case, st.sampled_from(BACKOFF_CONFIGS), st.integers(min_value=1, max_value=3))


@dataclass(frozen=True)
class ChainRetryCase:
    """``flaky_add(y)`` (fails ``fail_times`` times, retried after ``tenths / 10`` s) inside a chain."""

    start: int
    before: tuple[Step, ...]
    operand: int
    fail_times: int
    tenths: int
    after: tuple[Step, ...]
    nested: bool = False  # chain(*before, chain(retried, *after)): the shape of celery#6631

    @property
    def steps(self) -> list[Step]:
        return [*self.before, Step("add", self.operand), *self.after]

    @property
    def values(self) -> list[int]:
        return fold(self.start, self.steps)


chain_retries = st.builds(
    ChainRetryCase,
    start=ints,
    before=st.lists(partial_steps, max_size=2).map(tuple),
    operand=ints,
    fail_times=st.integers(min_value=0, max_value=3),
    tenths=st.integers(min_value=1, max_value=2),  # not 0: see RETRY_COUNTDOWN in checks.py
    after=st.lists(partial_steps, max_size=2).map(tuple),
    nested=st.booleans(),
)
