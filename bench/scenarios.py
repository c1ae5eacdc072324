"""What the main job runs, in which order: the benchmark matrix (brokers x pools x measurements).

0. the brokers under test (``Options.brokers``: Redis, RabbitMQ) and the result backend, always a Redis
   (the private Redis that is also the Redis broker, or the user's Redis of ``--broker-url``); a private
   RabbitMQ node's start and stop are timed;
1. enqueue latency of ``delay()`` and ``apply_async(ignore_result=True)`` on every broker, each with its
   raw floor (``LPUSH`` on Redis, ``basic_publish`` on AMQP) of the same message, all interleaved in the
   same rounds, and the harness's own timing overhead;
2. producer throughput from 1 thread, N threads and N processes, per broker;
3. per pool (and concurrency), per broker, with one real worker: the drain rate of a pre-filled queue of
   no-op tasks, the same for I/O-bound tasks (``bench.probes.io_wait``: what green-thread pools are for),
   then the open-loop end-to-end latency (enqueue -> task start, enqueue -> result available);
4. the reliability section (``bench.faults``, another module, on every broker), when it is there and
   not skipped.

Results are immutable records (:class:`Result`, :class:`Fidelity`, :class:`Run`); ``bench.report``
turns them into a table, JSON and plots. Every process started here is owned by a ``with`` block or a
``finally`` clause, so an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import celery
import kombu
import redis

from bench import brokers, defaults, lanes, loadgen, machine, pools, stats
from bench.broker import Broker, from_option, redact
from bench.brokers import BrokerHandle
from bench.config import Config
from bench.faults import reliability_section
from bench.lanes import Lane
from bench.progress import Listener, PlannedStep, Silent
from bench.results import Fidelity, Result, Run
from bench.worker import PROJECT_ROOT, Worker, await_consuming, control_app

WORKER_LOGLEVEL = "WARNING"
"""Log level of benchmark workers: the figures measure the pool, not one log line per task."""

CAPACITY_TARGET = 3.0
"""The open-loop generator's producer (one thread, as the generator runs) should enqueue at least this many
times faster than the slowest pool drains."""

CAPACITY_MODE = "producer.1-thread"
"""The producer figure the capacity ratio uses: the open-loop generator sends from one thread, so the
rate of more threads or processes is not a rate it can reach."""

OVERHEAD_TARGET = 0.02
"""The harness's per-call timing should add at most this fraction to the enqueue latency; the check passes
when its interval lies within +-this, and says so when the interval is too wide to tell."""

LAG_NOTE = 0.05
"""Seconds behind schedule beyond which the open-loop generator's lag is noted in the report."""

RELIABILITY_SEED_ONLY = (
    "reliability section skipped: its fault scenarios run the seed app (tasks) with their own delivery "
    "settings, not the configuration under test (--app / --set); run without them for that section"
)


@dataclass(frozen=True)
class Plan:
    """Sizes of one run. ``QUICK`` still reports every figure, with fewer samples."""

    enqueue_rounds: int
    enqueue_per_round: int
    overhead_blocks: int
    overhead_per_block: int
    producer_rounds: int
    producer_per_thread: int
    producer_parallel: int
    drain_rounds: int
    drain_tasks: int
    e2e_rate: float
    e2e_seconds: float
    """Seconds of one open-loop round (``e2e_rounds`` or more rounds run per pool)."""
    concurrency: Mapping[str, tuple[int, ...]]
    e2e_rounds: int = 3
    max_rounds: Mapping[str, int] = field(default_factory=dict)
    """Most rounds per adaptive step (``enqueue``, ``producer``, ``drain``, ``io``, ``e2e``); absent: the
    minimum."""
    budget_s: Mapping[str, float] = field(default_factory=dict)
    """Seconds per adaptive step (``defaults.QUICK_BUDGET_S`` / ``FULL_BUDGET_S``); absent: no time limit."""
    io_rounds: int = 3
    """Least rounds of the I/O drain (``bench.probes.io_wait`` tasks) per pool and concurrency."""
    io_waves: int = defaults.IO_WAVES
    """I/O tasks per round and slot of the pool (see :meth:`io_tasks`)."""

    def io_tasks(self, concurrency: int) -> int:
        """I/O tasks per round on ``concurrency`` slots: ``io_waves`` per slot, at most ``drain_tasks``."""
        return max(2, min(self.drain_tasks, self.io_waves * concurrency))

    @property
    def e2e_count(self) -> int:
        """Open-loop arrivals per round."""
        return max(1, round(self.e2e_rate * self.e2e_seconds))

    def budget(self, step: str) -> loadgen.Budget:
        """The rounds and seconds ``step`` may use: its ``*_rounds`` field is the minimum."""
        least = {
            "enqueue": self.enqueue_rounds,
            "producer": self.producer_rounds,
            "drain": self.drain_rounds,
            "io": self.io_rounds,
            "e2e": self.e2e_rounds,
        }[step]
        most = max(least, self.max_rounds.get(step, least))
        return loadgen.Budget(least, most, self.budget_s.get(step, float("inf")))


_PARALLEL = max(2, os.cpu_count() or 1)

QUICK = Plan(
    enqueue_rounds=5,
    enqueue_per_round=200,
    overhead_blocks=30,
    overhead_per_block=20,
    producer_rounds=3,
    producer_per_thread=500,
    producer_parallel=_PARALLEL,
    drain_rounds=3,
    drain_tasks=500,
    e2e_rate=100.0,
    e2e_seconds=2.0,
    concurrency={
        "solo": (1,),
        "prefork": (defaults.WORKER_CONCURRENCY,),
        "threads": (defaults.WORKER_CONCURRENCY,),
        "gevent": (defaults.GREEN_CONCURRENCY,),
        "eventlet": (defaults.GREEN_CONCURRENCY,),
    },
    e2e_rounds=3,
    max_rounds={"enqueue": 40, "producer": 10, "drain": 10, "io": 8, "e2e": 8},
    budget_s=defaults.QUICK_BUDGET_S,
)

