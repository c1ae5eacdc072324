"""The suite on pytest-xdist: when the default run goes parallel, and how a worker's run id is told apart.

Each xdist worker is a session of its own (a private Redis, pool workers of its own) whose run id is
``<run id>.<worker id>``. ``tests/integration/test_parallel.py`` runs the README's command for real;
``tests/integration/test_cleanup.py`` runs the harness under xdist and checks that nothing of the run
survives, found through the run id of the whole run.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from bench.procs import belongs_to_run
from bench.pytest_plugin import runs_parallel_by_default


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("run1", True),
        ("run1.gw0", True),
        ("run1.gw0.gw1", True),  # a nested run under xdist, started from an xdist worker
        ("run10", False),  # another run whose id merely starts the same
        ("run", False),
        ("gw0.run1", False),
        (None, False),
    ],
)
def test_a_process_belongs_to_its_run_or_to_a_part_of_it(marker, expected):
    assert belongs_to_run(marker, "run1") is expected


def _config(*, xdist: bool = True, worker: bool = False, **overrides: Any) -> Any:
    option = argparse.Namespace(
        numprocesses=None,
        dist="no",
        usepdb=False,
        trace=False,
        collectonly=False,
        broker_url=None,
        benchmark_only=False,
        benchmark_skip=True,
    )
    vars(option).update(overrides)
    config = SimpleNamespace(option=option, pluginmanager=SimpleNamespace(hasplugin=lambda name: xdist))
    if worker:
        config.workerinput = {"workerid": "gw0"}
    return config


def test_the_default_run_goes_parallel():
    assert runs_parallel_by_default(_config())


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(_config(numprocesses=0), id="-n 0"),
        pytest.param(_config(numprocesses=3), id="-n 3"),
        pytest.param(_config(dist="loadscope"), id="--dist"),
        pytest.param(_config(xdist=False), id="-p no:xdist"),
        pytest.param(_config(worker=True), id="an xdist worker"),
        pytest.param(_config(usepdb=True), id="--pdb"),
        pytest.param(_config(trace=True), id="--trace"),
        pytest.param(_config(collectonly=True), id="--collect-only"),
        pytest.param(_config(broker_url="redis://h:1/0"), id="--broker-url"),
        pytest.param(_config(broker_url="amqp://u:p@h:1//"), id="--broker-url amqp"),
        pytest.param(_config(benchmark_only=True), id="--benchmark-only"),
        pytest.param(_config(benchmark_skip=False), id="benchmarks not skipped"),
    ],
)
def test_the_user_s_choice_and_serial_only_runs_are_left_alone(config):
    assert not runs_parallel_by_default(config)
