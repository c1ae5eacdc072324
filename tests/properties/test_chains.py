"""Chains, nested chains, groups and chords fold like Python, on every selected pool's real worker."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings

from . import checks, strategies
from .model import Step
from .profiles import FIXTURES_OK
from .strategies import ChainCase, FailCase, GroupCase, NestedCase
from .target import Target

pytestmark = pytest.mark.properties


def _target(app, worker) -> Target:
    return Target(app=app, node=worker.node)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.chains())
@example(case=ChainCase(2**64, (Step("multiply", -(2**70)), Step("add", 2**63), Step("add", 0))))
def test_chain_returns_the_fold(app, worker, case):
    checks.chain_folds(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.chains(steps=strategies.mixed_steps))
@example(case=ChainCase(5, (Step("add", 1), Step("multiply", 3, fixed=7), Step("add", -(2**65)))))
def test_partial_and_immutable_signatures(app, worker, case):
    checks.chain_folds(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.nested_chains)
@example(case=NestedCase(3, (Step("add", 1), (Step("multiply", 2), (Step("add", -5),)), Step("add", 2**64))))
def test_nested_chains_fold_flat(app, worker, case):
    checks.nested_chain_folds(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.groups)
@example(case=GroupCase((ChainCase(2**64, (Step("multiply", 2**64),)), ChainCase(-1, (Step("add", 0),)))))
def test_chains_in_group_and_chord(app, worker, case):
    checks.group_and_chord_fold(_target(app, worker), case)


@settings(suppress_health_check=FIXTURES_OK)
@given(case=strategies.failing_chains())
@example(case=FailCase(2**64, (Step("add", 1), Step("multiply", 2)), position=1, fails=True, offset=1))
def test_failing_step_stops_the_chain(app, worker, case):
    checks.failing_step_stops_chain(_target(app, worker), case)