FULL = Plan(
    enqueue_rounds=10,
    enqueue_per_round=1000,
    overhead_blocks=100,
    overhead_per_block=20,
    producer_rounds=5,
    producer_per_thread=2000,
    producer_parallel=_PARALLEL,
    drain_rounds=5,
    drain_tasks=3000,
    e2e_rate=200.0,
    e2e_seconds=10.0,
    concurrency={
        "solo": (1,),
        "prefork": (2, 4),
        "threads": (2, 8),
        "gevent": (10, defaults.GREEN_CONCURRENCY),
        "eventlet": (10, defaults.GREEN_CONCURRENCY),
    },
    e2e_rounds=3,
    max_rounds={"enqueue": 60, "producer": 15, "drain": 12, "io": 12, "e2e": 9},
    budget_s=defaults.FULL_BUDGET_S,
)


@dataclass(frozen=True)
class Options:
    """What the user asked for (built by ``bench.cli``, or by hand: ``run(Options(...))``)."""

    pools: tuple[str, ...]
    broker_url: str | None = None
    quick: bool = False
    reliability: bool = True
    plan: Plan | None = None
    config: Config = field(default_factory=Config)
    """The configuration under test (app, ``--set`` settings); each cell adds its pool and concurrency."""
    brokers: tuple[str, ...] = ("redis",)
    """The broker kinds under test (``bench.brokers.KINDS`` order). ``broker_url``, if given, is the broker
    of its scheme's kind (the others are private); the result backend is always Redis."""

    @property
    def sizes(self) -> Plan:
        return self.plan or (QUICK if self.quick else FULL)

    @property
    def url_kind(self) -> str | None:
        """The kind of ``broker_url`` (from its scheme), or None without one."""
        return brokers.kind_of_url(self.broker_url) if self.broker_url else None

    def private(self, kind: str) -> bool:
        """Whether the broker of ``kind`` is a private one the run starts."""
        return kind != self.url_kind


STEP_SECONDS = {
    "broker": 0.5,
    "rabbitmq_start": 13.0,
    "rabbitmq_stop": 1.2,
    "enqueue_call": 1.5e-3,
    "overhead_call": 1.8e-3,
    "producer_1_thread_task": 1 / 1000,
    "producer_threads_task": 1 / 1500,
    "producer_processes_task": 1 / 1500,
    "producer_process_round": 1.0,
    "worker_start": 1.0,
    "drain_task": 1 / 275,
    "io_task_slot": defaults.IO_WAIT_S * 1.1,
    "e2e_after_arrivals": 1.5,
    "reliability_pool_quick": 37.0,  # per pool and broker: solo on both brokers, quick, 75 s
    "reliability_pool_full": 137.0,  # per pool and broker: 3 pools x 2 brokers, full, 820 s
    "done": 0.5,
}
"""Expected seconds of each part of the main job on the reference machine (2 cores, shared with other
test runs), measured from ``--quick`` and full runs there (a full run without reliability: 508 s; a
private RabbitMQ node: 9-14 s to start, ~1.2 s to stop): the weights of the progress plan
(``plan_steps``; for an adaptive step, the cost of one round). Only their ratios matter: the estimate of
the time left rescales them by the pace observed in the run (``bench.progress.Estimate``)."""


def plan_steps(options: Options) -> tuple[PlannedStep, ...]:
    """The steps ``run`` reports, in its order, each with its expected seconds (``STEP_SECONDS``).

    An adaptive step is expected to run until its budget (a shared machine rarely pins its figures
    sooner), but never less than its minimum rounds or more than its maximum rounds take.
    """
    sizes, cost, kinds = options.sizes, STEP_SECONDS, options.brokers

    def adaptive(step: str, per_round: float) -> float:
        budget = sizes.budget(step)
        return max(budget.min_rounds * per_round, min(budget.seconds, budget.max_rounds * per_round))

    steps = [PlannedStep("broker", cost["broker"])]
    for kind in (k for k in kinds if k != "redis"):
        start = cost["rabbitmq_start"] if options.private(kind) else cost["broker"]
        steps.append(PlannedStep(f"{kind} start", start))
    enqueue_round = len(kinds) * sizes.enqueue_per_round * cost["enqueue_call"]
    steps += [
        PlannedStep("enqueue latency", adaptive("enqueue", enqueue_round)),
        PlannedStep("fidelity", sizes.overhead_blocks * sizes.overhead_per_block * cost["overhead_call"]),
    ]
    for kind in kinds:
        steps += _producer_steps(_on(kind), sizes, adaptive)
    for pool in options.pools:
        for concurrency in sizes.concurrency.get(pool, (1,)):
            for kind in kinds:
                steps += _cell_steps(_cell_name(kind, pool, concurrency), sizes, adaptive, concurrency)
    steps += [
        PlannedStep(f"{k} stop", cost["rabbitmq_stop"]) for k in kinds if k != "redis" and options.private(k)
    ]
    if options.reliability:
        per_pool = cost["reliability_pool_quick" if options.quick else "reliability_pool_full"]
        steps.append(PlannedStep("reliability", per_pool * len(options.pools) * len(kinds)))
    steps.append(PlannedStep("done", cost["done"]))
    return tuple(steps)


def _producer_steps(on: str, sizes: Plan, adaptive: Callable[[str, float], float]) -> list[PlannedStep]:
    """A broker's producer steps (``on``: `` on rabbitmq``, or nothing for Redis)."""
    cost, n, per = STEP_SECONDS, sizes.producer_parallel, sizes.producer_per_thread
    processes = n * per * cost["producer_processes_task"] + cost["producer_process_round"]
    return [
        PlannedStep(f"producer 1 thread{on}", adaptive("producer", per * cost["producer_1_thread_task"])),
        PlannedStep(f"producer threads{on}", adaptive("producer", n * per * cost["producer_threads_task"])),
        PlannedStep(f"producer processes{on}", adaptive("producer", processes)),
    ]


