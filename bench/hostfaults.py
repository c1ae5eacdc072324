"""Host faults in a fleet: a worker host killed, frozen, or cut off from its broker, with loss accounting.

Unlike :mod:`bench.fleet` (which measures workers it did not start and never touches them), this module
breaks hosts on purpose, so it owns them: it brings up a compose project of its own from the project's
``docker-compose.yml`` (profile ``fleet``: Redis and N worker containers, each its own network namespace,
i.e. its own host as far as Celery is concerned) and removes it afterwards, image tag included.

One scenario (:func:`scenario`) per fault and delivery mode:

1. enqueue ``bench.probes.work`` (or ``work_late``, ``acks_late=True``) to a queue of its own;
2. only the *victim* host consumes it (``add_consumer``) until it has started a task, so the fault
   catches it with a task running and more prefetched;
3. inject the fault on the victim's container: ``docker kill`` (the host dies), ``docker pause`` (the
   host freezes: its processes stop, its TCP connections stay open), ``docker network disconnect`` (the
   host is cut off from the broker; its processes keep running);
4. the *survivor* host consumes the queue too; the harness waits (bounded) until every task the fleet
   can recover has completed — what the victim held comes back only through kombu's
   ``visibility_timeout`` on Redis — then heals the victim (``docker start`` / ``unpause`` / ``network
   connect``) and waits until nothing of the run is queued, unacknowledged, reserved or running;
5. the ledger (:mod:`bench.ledger`) says which tasks ran once, twice, or never.

The workers get a short ``visibility_timeout`` and a 1 s restore sweep through the compose file's
``FLEET_VISIBILITY_TIMEOUT`` / ``FLEET_RESTORE_INTERVAL`` (``tasks/celery_config.py``), the producer
and control apps the same visibility timeout, so a run takes seconds, not Redis's default hour.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import celery
import redis

from bench import defaults, ledger
from bench.faults.kombu_redis import UNACKED_KEY, unacked_ids
from bench.faults.producer import TASK_WORK, TASK_WORK_LATE, client_app, enqueue
from bench.fleet import consuming
from bench.ledger import ReliabilityRecord
from bench.procs import wait_for
from bench.worker import control_app

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
PROJECT_PREFIX = "celery-bench-hostfaults-"
"""Compose projects of this module are named ``<prefix><harness pid>-<random>``: the pid lets the next
run remove a project whose harness was killed (:func:`remove_stale`)."""

FLEET_DB = 3
"""The Redis database of the compose file's fleet profile (its workers' broker and result backend)."""


class HostFaultError(Exception):
    """Host faults cannot run here; the message (one line) says why and what to do."""


class HostFault(enum.Enum):
    KILL = "host killed"
    PAUSE = "host frozen"
    DISCONNECT = "host cut off"


EXPECTED = {
    (HostFault.KILL, False): "the task running on the host is lost (acknowledged when it started); what "
    "it had prefetched runs on another host after visibility_timeout",
    (HostFault.KILL, True): "nothing lost: the interrupted task and the prefetched ones run on another "
    "host after visibility_timeout",
    (HostFault.PAUSE, False): "nothing lost; what the frozen host had prefetched runs on another host "
    "after visibility_timeout, and again when the host resumes (the visibility-timeout caveat)",
    (HostFault.PAUSE, True): "nothing lost; what the frozen host held, running task included, runs on "
    "another host after visibility_timeout, and again when the host resumes",
    (HostFault.DISCONNECT, False): "nothing lost once the host is back: what it held unacknowledged runs "
    "on another host after visibility_timeout (maybe twice)",
    (HostFault.DISCONNECT, True): "nothing lost once the host is back: what it held, running task "
    "included, runs on another host after visibility_timeout (maybe twice)",
}
"""What Celery's docs lead one to expect (Redis transport: "Visibility timeout", and the FAQ on
``acks_late``: a task acknowledged late is redelivered if its worker is lost)."""


@dataclass(frozen=True)
class Sizes:
    tasks: int = 8
    work_seconds: float = 2.0
    """How long each task works the first time (long enough for the fault to catch it running)."""
    rerun_seconds: float = 0.2
    """How long a redelivered execution works."""
    visibility_timeout: float = 8.0
    restore_interval: float = 1.0


@dataclass(frozen=True)
class Host:
    container: str
    node: str


@dataclass(frozen=True)
class Fleet:
    project: str
    broker_url: str
    hosts: tuple[Host, ...]
    network: str


@dataclass(frozen=True)
class Observation:
    """What one scenario saw: the ledger's tally, the tasks the fault interrupted, and its timings."""

    fault: HostFault
    acks_late: bool
    tally: ledger.Tally
    interrupted: frozenset[str]
    lost_ids: frozenset[str]
    recovered_s: float | None
    """Seconds from the fault until every task the fleet could recover had completed (None: never)."""
    healed: bool
    """Whether the victim host answered a control ping again after it was healed."""


