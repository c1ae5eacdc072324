"""Host faults for real: a compose fleet of two worker hosts, each killed, frozen and cut off from the
broker, with and without ``acks_late``; every task accounted for by the ledger, and the fleet removed.

Runs wherever a Docker engine and Compose v2 answer (``tox -e compose``, and the README's
``python -m pytest``); skipped with the reason otherwise (``BENCH_REQUIRE_DOCKER=1`` makes that a failure).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import hostfaults
from bench.hostfaults import Fleet, HostFault, Observation, Sizes

SIZES = Sizes()


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with hostfaults.compose_fleet(SIZES, say=print) as fleet:
        yield fleet
    label = f"label=com.docker.compose.project={fleet.project}"
    left = hostfaults.docker("ps", "--all", "--filter", label, "--format", "{{.Names}}")
    assert left.split() == [], f"containers of {fleet.project} left behind"


def run(fleet: Fleet, fault: HostFault, acks_late: bool) -> Observation:
    seen = hostfaults.scenario(fleet, fault, acks_late=acks_late, sizes=SIZES)
    print(hostfaults.judge(seen, SIZES))
    assert seen.interrupted, "the fault must catch the host with a task running"
    assert seen.tally.unexpected == 0, "an id that was never enqueued ran"
    assert seen.healed, "the host must answer a control ping once it is healed"
    return seen


def test_killed_host_early_ack_loses_exactly_the_running_task(fleet: Fleet):
    seen = run(fleet, HostFault.KILL, acks_late=False)
    assert seen.lost_ids == seen.interrupted, "only the task acknowledged at its start may be lost"
    assert seen.recovered_s is not None, "the prefetched tasks must run on the other host"


def test_killed_host_acks_late_loses_nothing(fleet: Fleet):
    seen = run(fleet, HostFault.KILL, acks_late=True)
    assert not seen.lost_ids
    assert seen.tally.duplicated >= len(seen.interrupted), "each interrupted task must run again"


@pytest.mark.parametrize("acks_late", [False, True], ids=["early-ack", "acks-late"])
def test_frozen_host_loses_nothing_and_what_it_held_runs_again(fleet: Fleet, acks_late: bool):
    seen = run(fleet, HostFault.PAUSE, acks_late=acks_late)
    assert not seen.lost_ids
    assert seen.recovered_s is not None, "what the frozen host held must run elsewhere meanwhile"
    assert seen.tally.duplicated >= 1, "the resumed host runs again what was redelivered meanwhile"


@pytest.mark.parametrize("acks_late", [False, True], ids=["early-ack", "acks-late"])
def test_host_cut_off_loses_nothing_once_back(fleet: Fleet, acks_late: bool):
    seen = run(fleet, HostFault.DISCONNECT, acks_late=acks_late)
    assert not seen.lost_ids