def _cell_steps(
    label: str, sizes: Plan, adaptive: Callable[[str, float], float], concurrency: int
) -> list[PlannedStep]:
    """A pool cell's steps: its worker's start, the drain, the I/O drain, the open loop."""
    cost = STEP_SECONDS
    return [
        PlannedStep(f"{label} start", cost["worker_start"]),
        PlannedStep(f"{label} drain", adaptive("drain", sizes.drain_tasks * cost["drain_task"])),
        PlannedStep(f"{label} I/O drain", adaptive("io", _io_round_cost(sizes, concurrency))),
        PlannedStep(f"{label} open loop", adaptive("e2e", sizes.e2e_seconds + cost["e2e_after_arrivals"])),
    ]


def _io_round_cost(sizes: Plan, concurrency: int) -> float:
    """Expected seconds of one I/O drain round: its waits one slot of the pool at a time, but never less
    than draining as many no-ops (a green pool's slots outrun Celery's per-task cost)."""
    tasks = sizes.io_tasks(concurrency)
    return max(tasks / concurrency * STEP_SECONDS["io_task_slot"], tasks * STEP_SECONDS["drain_task"])


# -- the run -----------------------------------------------------------------------------------------
def run(options: Options, *, progress: Listener | None = None) -> Run:
    """Run the matrix; returns the records (never prints: ``progress`` receives the plan, then each step)."""
    steps: Listener = progress or Silent()
    steps.started(plan_steps(options))
    started = time.monotonic()
    control_start = machine.measure()
    backend = from_option(options.broker_url if options.url_kind == "redis" else None)
    role = "the result backend" + (" and the Redis broker" if "redis" in options.brokers else "")
    what = "starting a private Redis" if backend.owned else "checking " + redact(backend.url)
    steps.step(f"broker: {what} ({role})")
    handles: dict[str, BrokerHandle] = {}
    with backend, contextlib.ExitStack() as stack:
        for kind in options.brokers:
            handles[kind] = _start_handle(kind, options, backend, steps)
            stack.callback(handles[kind].stop)
        measured = _benchmarks(options, backend, list(handles.values()), steps)
        controls = machine.merge(control_start, machine.measure())
        for kind, handle in handles.items():
            if kind != "redis" and handle.owned:
                steps.step(f"{kind}: stopping the private node")
    warnings: list[str] = []
    reliability, errors = _reliability_section(options, steps, warnings)
    assert measured.overhead is not None  # _benchmarks measured it, or raised
    fidelity = _fidelity(measured.overhead, measured.producer, measured.drains, measured.lag_max)
    warnings.extend(_warnings(measured.results, fidelity, options.sizes))
    context = collect_context(
        backend=backend,
        options=options,
        lanes=measured.lanes,
        queue=measured.queue,
        backend_version=measured.backend_version,
        machine_control=controls,
    )
    steps.step("done: rendering the report")
    return Run(
        context=context,
        results=_configured(measured.results, options.config),
        fidelity=fidelity,
        warnings=tuple(warnings),
        reliability=reliability,
        duration_s=time.monotonic() - started,
        samples=measured.samples,
        errors=tuple(errors),
    )


def _start_handle(kind: str, options: Options, backend: Broker, steps: Listener) -> BrokerHandle:
    """The broker of ``kind``, started: the backend's Redis for ``redis``, else a private node or the
    user's ``--broker-url`` (checked)."""
    if kind == "redis":
        from bench.brokers.redis import RedisBroker

        return RedisBroker(backend)  # started already; stopping it again is harmless
    if options.private(kind):
        handle = brokers.private(kind)
        steps.step(f"{kind}: starting a private node")
    else:
        assert options.broker_url is not None
        handle = brokers.external(options.broker_url)
        steps.step(f"{kind}: checking {handle.redacted}")
    return handle.start()


@dataclass
class _Measured:
    """What the benchmark part of a run measured (before the reliability section and the report)."""

    queue: str
    backend_version: str | None = None
    lanes: list[Lane] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict)
    overhead: tuple[loadgen.Overhead, loadgen.Overhead] | None = None
    producer: list[Result] = field(default_factory=list)
    drains: dict[tuple[str, str, int], float] = field(default_factory=dict)
    """Median drain rate per (broker, pool, concurrency)."""
    lag_max: float = 0.0


def _benchmarks(options: Options, backend: Broker, handles: list[BrokerHandle], steps: Listener) -> _Measured:
    """Enqueue, producer, then per pool and concurrency the drain and the open loop, on every broker."""
    run_id = uuid.uuid4().hex[:10]
    measured = _Measured(queue=f"celery-bench.{run_id}")
    conn = backend.client()
    measured.backend_version = lanes.redis_server_version(conn)
    try:
        for handle in handles:
            measured.lanes.append(lanes.lane(handle, measured.queue).open())
        _producer_side(options, backend.url, measured, steps)
        for pool in options.pools:
            for concurrency in options.sizes.concurrency.get(pool, (1,)):
                for lane in measured.lanes:
                    _measure_cell(
                        options, lane, backend.url, conn, run_id, (pool, concurrency), steps, measured
                    )
    finally:
        for lane in measured.lanes:
            if not lane.handle.owned:
                lane.cleanup()
            lane.close()
        if not backend.owned:
            _cleanup_external(conn, measured.queue, run_id)
        conn.close()
    return measured


def _producer_side(options: Options, backend_url: str, measured: _Measured, steps: Listener) -> None:
    """Enqueue latency (every broker interleaved), then producer throughput per broker."""
    sizes, config, queue = options.sizes, options.config, measured.queue
    settings, reuse = config.producer_settings, config.producer_reuse
    with contextlib.ExitStack() as stack:
        for lane in measured.lanes:
            lane.client = stack.enter_context(
                loadgen.Client(
                    lane.handle.url, queue, backend_url=backend_url, settings=settings, reuse_producer=reuse
                )
            )
            lane.probe(lane.client)
        enqueue, measured.overhead = _enqueue(measured.lanes, queue, sizes, steps, measured.samples)
        measured.results.extend(enqueue)
        for lane in measured.lanes:
            measured.producer += _producer(lane, backend_url, queue, sizes, steps, config)
        measured.results.extend(measured.producer)
        for lane in measured.lanes:
            lane.client = None