# -- docker ---------------------------------------------------------------------------------------------
def docker(*args: str, timeout: float = defaults.DOCKER_TIMEOUT, env: dict[str, str] | None = None) -> str:
    """Run ``docker ARGS``; its stdout, or HostFaultError with the command and its first error line."""
    try:
        done = subprocess.run(  # noqa: S603 - argv built here
            ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except FileNotFoundError:
        raise HostFaultError("no `docker` CLI on PATH: host faults need a Docker engine with Compose v2")
    except subprocess.TimeoutExpired:
        raise HostFaultError(f"`docker {' '.join(args[:3])}` did not finish within {timeout:g}s")
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise HostFaultError(f"`docker {' '.join(args[:3])}` failed: {lines[-1]}")
    return done.stdout


def engine_error() -> str | None:
    """None if a Docker engine and Compose v2 answer here, else why not (one line)."""
    try:
        docker("compose", "version", "--short", timeout=defaults.DOCKER_QUERY_TIMEOUT)
        docker("info", "--format", "{{.ServerVersion}}", timeout=defaults.DOCKER_QUERY_TIMEOUT)
    except HostFaultError as exc:
        return str(exc)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_projects(names: Sequence[str], alive: Callable[[int], bool] = _pid_alive) -> list[str]:
    """The host-fault projects among ``names`` whose harness process is gone (pure but for ``alive``)."""
    pattern = re.compile(re.escape(PROJECT_PREFIX) + r"(\d+)-[0-9a-f]+$")
    return [n for n in names if (m := pattern.match(n)) and not alive(int(m.group(1)))]


def remove_stale(say: Callable[[str], None]) -> None:
    """Take down the compose projects a killed host-fault run left behind, saying so in one line."""
    listed = docker("compose", "ls", "--all", "--format", "json", timeout=defaults.DOCKER_QUERY_TIMEOUT)
    stale = stale_projects([project["Name"] for project in json.loads(listed or "[]")])
    for project in stale:
        _compose(project, "down", "--volumes", "--remove-orphans", "--timeout", "1")
        with contextlib.suppress(HostFaultError):
            docker("image", "rm", f"celery-bench:{project}", timeout=defaults.DOCKER_QUERY_TIMEOUT)
    if stale:
        say(f"bench: removed {len(stale)} compose project(s) left by killed run(s): {', '.join(stale)}")


def _compose(project: str, *args: str, timeout: float = defaults.DOCKER_TIMEOUT, **env: str) -> str:
    base = ["compose", "--project-name", project, "--file", str(COMPOSE_FILE), "--profile", "fleet"]
    return docker(*base, *args, timeout=timeout, env={**os.environ, "BENCH_IMAGE_TAG": project, **env})


# -- the fleet ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def compose_fleet(sizes: Sizes, *, hosts: int = 2, say: Callable[[str], None]) -> Iterator[Fleet]:
    """A compose project of ``hosts`` fleet workers and its Redis, removed (image tag too) afterwards."""
    project = f"{PROJECT_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {
        "FLEET_VISIBILITY_TIMEOUT": f"{sizes.visibility_timeout:g}",
        "FLEET_RESTORE_INTERVAL": f"{sizes.restore_interval:g}",
    }
    say(f"hostfaults: building and starting {project} ({hosts} worker hosts)")
    try:
        _compose(
            project, "up", "--detach", "--wait", "--build", "--scale", f"worker-fleet={hosts}",
            "redis", "worker-fleet", timeout=defaults.DOCKER_UP_TIMEOUT, **env,
        )  # fmt: skip
        yield _describe(project)
    finally:
        for container in _compose(project, "ps", "--all", "--format", "{{.Name}}").split():
            with contextlib.suppress(HostFaultError):  # a paused container would hold `down` up
                docker("unpause", container, timeout=defaults.DOCKER_QUERY_TIMEOUT)
        _compose(project, "down", "--volumes", "--remove-orphans", "--timeout", "1")
        with contextlib.suppress(HostFaultError):
            docker("image", "rm", f"celery-bench:{project}", timeout=defaults.DOCKER_QUERY_TIMEOUT)


