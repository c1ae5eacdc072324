"""The pure parts of bench.hostfaults: which compose projects are stale, and how a row is judged."""

from __future__ import annotations

import dataclasses

import pytest

from bench import hostfaults, ledger
from bench.hostfaults import HostFault, Observation, Sizes


def test_only_projects_of_dead_harnesses_are_stale():
    names = [
        f"{hostfaults.PROJECT_PREFIX}111-abc123",  # dead
        f"{hostfaults.PROJECT_PREFIX}222-def456",  # alive
        "celery-bench-smoke-0123abcd",  # another kind of project
        f"{hostfaults.PROJECT_PREFIX}x-abc123",  # not a pid
        "someone-elses",
    ]
    assert hostfaults.stale_projects(names, alive=lambda pid: pid == 222) == [names[0]]


def observation(fault: HostFault, acks_late: bool, *, lost: set[str], interrupted: set[str]) -> Observation:
    ids = ["a", "b", "c", "d"]
    done = {i: 1 for i in ids if i not in lost}
    starts = {i: 2 if i in interrupted and i not in lost else 1 for i in ids}
    tally = ledger.account(ids, ledger.Executions(starts=starts, done=done, pids={}))
    return Observation(fault, acks_late, tally, frozenset(interrupted), frozenset(lost), 9.5, True)


@pytest.mark.parametrize(
    ("fault", "acks_late", "lost", "verdict"),
    [
        (HostFault.KILL, False, {"a"}, "ok"),  # the running task, acknowledged early, is lost: documented
        (HostFault.KILL, False, set(), "deviation"),  # it ran after all: not what the docs say
        (HostFault.KILL, False, {"a", "b"}, "deviation"),  # a prefetched one was lost too
        (HostFault.KILL, True, set(), "ok"),
        (HostFault.KILL, True, {"a"}, "deviation"),
        (HostFault.PAUSE, False, set(), "ok"),
        (HostFault.PAUSE, True, {"b"}, "deviation"),
        (HostFault.DISCONNECT, True, set(), "ok"),
    ],
)
def test_judging_against_the_documented_outcome(fault, acks_late, lost, verdict):
    row = hostfaults.judge(observation(fault, acks_late, lost=lost, interrupted={"a"}), Sizes())
    assert row.verdict == verdict
    assert row.lost == len(lost)
    assert row.expected == hostfaults.EXPECTED[(fault, acks_late)]
    assert row.scenario == f"{fault.value}, {'acks_late' if acks_late else 'early ack'}"


def test_a_host_that_never_answers_again_is_a_deviation():
    seen = observation(HostFault.DISCONNECT, False, lost=set(), interrupted={"a"})
    never = dataclasses.replace(seen, recovered_s=None, healed=False)
    row = hostfaults.judge(never, Sizes())
    assert row.verdict == "deviation"
    assert row.recovery_seconds is None
    assert "did not answer a ping" in row.note and "did not recover" in row.note


def test_no_docker_cli_is_one_line(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    error = hostfaults.engine_error()
    assert error is not None and "\n" not in error and "Docker engine" in error


@pytest.mark.parametrize(
    ("fault", "injected", "healed"),
    [
        (HostFault.KILL, ["kill", "c1"], ["start", "c1"]),
        (HostFault.PAUSE, ["pause", "c1"], ["unpause", "c1"]),
        (
            HostFault.DISCONNECT,
            ["network", "disconnect", "p_default", "c1"],
            ["network", "connect", "p_default", "c1"],
        ),
    ],
)
def test_each_fault_is_one_docker_command_and_its_inverse(monkeypatch, fault, injected, healed):
    calls: list[list[str]] = []
    monkeypatch.setattr(hostfaults, "docker", lambda *args, **_: calls.append(list(args)) or "")
    fleet = hostfaults.Fleet("p", "redis://x", (hostfaults.Host("c1", "fleet@c1"),), "p_default")
    hostfaults.inject(fault, fleet, fleet.hosts[0])
    hostfaults.heal(fault, fleet, fleet.hosts[0])
    assert calls == [injected, healed]