def _measure_cell(
    options: Options,
    lane: Lane,
    backend_url: str,
    conn: redis.Redis,
    run_id: str,
    where: tuple[str, int],
    steps: Listener,
    measured: _Measured,
) -> None:
    """One pool cell on one broker: its rows, its drain rate and its generator lag into ``measured``."""
    pool, concurrency = where
    cell, lag = _pool_cell(
        lane, backend_url, conn, measured.queue, run_id, pool, concurrency, options.sizes, steps,
        measured.samples, options.config,
    )  # fmt: skip
    measured.results.extend(cell)
    measured.lag_max = max(measured.lag_max, lag)
    drain = next(r for r in cell if r.scenario == "drain")
    assert drain.throughput is not None
    measured.drains[(lane.kind, pool, concurrency)] = drain.throughput.median


def _reliability_section(
    options: Options, steps: Listener, warnings: list[str]
) -> tuple[tuple[Any, ...] | None, list[str]]:
    """The fault scenarios (the seed app only); a failure is reported, and the figures still are."""
    if not options.reliability:
        return None, []
    if not options.config.is_default:
        warnings.append(RELIABILITY_SEED_ONLY)
        steps.note(RELIABILITY_SEED_ONLY)
        return None, []
    steps.step("reliability: fault scenarios (bench.faults)")
    try:
        return _reliability(options, steps.note), []
    except Exception as exc:  # the figures measured so far are still reported; the exit status says 1
        error = f"reliability section failed: {type(exc).__name__}: {exc}"
        steps.note(error)
        return None, [error]


def _configured(results: list[Result], config: Config) -> tuple[Result, ...]:
    """Each row with the configuration it measured: ``config`` on the row's pool and concurrency."""
    return tuple(dataclasses.replace(r, config=config.on(r.pool, r.concurrency)) for r in results)


ENQUEUE_TITLES = {
    "enqueue.floor": "{floor}",
    "enqueue.apply_async": "apply_async(ignore_result=True)",
    "enqueue.delay": "delay() (Redis result backend)",
}
"""The enqueue rows and their titles (``{floor}``: the broker's floor, ``lanes.FLOOR_TITLES``)."""


def _enqueue(
    lanes_: list[Lane],
    queue: str,
    sizes: Plan,
    steps: Listener,
    samples: dict[str, tuple[float, ...]],
) -> tuple[list[Result], tuple[loadgen.Overhead, loadgen.Overhead]]:
    """Every broker's floor, ``apply_async`` and ``delay``, all interleaved in the same rounds until
    precise; then the timing overhead (on the first broker)."""
    with contextlib.ExitStack() as stack:
        calls: dict[str, Callable[[], object]] = {}
        floors = []
        for lane in lanes_:
            assert lane.client is not None
            floors.append(stack.enter_context(lane.floor()))
            functions = (floors[-1], lane.client.apply_async_ignore, lane.client.delay)
            calls.update(
                {f"{name}{lane.suffix}": f for name, f in zip(ENQUEUE_TITLES, functions, strict=True)}
            )

        def trim() -> None:  # keep the queues small between rounds (no worker consumes them yet)
            for lane in lanes_:
                lane.trim(f"{queue}.floor", queue)

        budget = sizes.budget("enqueue")
        kinds = ", ".join(f"{lane.kind} ({lane.message_bytes} B)" for lane in lanes_)
        steps.step(
            f"enqueue latency: floor, apply_async, delay on {kinds} interleaved, "
            f"{budget.min_rounds}-{budget.max_rounds} rounds x {sizes.enqueue_per_round} calls"
        )
        measured = _interleaved(calls, sizes, budget, trim)
        for name, rounds in measured.items():
            samples[name] = tuple(v for r in rounds for v in r)
        steps.step(f"fidelity: per-call timing vs a bare loop (apply_async, floor on {lanes_[0].kind})")
        assert lanes_[0].client is not None
        overhead = loadgen.timing_overhead(
            lanes_[0].client.apply_async_ignore,
            blocks=sizes.overhead_blocks,
            per_block=sizes.overhead_per_block,
        )
        overhead_floor = loadgen.timing_overhead(  # the floor is ~7x cheaper: more calls, same time
            floors[0], blocks=sizes.overhead_blocks, per_block=sizes.overhead_per_block * 5
        )
        trim()
    results = [r for lane in lanes_ for r in _enqueue_results(measured, lane)]
    return results, (overhead, overhead_floor)


def _interleaved(
    calls: Mapping[str, Callable[[], object]], sizes: Plan, budget: loadgen.Budget, trim: Callable[[], None]
) -> dict[str, list[list[float]]]:
    """Rounds of every call in turn until each call's round medians are precise (or the budget is spent)."""
    measured: dict[str, list[list[float]]] = {name: [] for name in calls}
    loadgen.warm_up(calls)
    trim()
    loadgen.rounds_until_precise(
        lambda: loadgen.interleaved_round(calls, measured, per_round=sizes.enqueue_per_round, between=trim),
        lambda: {name: [statistics.median(r) for r in rounds] for name, rounds in measured.items()},
        dict.fromkeys(calls, defaults.PRECISION_TARGET),
        budget,
    )
    return measured


def _enqueue_results(measured: Mapping[str, list[list[float]]], lane: Lane) -> list[Result]:
    """One latency row per enqueue call on ``lane``'s broker, each with its ratio to that broker's own
    floor's median and its precision."""
    floor = f"enqueue.floor{lane.suffix}"
    floor_summary = stats.summarize_latency(measured[floor], what=floor)
    out = []
    for name in ENQUEUE_TITLES:
        rounds = measured[f"{name}{lane.suffix}"]
        what = f"{name}{lane.suffix}"
        summary = floor_summary if name == "enqueue.floor" else stats.summarize_latency(rounds, what=what)
        precision = stats.precision(
            summary.round_medians, statistic="median", target=defaults.PRECISION_TARGET
        )
        out.append(
            Result(
                scenario=name,
                title=ENQUEUE_TITLES[name].format(floor=lane.floor_title),
                pool=None,
                concurrency=None,
                latency=summary,
                floor_ratio=stats.ratio(summary.median, floor_summary.median),
                precision=(precision,),
                broker=lane.kind,
            )
        )
    return out