def _describe(project: str) -> Fleet:
    containers = sorted(_compose(project, "ps", "--format", "{{.Name}}", "worker-fleet").split())
    hostnames = docker("inspect", "--format", "{{.Config.Hostname}}", *containers).split()
    network = f"{project}_default"
    return Fleet(
        project=project,
        broker_url=_reachable_redis(project, network),
        hosts=tuple(Host(c, f"fleet@{h}") for c, h in zip(containers, hostnames, strict=True)),
        network=network,
    )


def _reachable_redis(project: str, network: str) -> str:
    """The fleet's Redis as this process reaches it: the published port, else the container's address."""
    candidates = []
    published = _compose(project, "port", "redis", "6379").strip()
    if published:
        host, _, port = published.rpartition(":")
        unspecified = host in ("0.0.0.0", "::", "")  # noqa: S104 - a published port's address, read
        candidates.append(f"redis://{'127.0.0.1' if unspecified else host}:{port}")
    container = _compose(project, "ps", "--format", "{{.Name}}", "redis").split()[0]
    template = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    address = docker("inspect", "--format", template, container)
    candidates.append(f"redis://{address.strip()}:6379")
    for url in candidates:
        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url, socket_timeout=2) as conn:
            if conn.ping():
                return f"{url}/{FLEET_DB}"
    raise HostFaultError(f"the fleet's Redis answers at none of {', '.join(candidates)} from this process")


# -- injections -----------------------------------------------------------------------------------------
DOCKER_VERBS = {
    HostFault.KILL: (("kill",), ("start",)),
    HostFault.PAUSE: (("pause",), ("unpause",)),
    HostFault.DISCONNECT: (("network", "disconnect"), ("network", "connect")),
}
"""Per fault, the ``docker`` command that injects it and the one that heals it."""


def _on_host(verb: tuple[str, ...], fleet: Fleet, host: Host) -> None:
    network = (fleet.network,) if verb[0] == "network" else ()
    docker(*verb, *network, host.container)


def inject(fault: HostFault, fleet: Fleet, host: Host) -> None:
    _on_host(DOCKER_VERBS[fault][0], fleet, host)


def heal(fault: HostFault, fleet: Fleet, host: Host) -> None:
    _on_host(DOCKER_VERBS[fault][1], fleet, host)


# -- one scenario ---------------------------------------------------------------------------------------
def scenario(fleet: Fleet, fault: HostFault, *, acks_late: bool, sizes: Sizes) -> Observation:
    """Break the first host while it works on a queue of the run's own; the second recovers the tasks."""
    victim, survivor = fleet.hosts[0], fleet.hosts[1]
    run, conn = uuid.uuid4().hex[:12], redis.Redis.from_url(fleet.broker_url)
    queue, task = f"rel.{run}", TASK_WORK_LATE if acks_late else TASK_WORK
    client = client_app(fleet.broker_url, visibility_timeout=sizes.visibility_timeout)
    control = control_app(fleet.broker_url)
    try:
        args = (run, sizes.work_seconds, sizes.rerun_seconds)
        ids = enqueue(client, task, args, queue=queue, count=sizes.tasks).ids
        with consuming(control, [victim.node], queue):
            wait_for(
                lambda: ledger.in_flight(ledger.read(conn, run)),
                timeout=defaults.HOST_FAULT_START_TIMEOUT, what=f"{victim.node} to start a task",
                interval=defaults.FAULT_POLL,
            )  # fmt: skip
            inject(fault, fleet, victim)
            injected = time.monotonic()
            interrupted = frozenset(ledger.in_flight(ledger.read(conn, run)))
            with consuming(control, [survivor.node], queue):
                recovered = _recovered_s(conn, run, ids, interrupted, acks_late, injected, sizes)
                heal(fault, fleet, victim)
                healed = _answers(control, victim.node)
                _settle(conn, control, [h.node for h in fleet.hosts], queue, run, ids)
        tally = ledger.account(ids, ledger.read(conn, run))
        done = ledger.read(conn, run).done
        lost = frozenset(i for i in ids if not done.get(i))
        return Observation(fault, acks_late, tally, interrupted, lost, recovered, healed)
    finally:
        ledger.forget(conn, run)
        conn.delete(queue)
        for app in (client, control):
            app.close()
        conn.close()


