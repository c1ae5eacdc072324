"""The properties catch defects: against a deliberately broken worker each one fails, and hypothesis
shrinks the failure to the smallest counterexample.

Each case starts a solo worker of ``tests.properties.broken_app`` (the real ``tasks`` app with one task
broken, on a queue of its own), runs the same property function the pool tests run, and expects
hypothesis to report a falsifying example equal to the minimal one the break implies. Cheap by design:
one pool, a handful of generated examples, then shrinking.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure

from . import checks, strategies
from .model import Step
from .strategies import AutoretryCase, ChainCase, CountdownCase, FailCase, GroupCase, RetryCase
from .target import ResultTimeout, Target

pytestmark = pytest.mark.properties

GENERATED = 30
"""Generated examples each broken variant gets before shrinking (the breaks show within a few)."""

PROPERTY_FAILURES: tuple[type[BaseException], ...] = (
    AssertionError,  # a property's comparison with the model (task errors where a value was due too)
    pytest.fail.Exception,  # pytest.raises: the expected task error never came ("DID NOT RAISE")
    ResultTimeout,  # a result or ledger record never arrived within its bound
)
"""What a property reports when it catches a defect. Anything else (a refused connection, a worker
that did not start, a builtin ``TimeoutError``) is an error of the harness: the meta-test errors."""


def _property_failure(error: BaseException) -> bool:
    """A property failure, or hypothesis's ``FlakyFailure`` wrapping only property failures."""
    if isinstance(error, FlakyFailure):
        return all(_property_failure(inner) for inner in error.exceptions)
    return isinstance(error, PROPERTY_FAILURES)


@dataclass(frozen=True)
class Defect:
    """A broken variant, the property that must catch it, and what its minimal counterexample is."""

    check: Callable[[Target, Any], None]
    cases: st.SearchStrategy
    minimal: Callable[[Any], bool]
    why: str


def _one_small_step_chord(case: GroupCase) -> bool:
    (only,) = case.chains
    (step,) = only.steps
    return abs(only.start) <= 1 and abs(step.operand) <= 1 and abs(only.values[-1]) == 1


DEFECTS = {
    "chain-drops-argument": Defect(
        checks.chain_folds,
        strategies.chains(),
        lambda case: case == ChainCase(start=1, steps=(Step("add", 0),)),
        "add(1, 0) returns 0: the smallest start that is not 0, one step",
    ),
    "autoretry-wrong-exception": Defect(
        checks.autoretry_only_listed,
        strategies.autoretries,
        lambda case: case == AutoretryCase(plan=("flaky",)),
        "one FlakyError must be retried and then succeed; it fails at once",
    ),
    "retry-off-by-one": Defect(
        checks.retry_outcome,
        strategies.retries,
        lambda case: case == RetryCase(fail_times=1, max_retries=0),
        "one failure with no retry allowed must fail; it succeeds on a second execution",
    ),
    "retry-ignores-countdown": Defect(
        checks.retry_countdown,
        strategies.countdowns,
        lambda case: case == CountdownCase(fail_times=1, tenths=1),
        "one retry with the shortest countdown starts too early",
    ),
    "chord-drops-element": Defect(
        checks.group_and_chord_fold,
        strategies.groups,
        _one_small_step_chord,
        "a one-chain chord whose single value is +-1 sums to 0",
    ),
    "failure-swallowed": Defect(
        checks.failing_step_stops_chain,
        strategies.failing_chains(),
        lambda case: case.start == 0 and case.steps == () and case.position == 0 and case.fails,
        "a chain of only the failing step returns instead of raising",
    ),
    "failure-runs-rest": Defect(
        checks.failing_step_stops_chain,
        strategies.failing_chains(),
        lambda case: case == FailCase(0, (Step("add", 0),), position=0, fails=True, offset=1),
        "a failing first step followed by one step: the ledger shows that step ran",
    ),
}


@pytest.mark.parametrize("variant", sorted(DEFECTS))
def test_property_catches_broken_worker(variant, bench_app, make_worker, record_property):
    defect = DEFECTS[variant]
    queue = f"broken-{variant}-{uuid.uuid4().hex[:8]}"
    worker = make_worker(
        pool="solo",
        app="tests.properties.broken_app",
        queues=[queue],
        env={"BROKEN_VARIANT": variant, "BROKEN_QUEUE": queue},
        name=f"broken-{variant}",
    )
    target = Target(app=bench_app, node=worker.node, queue=queue)
    tried: list[Any] = []
    failing: list[Any] = []

    @settings(
        max_examples=GENERATED,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        report_multiple_bugs=False,  # one failure, shrunk to the overall minimal counterexample
        print_blob=False,
    )
    @given(case=defect.cases)
    def prop(case):
        tried.append(case)
        try:
            defect.check(target, case)
        except PROPERTY_FAILURES:
            failing.append(case)
            raise

    # Only what a property reports counts; any other error propagates and errors this test.
    with pytest.raises((*PROPERTY_FAILURES, FlakyFailure)) as failure:
        prop()
    assert _property_failure(failure.value), f"not a property failure: {failure.value!r}"
    assert failing, "hypothesis reported a failure, but no example failed"
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    assert "case=" in notes, f"hypothesis did not report a counterexample: {failure.value!r}"
    shrunk = tried[-1]  # hypothesis replays the minimal failing example last
    assert shrunk == failing[-1]
    record_property("first_failing", repr(failing[0]))
    record_property("counterexample", repr(shrunk))
    print(
        f"\n{variant}: {len(tried)} examples run, {len(failing)} failed; first failing {failing[0]!r}; "
        f"shrunk to {shrunk!r}\n  error: {type(failure.value).__name__}: {str(failure.value).splitlines()[0]}"
    )
    assert defect.minimal(shrunk), f"{variant}: not shrunk to the minimal case ({defect.why}): {shrunk!r}"