def _producer(
    lane: Lane, backend_url: str, queue: str, sizes: Plan, steps: Listener, config: Config
) -> list[Result]:
    """Producer throughput on ``lane``'s broker: 1 thread, N threads, N processes."""
    client, n, per = lane.client, sizes.producer_parallel, sizes.producer_per_thread
    assert client is not None
    modes: list[tuple[str, str, Callable[[], tuple[int, float]]]] = [
        (
            "producer.1-thread",
            "enqueue throughput, 1 thread",
            lambda: loadgen.throughput_threads(lambda: client.apply_async_ignore, threads=1, per_thread=per),
        ),
        (
            f"producer.{n}-threads",
            f"enqueue throughput, {n} threads",
            lambda: loadgen.throughput_threads(lambda: client.apply_async_ignore, threads=n, per_thread=per),
        ),
        (
            f"producer.{n}-processes",
            f"enqueue throughput, {n} processes",
            lambda: loadgen.throughput_processes(
                lane.handle.url, queue, processes=n, per_process=per, settings=config.producer_settings,
                backend_url=backend_url,
            ),
        ),
    ]  # fmt: skip
    out = []
    budget = sizes.budget("producer")
    for name, title, measure in modes:
        steps.step(
            f"producer throughput: {title}{lane.suffix} ({budget.min_rounds}-{budget.max_rounds} rounds)"
        )
        rounds = _rounds_of(measure, budget, after=lambda: lane.trim(queue))
        throughput = stats.summarize_throughput(rounds, what=f"{name}{lane.suffix}")
        out.append(
            Result(
                scenario=name,
                title=title,
                pool=None,
                concurrency=None,
                throughput=throughput,
                precision=(_rate_precision(throughput),),
                broker=lane.kind,
            )
        )
    return out


def _rounds_of(
    measure: Callable[[], tuple[int, float]], budget: loadgen.Budget, *, after: Callable[[], object]
) -> list[tuple[int, float]]:
    """``(count, seconds)`` rounds of ``measure`` until their rates are precise or ``budget`` is spent."""
    rounds: list[tuple[int, float]] = []

    def one() -> None:
        rounds.append(measure())
        after()

    loadgen.rounds_until_precise(
        one,
        lambda: {"rate": [c / t for c, t in rounds if c > 0 and t > 0]},
        {"rate": defaults.PRECISION_TARGET},
        budget,
    )
    return rounds


def _rate_precision(throughput: stats.ThroughputSummary) -> stats.Precision:
    return stats.precision(throughput.round_rates, statistic="median", target=defaults.PRECISION_TARGET)


@contextlib.contextmanager
def consuming(control: celery.Celery, worker: Worker, queue: str) -> Iterator[None]:
    """The worker consumes ``queue`` inside the block (control add/cancel consumer), and only there: each
    switch is awaited until the worker applied it (``bench.worker.await_consuming``)."""
    nudge = worker.queues[0] if worker.queues else None
    _control(control.control.add_consumer, queue, worker)
    try:
        await_consuming(control, [worker.node], queue, consuming=True, nudge=nudge)
        yield
    finally:
        _control(control.control.cancel_consumer, queue, worker)
        await_consuming(control, [worker.node], queue, consuming=False, nudge=nudge)


def _control(command: Callable[..., Any], queue: str, worker: Worker) -> None:
    replies = command(queue, destination=[worker.node], reply=True, timeout=defaults.CONTROL_TIMEOUT)
    if not any(worker.node in reply for reply in replies or []):
        raise RuntimeError(
            f"worker {worker.node} did not answer {command.__name__}({queue!r}) within "
            f"{defaults.CONTROL_TIMEOUT:g}s; last log lines:\n{worker.log_tail()}"
        )


def _pool_cell(
    lane: Lane,
    backend_url: str,
    conn: redis.Redis,
    queue: str,
    run_id: str,
    pool: str,
    concurrency: int,
    sizes: Plan,
    steps: Listener,
    samples: dict[str, tuple[float, ...]],
    config: Config,
) -> tuple[list[Result], float]:
    """One worker of ``pool`` on ``lane``'s broker (results to the Redis ``backend_url``, which ``conn``
    reads): its drain rounds, then its open-loop rounds."""
    label = f"{pool} x{concurrency}{lane.suffix}"
    tag = f"{pool}{concurrency}" if lane.kind == "redis" else f"{lane.kind}-{pool}{concurrency}"
    steps.step(f"{label}: starting a worker")
    worker = _cell_worker(
        lane.handle.url, backend_url, queue, f"bench-{tag}-{run_id}", config.on(pool, concurrency)
    )
    control, settings = control_app(lane.handle.url), dict(config.settings)
    cell = _Cell(conn, queue, f"{run_id}-{tag}", label, control, worker)
    try:
        with worker, _cell_producer(lane.handle.url, queue, config) as producer:
            budget = sizes.budget("drain")
            tasks = _drain_tasks(sizes.drain_tasks, lane.kind, pool, settings)
            steps.step(
                f"{label}: drain {budget.min_rounds}-{budget.max_rounds} rounds x {tasks} queued no-op tasks"
            )
            drain = stats.summarize_throughput(
                _rounds_of(lambda: cell.drain_round(producer, tasks), budget, after=lambda: None),
                what=f"drain {label}",
            )
            io_tasks = _drain_tasks(sizes.io_tasks(concurrency), lane.kind, pool, settings)
            io = _io_drain(cell, producer, io_tasks, sizes.budget("io"), steps)
            budget = sizes.budget("e2e")
            steps.step(
                f"{label}: open loop, {sizes.e2e_rate:g} tasks/s, {budget.min_rounds}-{budget.max_rounds} "
                f"rounds of {sizes.e2e_seconds:g}s"
            )
            loop = _OpenLoopRounds(cell, producer, sizes)
            loadgen.rounds_until_precise(loop.round, loop.series, E2E_TARGETS, budget)
    finally:
        control.close()
    samples[f"e2e.start:{label}"] = tuple(v for r in loop.to_start for v in r)
    samples[f"e2e.result:{label}"] = tuple(v for r in loop.to_result for v in r)
    rows = _cell_results(label, pool, concurrency, sizes, (drain, io), loop)
    return [_on_broker(r, lane.kind, settings) for r in rows], loop.lag


