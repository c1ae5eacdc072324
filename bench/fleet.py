"""A fleet: Celery workers the harness did not start, measured where they run.

Found by a control ping on the broker (node names), described by ``inspect stats`` (pool, concurrency)
and ``inspect registered`` (they must run the harness's probe tasks, ``bench.probes.noop``/``stamp``).
The harness never stops, restarts or purges them, and never touches their queues: it sends its probe
tasks to a queue of its own (``bench.fleet.<run id>``), has the chosen nodes consume it with the
``add_consumer`` control command, and ``cancel_consumer`` afterwards (in a ``finally``); then it
deletes that queue and the probe tasks' results, and nothing else.

Measured (records only; :func:`text` formats them):

- the drain rate of a pre-filled queue with every node consuming, and with each host's nodes alone;
- the open-loop end-to-end latency (enqueue -> task start, enqueue -> result) across the fleet;
- the load spread: how many of the fleet-wide drain's tasks each node ran (``inspect stats`` totals
  before and after).

The fleet's result backend must be the Redis given as the broker URL: results are seen there.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import celery
import redis

from bench import defaults, loadgen, stats
from bench.worker import await_consuming, control_app

PROBE_TASKS = (loadgen.NOOP, loadgen.STAMP)
"""Tasks every fleet node must have registered (``bench.probes``, via ``--include bench.probes``)."""


class FleetError(Exception):
    """The fleet cannot be measured; the message (one line) says why and what to do."""


@dataclass(frozen=True)
class FleetWorker:
    node: str
    host: str
    pool: str
    concurrency: int


@dataclass(frozen=True)
class Sizes:
    drain_rounds: int = 2
    drain_tasks: int = 500
    e2e_rate: float = 100.0
    e2e_seconds: float = 5.0

    @property
    def e2e_count(self) -> int:
        return max(1, round(self.e2e_rate * self.e2e_seconds))


@dataclass(frozen=True)
class FleetRun:
    workers: tuple[FleetWorker, ...]
    drain: stats.ThroughputSummary
    drain_per_host: tuple[tuple[str, stats.ThroughputSummary], ...]
    spread: tuple[tuple[str, int], ...]
    """Per node, how many probe tasks it ran during the fleet-wide drain."""
    e2e_start: stats.LatencySummary
    e2e_result: stats.LatencySummary
    e2e_missing: int
    sizes: Sizes

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted({w.host for w in self.workers}))


def discover(
    control: celery.Celery, *, timeout: float = defaults.DISCOVERY_TIMEOUT
) -> tuple[FleetWorker, ...]:
    """Every node answering a control ping, with its pool and concurrency; FleetError if none can run."""
    replies = control.control.ping(timeout=timeout) or []
    nodes = sorted({node for reply in replies for node in reply})
    if not nodes:
        raise FleetError("no worker answered a control ping on this broker: start the fleet first")
    inspect = control.control.inspect(destination=nodes, timeout=timeout)
    described = inspect.stats() or {}
    registered = inspect.registered() or {}
    silent = [n for n in nodes if n not in described or n not in registered]
    if silent:
        raise FleetError(f"{', '.join(silent)} answered ping but not inspect within {timeout:g}s")
    lacking = [n for n in nodes if not set(PROBE_TASKS) <= set(registered[n])]
    if lacking:
        raise FleetError(
            f"{', '.join(lacking)} do not run the probe tasks {', '.join(PROBE_TASKS)}: start them with "
            "--include bench.probes (any app: celery -A yourapp worker --include bench.probes)"
        )
    return tuple(
        FleetWorker(
            node=node,
            host=node.partition("@")[2] or node,
            pool=str(described[node]["pool"]["implementation"]).rsplit(".", 1)[-1].split(":")[0],
            concurrency=int(described[node]["pool"].get("max-concurrency", 1)),
        )
        for node in nodes
    )


def probe_totals(control: celery.Celery, nodes: Sequence[str]) -> dict[str, int]:
    """Per node, how many probe tasks it has run since it started (``inspect stats`` totals)."""
    described = (
        control.control.inspect(destination=list(nodes), timeout=defaults.DISCOVERY_TIMEOUT).stats() or {}
    )
    return {
        node: sum(int(described.get(node, {}).get("total", {}).get(name, 0)) for name in PROBE_TASKS)
        for node in nodes
    }


@contextlib.contextmanager
def consuming(control: celery.Celery, nodes: Sequence[str], queue: str) -> Iterator[None]:
    """``nodes`` consume ``queue`` inside the block, and stop consuming it (only it) afterwards."""
    try:
        _control(control.control.add_consumer, queue, nodes)
        await_consuming(control, nodes, queue, consuming=True)
        yield
    finally:
        _control(control.control.cancel_consumer, queue, nodes)
        await_consuming(control, nodes, queue, consuming=False)


def _control(command: Any, queue: str, nodes: Sequence[str]) -> None:
    replies = command(queue, destination=list(nodes), reply=True, timeout=defaults.CONTROL_TIMEOUT) or []
    answered = {node for reply in replies for node in reply}
    if not set(nodes) <= answered:
        missing = ", ".join(sorted(set(nodes) - answered))
        raise RuntimeError(
            f"{missing} did not answer {command.__name__}({queue!r}) within {defaults.CONTROL_TIMEOUT:g}s"
        )


def _drain(
    producer: loadgen.Client,
    conn: redis.Redis,
    control: celery.Celery,
    nodes: Sequence[str],
    queue: str,
    prefix: str,
    count: int,
) -> tuple[int, float]:
    outcomes = loadgen.drain_round(
        producer, conn, prefix, count, lambda: consuming(control, nodes, queue),
        timeout=defaults.DRAIN_TIMEOUT,
        what=f"{len(nodes)} node(s) to drain {count} tasks (is their result backend this Redis?)",
    )  # fmt: skip
    return loadgen.drain_rate(outcomes)


@dataclass(frozen=True)
class _Session:
    """What one fleet measurement works with: its producer, Redis, control app and queue of its own."""

    producer: loadgen.Client
    conn: redis.Redis
    control: celery.Celery
    queue: str
    run_id: str
    sizes: Sizes

    def drains(self, nodes: Sequence[str], tag: str) -> list[tuple[int, float]]:
        """``sizes.drain_rounds`` drains of ``sizes.drain_tasks`` no-op tasks by ``nodes``."""
        return [
            _drain(self.producer, self.conn, self.control, nodes, self.queue, f"{self.run_id}-{tag}{r}-",
                   self.sizes.drain_tasks)
            for r in range(self.sizes.drain_rounds)
        ]  # fmt: skip

    def open_loop(self, nodes: Sequence[str]) -> tuple[list[float], list[float], list[str]]:
        """The open-loop arrivals across ``nodes``: (enqueue -> start, enqueue -> result, missing ids)."""
        sent, outcomes = loadgen.open_loop_round(
            self.producer, self.conn, f"{self.run_id}-e2e-", rate=self.sizes.e2e_rate,
            count=self.sizes.e2e_count, consume=lambda: consuming(self.control, nodes, self.queue),
            grace=defaults.E2E_GRACE, what="open-loop results",
        )  # fmt: skip
        to_start, to_result, missing = loadgen.e2e_latencies(sent, outcomes)
        return list(to_start), list(to_result), list(missing)


def measure(
    broker_url: str, *, sizes: Sizes = Sizes(), progress: Callable[[str], None] = lambda line: None
) -> FleetRun:
    """Discover the fleet on ``broker_url`` and measure it; leaves the fleet as it found it."""
    run_id = uuid.uuid4().hex[:10]
    queue = f"bench.fleet.{run_id}"
    control = control_app(broker_url)
    conn = redis.Redis.from_url(broker_url)
    try:
        workers = discover(control)
        nodes = [w.node for w in workers]
        hosts = sorted({w.host for w in workers})
        progress(f"fleet: {len(workers)} node(s) on {len(hosts)} host(s): {', '.join(nodes)}")
        with loadgen.Client(broker_url, queue, backend=False) as producer:
            session = _Session(producer, conn, control, queue, run_id, sizes)
            before = probe_totals(control, nodes)
            progress(f"fleet: {sizes.drain_rounds} drain rounds, all nodes")
            rounds = session.drains(nodes, "d")
            after = probe_totals(control, nodes)
            per_host = []
            for host in hosts:
                progress(f"fleet: drain on {host} alone")
                mine = session.drains([w.node for w in workers if w.host == host], f"h{host}-")
                per_host.append((host, stats.summarize_throughput(mine, what=f"drain on {host}")))
            progress(f"fleet: open loop, {sizes.e2e_rate:g} tasks/s for {sizes.e2e_seconds:g}s, all nodes")
            to_start, to_result, missing = session.open_loop(nodes)
        return FleetRun(
            workers=workers,
            drain=stats.summarize_throughput(rounds, what="fleet drain"),
            drain_per_host=tuple(per_host),
            spread=tuple((node, after[node] - before[node]) for node in nodes),
            e2e_start=stats.summarize_latency([to_start], unit="ms", what="fleet e2e.start"),
            e2e_result=stats.summarize_latency([to_result], unit="ms", what="fleet e2e.result"),
            e2e_missing=len(missing),
            sizes=sizes,
        )
    finally:
        _cleanup(conn, queue, run_id)
        conn.close()
        control.close()


def _cleanup(conn: redis.Redis, queue: str, run_id: str) -> None:
    """Delete this run's queue, its bindings and its probe results: nothing of the fleet's own."""
    with contextlib.suppress(redis.RedisError):
        conn.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        keys = list(conn.scan_iter(match=f"{loadgen.RESULT_PREFIX}{run_id}-*", count=1000))
        for start in range(0, len(keys), 1000):
            conn.delete(*keys[start : start + 1000])


def text(run: FleetRun) -> str:
    """The fleet's figures as a terminal table (formats only; every number comes from ``run``)."""
    lines = [f"fleet: {len(run.workers)} node(s) on {len(run.hosts)} host(s)"]
    lines += [f"  {w.node:<40} {w.pool:<8} x{w.concurrency}" for w in run.workers]
    lines.append(
        f"drain, all nodes:       {run.drain.median:8.0f} {run.drain.unit} "
        f"(median of {run.drain.rounds} rounds)"
    )
    for host, summary in run.drain_per_host:
        lines.append(f"drain, {host:<16} {summary.median:8.0f} {summary.unit} (alone)")
    total = sum(n for _, n in run.spread) or 1
    lines.append(
        "spread of the fleet-wide drain: "
        + ", ".join(f"{node} {100 * n / total:.0f}%" for node, n in run.spread)
    )
    for name, latency in (("enqueue -> start ", run.e2e_start), ("enqueue -> result", run.e2e_result)):
        lines.append(
            f"e2e {name} at {run.sizes.e2e_rate:g}/s: p50 {latency.median:.1f} {latency.unit}, "
            f"p99 {latency.p99:.1f} {latency.unit} ({latency.samples} tasks)"
        )
    if run.e2e_missing:
        lines.append(f"  {run.e2e_missing} open-loop task(s) had no successful result")
    return "\n".join(lines)
