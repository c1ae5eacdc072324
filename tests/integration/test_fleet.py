"""``bench.fleet`` against real workers it did not start: found, measured, and left as they were.

The "fleet" is two real workers started by the test (not by ``bench.fleet``) on a Redis database of its
own, so that no other test's worker answers the fleet's control ping: Celery's control channels on
Redis are per database.
"""

from __future__ import annotations

import socket
import uuid

import pytest

from bench import fleet, loadgen
from bench.broker import Broker
from bench.worker import control_app

pytestmark = [
    pytest.mark.integration,
    # bench.fleet is Redis-only: the fleet's broker is its result backend too (results are read there),
    # and the test isolates its fleet on a Redis database of its own, which AMQP does not have.
    pytest.mark.brokers("redis", reason="bench.fleet measures a fleet on a Redis broker only"),
]

FLEET_DB = 9
"""The database the test's fleet lives on (nothing else in the suite uses it)."""

SMALL = fleet.Sizes(drain_rounds=2, drain_tasks=60, e2e_rate=20.0, e2e_seconds=1.0)


@pytest.fixture
def fleet_url(bench_broker: Broker) -> str:
    return bench_broker.url_for_db(FLEET_DB)


def test_no_fleet_is_a_one_line_error(fleet_url: str):
    control = control_app(fleet_url)
    try:
        with pytest.raises(fleet.FleetError, match="no worker answered a control ping"):
            fleet.discover(control, timeout=0.5)
    finally:
        control.close()


def test_the_fleet_is_measured_and_left_as_it_was(make_worker, fleet_url: str, bench_broker: Broker):
    workers = [
        make_worker(
            broker_url=fleet_url, pool="threads", concurrency=2, name=f"fleet-a-{uuid.uuid4().hex[:6]}"
        ),
        make_worker(broker_url=fleet_url, pool="solo", name=f"fleet-b-{uuid.uuid4().hex[:6]}"),
    ]
    nodes = sorted(w.node for w in workers)
    conn = bench_broker.client(FLEET_DB)
    theirs = f"theirs-{uuid.uuid4().hex[:6]}"  # a queue of the fleet's own, which no node consumes now
    conn.lpush(theirs, b"their message")
    control = control_app(fleet_url)
    try:
        queues_before = control.control.inspect(destination=nodes, timeout=5).active_queues()

        run = fleet.measure(fleet_url, sizes=SMALL)

        assert [w.node for w in run.workers] == nodes
        assert {w.node: (w.pool, w.concurrency) for w in run.workers} == {
            workers[0].node: ("thread", 2),
            workers[1].node: ("solo", 1),
        }
        assert run.hosts == (socket.gethostname(),)
        assert [host for host, _ in run.drain_per_host] == [socket.gethostname()]
        # Every task of the fleet-wide drain ran on exactly one node of the fleet.
        assert sorted(node for node, _ in run.spread) == nodes
        assert sum(n for _, n in run.spread) == SMALL.drain_rounds * SMALL.drain_tasks
        assert run.drain.median > 0 and run.e2e_missing == 0
        assert run.e2e_start.samples == SMALL.e2e_count

        # Left as it was: running, consuming what it consumed before, its own queue untouched, and
        # nothing of the run's own queue or results behind.
        assert control.control.inspect(destination=nodes, timeout=5).active_queues() == queues_before
        assert all(w.alive() for w in workers)
        assert conn.lrange(theirs, 0, -1) == [b"their message"]
        assert not list(conn.scan_iter(match="*bench.fleet.*"))
        assert not list(conn.scan_iter(match=f"{loadgen.RESULT_PREFIX}*"))
    finally:
        conn.delete(theirs)
        conn.close()
        control.close()


def test_the_command_line_refuses_a_fleet_run_without_a_broker(capsys):
    from bench import cli

    assert cli.main(["run", "--fleet"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "python -m bench run: error: --fleet measures workers already running on a broker: "
        "give --broker-url URL"
    ]


def test_the_command_line_says_when_no_fleet_answers(capsys, fleet_url: str):
    from bench import cli

    assert cli.main(["run", "--fleet", "--broker-url", fleet_url]) == cli.EXIT_USAGE
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("--fleet: no worker answered a control ping on this broker: start the fleet first")