def _on_broker(row: Result, kind: str, settings: Mapping[str, Any] | None = None) -> Result:
    """``row`` as measured on broker ``kind``, with the known notes of that broker and pool that name its
    scenario: ``lanes.KNOWN_NOTES``, and ``lanes.PACED_NOTE`` where the worker is paced."""
    scenarios, note = lanes.KNOWN_NOTES.get((kind, row.pool or ""), ((), ""))
    notes = (*row.notes, note) if row.scenario in scenarios else row.notes
    if row.scenario in lanes.PACED_SCENARIOS and pools.synloop_paced(kind, row.pool or "", settings or {}):
        notes = (*notes, lanes.PACED_NOTE)
    return dataclasses.replace(row, broker=kind, notes=notes)


def _drain_tasks(tasks: int, kind: str, pool: str, settings: Mapping[str, Any]) -> int:
    """``tasks`` per drain round, or ``defaults.PACED_LOAD_TASKS`` where the worker is paced at ~10 tasks/s
    (``bench.pools.synloop_paced``): a round of 500 would take 50 s for the same rate."""
    return min(tasks, defaults.PACED_LOAD_TASKS) if pools.synloop_paced(kind, pool, settings) else tasks


def _io_drain(
    cell: _Cell, producer: loadgen.Client, tasks: int, budget: loadgen.Budget, steps: Listener
) -> stats.ThroughputSummary:
    """Rounds of a pre-filled queue of ``tasks`` I/O-bound tasks (each waits ``IO_WAIT_S``) drained."""
    wait = f"{defaults.IO_WAIT_S * 1e3:g} ms"
    steps.step(
        f"{cell.label}: I/O drain {budget.min_rounds}-{budget.max_rounds} rounds x {tasks} queued tasks "
        f"waiting {wait}"
    )
    rounds = _rounds_of(
        lambda: cell.drain_round(producer, tasks, task=loadgen.IO_WAIT), budget, after=lambda: None
    )
    return stats.summarize_throughput(rounds, what=f"drain.io {cell.label}")


def _cell_worker(url: str, backend_url: str, queue: str, name: str, config: Config) -> Worker:
    """A pool cell's worker on the broker at ``url``, results to ``backend_url``, idle on ``queue.idle``."""
    return Worker(
        url, **config.worker_kwargs(), queues=(f"{queue}.idle",), backend_url=backend_url,
        loglevel=WORKER_LOGLEVEL, name=name,
    )  # fmt: skip


def _cell_producer(url: str, queue: str, config: Config) -> loadgen.Client:
    """The producer a pool cell sends its drain and open-loop tasks with (no result backend of its own)."""
    settings, reuse = config.producer_settings, config.producer_reuse
    return loadgen.Client(url, queue, backend=False, settings=settings, reuse_producer=reuse)


IO_TITLE = f"worker drain rate, I/O-bound tasks ({defaults.IO_WAIT_S * 1e3:g} ms wait each)"
"""The title of the ``drain.io`` rows."""


def _drain_rows(
    pool: str, concurrency: int, drain: stats.ThroughputSummary, io: stats.ThroughputSummary
) -> list[Result]:
    """The no-op drain's row and the I/O drain's (with its ceiling as a note)."""
    return [
        Result("drain", "worker drain rate (pre-filled queue)", pool, concurrency, throughput=drain,
               precision=(_rate_precision(drain),)),
        Result("drain.io", IO_TITLE, pool, concurrency, throughput=io, precision=(_rate_precision(io),),
               notes=(_io_ceiling(concurrency),)),
    ]  # fmt: skip


def _io_ceiling(concurrency: int) -> str:
    """The rate at which ``concurrency`` slots of waiting alone would cap the I/O drain."""
    ceiling = concurrency / defaults.IO_WAIT_S
    return (
        f"ceiling if only the waits counted: {concurrency} at a time / {defaults.IO_WAIT_S * 1e3:g} ms = "
        f"{ceiling:.0f} tasks/s"
    )


E2E_TARGETS = {
    "start p50": defaults.PRECISION_TARGET,
    "start p99": defaults.PRECISION_TARGET_TAIL,
    "result p50": defaults.PRECISION_TARGET,
    "result p99": defaults.PRECISION_TARGET_TAIL,
}
"""The open-loop series the adaptive rounds hold to a target: each round's p50 and p99 of both latencies."""


@dataclass(frozen=True)
class _Cell:
    """One pool's worker and the names its rounds use (task-id prefixes, the queue it consumes)."""

    conn: redis.Redis
    queue: str
    prefix: str
    label: str
    control: celery.Celery
    worker: Worker

    def drain_round(
        self, producer: loadgen.Client, tasks: int, *, task: str = loadgen.NOOP
    ) -> tuple[int, float]:
        """Fill the queue with ``tasks`` ``task`` messages (no-ops) while the worker is off it, then time
        its drain."""
        prefix = f"{self.prefix}-drain-{uuid.uuid4().hex[:6]}-"
        outcomes = loadgen.drain_round(
            producer, self.conn, prefix, tasks, self.consuming, task=task,
            timeout=defaults.DRAIN_TIMEOUT, what=f"{self.label} worker to drain {tasks} tasks",
        )  # fmt: skip
        return loadgen.drain_rate(outcomes)

    def consuming(self) -> contextlib.AbstractContextManager[None]:
        return consuming(self.control, self.worker, self.queue)