def _recovered_s(
    conn: redis.Redis, run: str, ids: Sequence[str], interrupted: frozenset[str], acks_late: bool,
    injected: float, sizes: Sizes,
) -> float | None:  # fmt: skip
    """Seconds until every task the fleet can recover without the victim completed (None: not in time).

    Without ``acks_late`` the interrupted tasks were acknowledged when they started: nothing brings them
    back, so they are not waited for (whether they ran after all is the ledger's to say)."""
    wanted = set(ids) if acks_late else set(ids) - interrupted
    timeout = sizes.visibility_timeout + defaults.HOST_FAULT_RECOVERY_MARGIN
    try:
        wait_for(lambda: wanted <= set(ledger.read(conn, run).done), timeout=timeout,
                 what="recovery", interval=defaults.FAULT_POLL)  # fmt: skip
    except TimeoutError:
        return None
    return time.monotonic() - injected


def _answers(control: celery.Celery, node: str) -> bool:
    def pong() -> bool:
        return bool(control.control.ping(destination=[node], timeout=defaults.PING_TIMEOUT))

    try:
        wait_for(pong, timeout=defaults.HOST_HEAL_TIMEOUT, what=f"{node} to answer again")
    except TimeoutError:
        return False
    return True


def _settle(
    conn: redis.Redis, control: celery.Celery, nodes: list[str], queue: str, run: str, ids: Sequence[str]
) -> None:
    """Wait until nothing of the run is queued, unacknowledged, reserved or running anywhere."""
    mine = set(ids)

    def quiet() -> bool:
        if conn.llen(queue) or mine & set(unacked_ids(conn.hgetall(UNACKED_KEY), queue).values()):
            return False
        inspect = control.control.inspect(destination=nodes, timeout=defaults.PING_TIMEOUT * 2)
        held = [r for replies in (inspect.active() or {}, inspect.reserved() or {}) for r in replies.values()]
        return not any(t.get("id") in mine for tasks in held for t in tasks)

    wait_for(quiet, timeout=defaults.HOST_FAULT_SETTLE_TIMEOUT, what=f"run {run} to settle",
             interval=defaults.FAULT_POLL * 4)  # fmt: skip


# -- judging --------------------------------------------------------------------------------------------
def judge(seen: Observation, sizes: Sizes) -> ReliabilityRecord:
    """The row: what was seen against :data:`EXPECTED` (pure)."""
    if seen.fault is HostFault.KILL and not seen.acks_late:
        ok = seen.lost_ids == seen.interrupted
    else:
        ok = not seen.lost_ids
    notes = [f"{len(seen.interrupted)} running at the fault"]
    if seen.recovered_s is None:
        margin = defaults.HOST_FAULT_RECOVERY_MARGIN
        notes.append(f"the fleet did not recover within visibility_timeout + {margin:g}s")
    else:
        notes.append(f"recovery includes visibility_timeout {sizes.visibility_timeout:g}s")
    if not seen.healed:
        notes.append("the host did not answer a ping after it was healed")
    return ledger.record(
        seen.tally,
        pool="prefork (fleet)",
        scenario=f"{seen.fault.value}, {'acks_late' if seen.acks_late else 'early ack'}",
        recovery_seconds=None if seen.recovered_s is None else round(seen.recovered_s, 2),
        expected=EXPECTED[(seen.fault, seen.acks_late)],
        ok=ok and seen.healed,
        note="; ".join(notes),
    )


def run_all(
    *, sizes: Sizes = Sizes(), faults: Sequence[HostFault] = tuple(HostFault), say: Callable[[str], None]
) -> list[ReliabilityRecord]:
    """Every host fault, with and without ``acks_late``, on a compose fleet of two hosts of its own."""
    error = engine_error()
    if error:
        raise HostFaultError(error)
    remove_stale(say)
    rows = []
    with compose_fleet(sizes, say=say) as fleet:
        for fault in faults:
            for acks_late in (False, True):
                say(f"hostfaults: {fault.value}, {'acks_late' if acks_late else 'early ack'}")
                rows.append(judge(scenario(fleet, fault, acks_late=acks_late, sizes=sizes), sizes))
    return rows
