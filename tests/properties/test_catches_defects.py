"""The properties catch defects: against a deliberately broken worker each one fails, and hypothesis
shrinks the failure to the smallest counterexample of that defect; against the same worker unbroken
every one of them passes.

Each defect case starts a solo worker of ``tests.properties.broken_app`` (the real ``tasks`` app with
one task broken, on a queue of its own), runs the same property function the pool tests run, and
expects hypothesis to report a falsifying example equal to the minimal one the break implies. That
example is never the strategy's smallest case (what a property failing on every input would shrink
to), so an always-failing property cannot pass: :func:`test_a_property_failing_on_every_input_is_rejected`
checks the criterion itself, without a worker. The control run (``BROKEN_VARIANT=unbroken``) runs the
same machinery, the defects' counterexamples included, against a worker with nothing broken: no
property may fail there. Cheap by design: one pool, a handful of generated examples, then shrinking.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from hypothesis import Phase, example, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure

from bench.worker import Worker

from . import checks, strategies
from .model import Step
from .strategies import AutoretryCase, ChainCase, CountdownCase, FailCase, GroupCase, RetryCase
from .target import ResultTimeout, Target

pytestmark = pytest.mark.properties

GENERATED = 30
"""Generated examples each run gets (a broken variant: before shrinking; the breaks show within a few)."""

PROPERTY_FAILURES: tuple[type[BaseException], ...] = (
    AssertionError,  # a property's comparison with the model (task errors where a value was due too)
    pytest.fail.Exception,  # pytest.raises: the expected task error never came ("DID NOT RAISE")
    ResultTimeout,  # a result or ledger record never arrived within its bound
)
"""What a property reports when it catches a defect. Anything else (a refused connection, a worker
that did not start, a builtin ``TimeoutError``) is an error of the harness: the meta-test errors."""

CONTROL = "unbroken"
"""``broken_app.CONTROL``, the variant that breaks nothing (spelt here: importing ``broken_app`` would
break this process's tasks; a misspelling stops the control worker from starting)."""

SETTINGS = settings(
    max_examples=GENERATED,
    derandomize=True,  # the same examples, hence the same shrink, on every run
    database=None,  # nothing saved between runs replays first
    deadline=None,
    report_multiple_bugs=False,  # one failure, shrunk to the overall minimal counterexample
    print_blob=False,
)
"""The meta-test's hypothesis settings, for the broken, the control and the criterion runs alike."""


def _property_failure(error: BaseException) -> bool:
    """A property failure, or hypothesis's ``FlakyFailure`` wrapping only property failures."""
    if isinstance(error, FlakyFailure):
        return all(_property_failure(inner) for inner in error.exceptions)
    return isinstance(error, PROPERTY_FAILURES)


@dataclass(frozen=True)
class Defect:
    """A broken variant, the property that must catch it, and its minimal counterexample."""

    check: Callable[[Target, Any], None]
    cases: st.SearchStrategy
    counterexample: Any
    why: str


FAILING_CHAINS = strategies.failing_chains()
"""The failing-step strategy, one object for the two defects it catches (:func:`smallest` caches by it)."""

DEFECTS = {
    "chain-drops-argument": Defect(
        checks.chain_folds,
        strategies.chains(),
        ChainCase(start=1, steps=(Step("add", 0),)),
        "add(1, 0) returns 0: the smallest start that is not 0, one step",
    ),
    "autoretry-wrong-exception": Defect(
        checks.autoretry_only_listed,
        strategies.autoretries,
        AutoretryCase(plan=("flaky",)),
        "one FlakyError must be retried and then succeed; it fails at once",
    ),
    "retry-off-by-one": Defect(
        checks.retry_outcome,
        strategies.retries,
        RetryCase(fail_times=1, max_retries=0),
        "one failure with no retry allowed must fail; it succeeds on a second execution",
    ),
    "later-retries-ignore-countdown": Defect(
        checks.retry_countdown,
        strategies.countdowns,
        CountdownCase(fail_times=2, tenths=1),
        "two retries with the shortest countdown: the second is sent without an ETA",
    ),
    "chord-drops-element": Defect(
        checks.group_and_chord_fold,
        strategies.groups,
        GroupCase(chains=(ChainCase(start=0, steps=(Step("add", 1),)),)),
        "a one-chain chord whose single value is 1 sums to 0",
    ),
    "failure-swallowed-mid-chain": Defect(
        checks.failing_step_stops_chain,
        FAILING_CHAINS,
        FailCase(0, (Step("add", 0),), position=1, fails=True, offset=1),
        "one step, then the failing step: the chain returns instead of raising",
    ),
    "failure-runs-rest": Defect(
        checks.failing_step_stops_chain,
        FAILING_CHAINS,
        FailCase(0, (Step("add", 0),), position=0, fails=True, offset=1),
        "a failing first step followed by one step: the ledger shows that step ran",
    ),
}


@dataclass(frozen=True)
class Outcome:
    """One run of a property under :data:`SETTINGS`: the examples tried, those that failed, the error."""

    tried: tuple[Any, ...]
    failing: tuple[Any, ...]
    error: BaseException | None

    @property
    def shrunk(self) -> Any:
        """The counterexample hypothesis reported: it replays the minimal failing example last."""
        return self.tried[-1] if self.tried else None


def run_property(prop: Callable[[Any], None], cases: st.SearchStrategy, *explicit: Any) -> Outcome:
    """Run ``prop`` over ``cases`` (``explicit`` examples first), as the meta-test does.

    Only a property failure (or a ``FlakyFailure`` of them) is returned as the run's error; any
    other exception propagates: an error of the harness is never taken for a caught defect.
    """
    tried: list[Any] = []
    failing: list[Any] = []

    def body(case: Any) -> None:
        tried.append(case)
        try:
            prop(case)
        except PROPERTY_FAILURES:
            failing.append(case)
            raise

    test = given(case=cases)(body)
    for case in explicit:
        test = example(case=case)(test)
    phases = (Phase.explicit, Phase.generate, Phase.shrink)
    try:
        settings(SETTINGS, phases=phases)(test)()
    except (*PROPERTY_FAILURES, FlakyFailure) as error:
        return Outcome(tuple(tried), tuple(failing), error)
    return Outcome(tuple(tried), tuple(failing), None)


@cache  # find() shrinks from scratch: a second or more per strategy on a loaded machine
def smallest(cases: st.SearchStrategy) -> Any:
    """The strategy's smallest case: where a property that fails on every input shrinks to."""
    return find(cases, lambda _: True, settings=settings(database=None, derandomize=True))


def verdict(defect: Defect, outcome: Outcome) -> list[str]:
    """Why ``outcome`` does not show the property catching ``defect`` (empty: it does)."""
    error = outcome.error
    if error is None:
        return [f"no counterexample: the property passed {len(outcome.tried)} examples"]
    problems = []
    if not _property_failure(error):
        problems.append(f"not a property failure: {error!r}")
    if not outcome.failing or outcome.shrunk != outcome.failing[-1]:
        problems.append(f"hypothesis reported a failure, but its last example passed: {error!r}")
    if "case=" not in "\n".join(getattr(error, "__notes__", [])):
        problems.append(f"hypothesis did not report a counterexample: {error!r}")
    floor = smallest(defect.cases)
    if outcome.shrunk == floor:
        problems.append(f"shrunk to the strategy's smallest case {floor!r}, as any always-failing property")
    if outcome.shrunk != defect.counterexample:
        problems.append(
            f"shrunk to {outcome.shrunk!r}, not to the minimal case {defect.counterexample!r} ({defect.why})"
        )
    return problems


# -- the criterion itself (no worker) -------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(DEFECTS))
def test_no_minimal_case_is_the_strategy_smallest(variant):
    defect = DEFECTS[variant]
    floor = smallest(defect.cases)
    assert defect.counterexample != floor, f"{variant}: its minimal case is the smallest one, {floor!r}"


def _fails_on_every_input(case: Any) -> None:
    raise AssertionError(f"fails on every input, {case!r} included")


@pytest.mark.parametrize("variant", sorted(DEFECTS))
def test_a_property_failing_on_every_input_is_rejected(variant):
    defect = DEFECTS[variant]
    outcome = run_property(_fails_on_every_input, defect.cases)
    assert outcome.shrunk == smallest(defect.cases), f"did not shrink to the smallest: {outcome!r}"
    problems = verdict(defect, outcome)
    assert any("the strategy's smallest case" in problem for problem in problems), problems
    assert any("not to the minimal case" in problem for problem in problems), problems


def test_a_property_that_never_fails_is_rejected():
    defect = DEFECTS["chain-drops-argument"]
    outcome = run_property(lambda case: None, defect.cases)
    assert outcome.error is None and outcome.failing == ()
    assert len(outcome.tried) == GENERATED
    assert verdict(defect, outcome) == [f"no counterexample: the property passed {GENERATED} examples"]


def test_an_error_of_the_harness_is_not_a_caught_defect():
    def refused(case: Any) -> None:
        raise ConnectionRefusedError("the broker went away")

    with pytest.raises(ConnectionRefusedError):
        run_property(refused, DEFECTS["chain-drops-argument"].cases)


# -- against real workers -------------------------------------------------------------------------


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
    outcome = run_property(lambda case: defect.check(target, case), defect.cases)
    if outcome.failing:
        record_property("first_failing", repr(outcome.failing[0]))
        record_property("counterexample", repr(outcome.shrunk))
        print(
            f"\n{variant}: {len(outcome.tried)} examples run, {len(outcome.failing)} failed; first "
            f"failing {outcome.failing[0]!r}; shrunk to {outcome.shrunk!r}\n  error: "
            f"{type(outcome.error).__name__}: {str(outcome.error).splitlines()[0]}"
        )
    problems = verdict(defect, outcome)
    assert not problems, f"{variant}: " + "; ".join(problems)


@pytest.fixture(scope="module")
def unbroken(bench_app, bench_broker, bench_backend) -> Iterator[Target]:
    """The control: a solo worker of ``broken_app`` with nothing broken, on a queue of its own."""
    queue = f"broken-{CONTROL}-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        bench_broker.url,
        backend_url=bench_backend.url,
        pool="solo",
        app="tests.properties.broken_app",
        queues=[queue],
        env={"BROKEN_VARIANT": CONTROL, "BROKEN_QUEUE": queue},
        name=f"broken-{CONTROL}",
    )
    with worker:
        yield Target(app=bench_app, node=worker.node, queue=queue)


PROPERTIES = {defect.check.__name__: defect for defect in DEFECTS.values()}
"""One defect per property the meta-test uses (its check and strategy), for the control run."""


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_properties_pass_on_the_unbroken_worker(name, unbroken, record_property):
    """The same property, strategy and settings, and every defect's counterexample, find nothing."""
    defect = PROPERTIES[name]
    counterexamples = [d.counterexample for d in DEFECTS.values() if d.check is defect.check]
    outcome = run_property(lambda case: defect.check(unbroken, case), defect.cases, *counterexamples)
    record_property("examples", len(outcome.tried))
    assert outcome.error is None, f"{name} failed on the unbroken worker: {outcome.error!r}"
    missing = [case for case in counterexamples if case not in outcome.tried]
    assert not missing, f"{name}: the counterexamples {missing!r} were not run"
    assert outcome.tried[0] in counterexamples  # explicit examples run first, then GENERATED drawn ones