class _OpenLoopRounds:
    """Open-loop rounds on one pool: each a fresh generator at the plan's rate for ``e2e_seconds``."""

    def __init__(self, cell: _Cell, producer: loadgen.Client, sizes: Plan) -> None:
        self.cell, self.producer, self.sizes = cell, producer, sizes
        self.to_start: list[list[float]] = []
        self.to_result: list[list[float]] = []
        self.missing = 0
        self.sent = 0
        self.lag = 0.0

    def round(self) -> None:
        sizes, cell = self.sizes, self.cell
        sent, outcomes = loadgen.open_loop_round(
            self.producer, cell.conn, f"{cell.prefix}-e2e-{len(self.to_start)}-", rate=sizes.e2e_rate,
            count=sizes.e2e_count, consume=cell.consuming, grace=defaults.E2E_GRACE,
            what=f"results of {sizes.e2e_count} open-loop tasks on {cell.label}",
        )  # fmt: skip
        to_start, to_result, missing = loadgen.e2e_latencies(sent, outcomes)
        self.to_start.append(to_start)
        self.to_result.append(to_result)
        self.missing += len(missing)
        self.sent += len(sent)
        self.lag = max(self.lag, loadgen.generator_lag(sent))

    def series(self) -> dict[str, list[float]]:
        """Each round's p50 and p99 (seconds) of enqueue -> start and enqueue -> result."""
        out: dict[str, list[float]] = {}
        for name, rounds in (("start", self.to_start), ("result", self.to_result)):
            kept = [r for r in rounds if r]
            out[f"{name} p50"] = [stats.quantile(r, 0.50) for r in kept]
            out[f"{name} p99"] = [stats.quantile(r, 0.99) for r in kept]
        return out


def _cell_results(
    label: str,
    pool: str,
    concurrency: int,
    sizes: Plan,
    drains: tuple[stats.ThroughputSummary, stats.ThroughputSummary],
    loop: _OpenLoopRounds,
) -> list[Result]:
    """The cell's rows: the no-op drain, the I/O drain (``drains``), the open loop's two latencies."""
    drain, io = drains
    notes: list[str] = []
    if loop.missing:
        notes.append(f"{loop.missing} of {loop.sent} tasks had no successful result")
    if loop.lag > LAG_NOTE:
        notes.append(
            f"the generator fell {loop.lag * 1e3:.0f} ms behind schedule; latency still counts from the "
            "intended enqueue time"
        )
    if sizes.e2e_rate >= drain.median:
        notes.append(
            f"arrival rate {sizes.e2e_rate:g}/s >= drain rate {drain.median:.0f}/s: the worker is "
            "saturated and latency grows with the run's length"
        )
    series = loop.series()
    out = _drain_rows(pool, concurrency, drain, io)
    for name, rounds, to in (
        ("start", loop.to_start, "task start"),
        ("result", loop.to_result, "result available"),
    ):
        scale = stats.UNIT_SCALE["ms"]
        precision = tuple(
            stats.precision(
                [v * scale for v in series[f"{name} {q}"]], statistic=q, target=E2E_TARGETS[f"{name} {q}"]
            )
            for q in ("p50", "p99")
        )
        out.append(
            Result(
                f"e2e.{name}",
                f"enqueue -> {to}, open loop {sizes.e2e_rate:g}/s",
                pool,
                concurrency,
                latency=stats.summarize_latency(rounds, unit="ms", what=f"e2e.{name} {label}"),
                notes=tuple(notes) if name == "start" else (),
                precision=precision,
            )
        )
    return out


def _cleanup_external(conn: redis.Redis, queue: str, run_id: str) -> None:
    """On a broker the user gave, remove every key this run created (and nothing else)."""
    with contextlib.suppress(redis.RedisError):
        keys = [queue, f"{queue}.idle", f"{queue}.floor"]
        keys += [f"_kombu.binding.{k}" for k in (queue, f"{queue}.idle")]
        keys += [f"_kombu.binding_permanent.{k}" for k in (queue, f"{queue}.idle", f"{queue}.sizeprobe")]
        conn.delete(*keys)
        batch: list[bytes] = []
        for key in conn.scan_iter(match=f"{loadgen.RESULT_PREFIX}{run_id}-*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                conn.delete(*batch)
                batch.clear()
        if batch:
            conn.delete(*batch)


def _reliability(options: Options, note: Callable[[str], None]) -> tuple[Any, ...]:
    """The reliability section (``bench.faults``): fault scenarios with loss accounting, per broker and
    pool (the run's ``--broker`` kinds)."""
    records = reliability_section(
        list(options.pools), broker_url=options.broker_url, quick=options.quick, progress=note,
        brokers=options.brokers,
    )  # fmt: skip
    return tuple(records)


def _capacity(
    producer: list[Result], drains: Mapping[tuple[str, str, int], float]
) -> tuple[float | None, tuple[tuple[str, str, int], float] | None]:
    """The one-thread producer's rate and the slowest drain: per broker (each broker's generator sends
    to that broker's workers), the broker whose ratio of the two is the lowest."""
    capacities = {
        r.broker: r.throughput.median for r in producer if r.scenario == CAPACITY_MODE and r.throughput
    }
    slowest: dict[str, tuple[tuple[str, str, int], float]] = {}
    for key, rate in drains.items():
        if key[0] not in slowest or rate < slowest[key[0]][1]:
            slowest[key[0]] = (key, rate)
    if not slowest:
        return next(iter(capacities.values()), None), None
    worst = min(slowest.values(), key=lambda item: capacities.get(item[0][0], math.inf) / max(item[1], 1e-9))
    return capacities.get(worst[0][0]), worst


def _fidelity(
    overhead: tuple[loadgen.Overhead, loadgen.Overhead],
    producer: list[Result],
    drains: Mapping[tuple[str, str, int], float],
    lag_max: float,
) -> Fidelity:
    capacity, slowest = _capacity(producer, drains)
    call, floor = overhead[0].difference, overhead[1].difference
    return Fidelity(
        timing_overhead=call.median,
        timing_overhead_interval=(call.low, call.high),
        timing_overhead_floor=floor.median,
        timing_overhead_floor_interval=(floor.low, floor.high),
        overhead_calls=overhead[0].calls,
        overhead_pairs=call.pairs,
        overhead_confidence=call.confidence,
        producer_capacity=capacity,
        producer_mode=CAPACITY_MODE if capacity is not None else None,
        slowest_pool=_cell_name(*slowest[0]) if slowest else None,
        slowest_drain=slowest[1] if slowest else None,
        capacity_ratio=stats.ratio(capacity, slowest[1]) if capacity is not None and slowest else None,
        generator_lag_max_s=lag_max if drains else None,
    )


def _on(broker: str) -> str:
    """What a label of a broker's figures adds: nothing for Redis (as before one broker was an axis)."""
    return "" if broker == "redis" else f" on {broker}"


def _cell_name(broker: str, pool: str, concurrency: int) -> str:
    return f"{pool} x{concurrency}{_on(broker)}"


def _warnings(results: list[Result], fidelity: Fidelity, sizes: Plan) -> list[str]:
    out = []
    for r in results:
        summary = r.latency or r.throughput
        if summary is not None and summary.warning:
            out.append(summary.warning)
    if fidelity.capacity_ratio is not None:
        if fidelity.capacity_ratio < 1.0:
            out.append(
                f"the open-loop generator's producer (1 thread) cannot outrun the drain: "
                f"{fidelity.producer_capacity:.0f} tasks/s enqueued vs {fidelity.slowest_drain:.0f} tasks/s "
                f"drained by {fidelity.slowest_pool}; drain rates are measured from a pre-filled queue, but "
                "open-loop rates above the producer's are unreachable"
            )
        elif fidelity.capacity_ratio < CAPACITY_TARGET:
            out.append(
                f"the open-loop generator's producer (1 thread) is only {fidelity.capacity_ratio:.1f}x the "
                f"slowest drain rate ({fidelity.slowest_pool}); the target is >= {CAPACITY_TARGET:g}x"
            )
    out.extend(_precision_warnings(results))
    overhead = _overhead_warning(fidelity)
    if overhead:
        out.append(overhead)
    return out


def _precision_warnings(results: list[Result]) -> list[str]:
    """One warning per headline figure whose rounds did not reach their precision target."""
    out = []
    for r in results:
        where = r.where
        for p in r.precision:
            if not p.reached:
                out.append(
                    f"{where}: the {p.statistic} over {p.rounds} rounds is pinned to ±{p.half_width:.1%} "
                    f"({p.confidence:.0%} interval), not the ±{p.target:.1%} target: the step's budget ran "
                    "out first (rounds or seconds); expect this figure to vary more from run to run"
                )
    return out


def _overhead_warning(fidelity: Fidelity) -> str | None:
    """A warning when the timing-overhead interval shows an overhead beyond the target, or cannot bound it."""
    low, high = fidelity.timing_overhead_interval
    interval = (
        f"{low:+.2%} .. {high:+.2%} ({fidelity.overhead_confidence:.0%}, {fidelity.overhead_pairs} pairs)"
    )
    if low > OVERHEAD_TARGET or high < -OVERHEAD_TARGET:
        return (
            f"per-call timing differs from a bare loop by {fidelity.timing_overhead:+.1%}, interval "
            f"{interval}: beyond the {OVERHEAD_TARGET:.0%} target"
        )
    if low < -OVERHEAD_TARGET or high > OVERHEAD_TARGET:
        return (
            f"the timing-overhead check cannot bound the per-call timing within {OVERHEAD_TARGET:.0%}: "
            f"interval {interval} is wider than the target; the machine may be busy, rerun or add blocks"
        )
    return None


# -- context -----------------------------------------------------------------------------------------
def git_commit() -> str | None:
    """The repository's commit, with ``-dirty`` when tracked files changed; ``None`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


broker_server_version = lanes.redis_server_version  # the name this module had for it


def broker_context(lane: Lane) -> dict[str, Any]:
    """One broker under test: kind, redacted URL, private or the user's, server version, the message its
    floor pushes, and (a private node) its start and stop times."""
    return {
        "kind": lane.kind,
        "url": lane.handle.redacted,
        "private": lane.handle.owned,
        "server_version": lane.server_version,
        "message_bytes": lane.message_bytes,
        "floor": lane.floor_title,
        "start_seconds": list(getattr(lane.handle, "start_seconds", [])),
        "stop_seconds": list(getattr(lane.handle, "stop_seconds", [])),
    }


def collect_context(
    *,
    backend: Broker,
    options: Options,
    lanes: list[Lane],
    queue: str,
    backend_version: str | None = None,
    machine_control: Mapping[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Versions, machine, commit and run parameters: what a saved result needs to be comparable.

    ``broker``, ``broker_private``, ``broker_server`` and ``message_bytes`` are those of the first broker
    (as in schema 2); ``brokers`` has every broker, ``result_backend`` the Redis that took the results."""
    sizes, first = options.sizes, lanes[0]
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(),
        "broker": first.handle.redacted,
        "broker_private": first.handle.owned,
        "broker_server": first.server_version,
        "brokers": [broker_context(lane) for lane in lanes],
        "result_backend": {
            "kind": "redis",
            "url": redact(backend.url),
            "private": backend.owned,
            "server_version": backend_version,
        },
        "pools": {p: list(sizes.concurrency.get(p, (1,))) for p in options.pools},
        "quick": options.quick,
        "plan": dataclasses.asdict(sizes)
        | {"concurrency": {k: list(v) for k, v in sizes.concurrency.items()}},
        "message_bytes": first.message_bytes,
        "queue": queue,
        "serializer": options.config.producer_settings.get("task_serializer", "json"),
        "config": options.config.to_json(),
        "worker_loglevel": WORKER_LOGLEVEL,
        "argv": [redact(arg) if "://" in arg else arg for arg in sys.argv[1:]],
        "machine_control": dict(machine_control or {}),
    }
