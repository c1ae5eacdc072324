"""What the main job runs, in which order: the benchmark matrix (pools x measurements).

1. enqueue latency of ``delay()`` and ``apply_async(ignore_result=True)``, with the raw ``LPUSH`` floor
   of a same-size message measured in the same run, and the harness's own timing overhead;
2. producer throughput from 1 thread, N threads and N processes;
3. per pool (and concurrency), with one real worker: the drain rate of a pre-filled queue of no-op
   tasks, the same for I/O-bound tasks (``bench.probes.io_wait``: what green-thread pools are for), then
   the open-loop end-to-end latency (enqueue -> task start, enqueue -> result available);
4. the reliability section (``bench.faults``, another module), when it is there and not skipped.

Results are immutable records (:class:`Result`, :class:`Fidelity`, :class:`Run`); ``bench.report``
turns them into a table, JSON and plots. Every process started here is owned by a ``with`` block or a
``finally`` clause, so an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from bench import defaults, loadgen, stats
from bench.broker import Broker, from_option, redact
from bench.config import Config
from bench.faults import reliability_section
from bench.progress import Listener, PlannedStep, Silent
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

    @property
    def sizes(self) -> Plan:
        return self.plan or (QUICK if self.quick else FULL)


@dataclass(frozen=True)
class Result:
    """One row of the report: a scenario, on a pool (or on the producer side: ``pool=None``)."""

    scenario: str
    title: str
    pool: str | None
    concurrency: int | None
    latency: stats.LatencySummary | None = None
    throughput: stats.ThroughputSummary | None = None
    floor_ratio: float | None = None
    notes: tuple[str, ...] = ()
    config: Config = field(default_factory=Config)
    """The configuration this row measured (its pool and concurrency included)."""
    precision: tuple[stats.Precision, ...] = ()
    """How precisely the rounds pin the row's headline statistics (median, or p50 and p99), against the
    targets the adaptive rounds worked for (``defaults.PRECISION_TARGET*``)."""


@dataclass(frozen=True)
class Fidelity:
    """Whether the harness distorts what it measures, measured in the same run.

    ``timing_overhead*`` bound only the per-call clock reads of the enqueue loop (an interval: see
    ``loadgen.Overhead``); ``capacity_ratio`` compares the one-thread producer (what the open-loop
    generator can send) with the slowest drain.
    """

    timing_overhead: float
    timing_overhead_interval: tuple[float, float]
    timing_overhead_floor: float
    timing_overhead_floor_interval: tuple[float, float]
    overhead_calls: int
    overhead_pairs: int
    overhead_confidence: float
    producer_capacity: float | None
    producer_mode: str | None
    slowest_pool: str | None
    slowest_drain: float | None
    capacity_ratio: float | None
    generator_lag_max_s: float | None


@dataclass(frozen=True)
class Run:
    """Everything one ``bench run`` measured, plus the raw samples the plots need."""

    context: Mapping[str, Any]
    results: tuple[Result, ...]
    fidelity: Fidelity
    warnings: tuple[str, ...]
    reliability: tuple[Any, ...] | None
    duration_s: float
    samples: Mapping[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    errors: tuple[str, ...] = ()
    """Sections that failed after the benchmarks were measured (the report is still written)."""


STEP_SECONDS = {
    "broker": 0.5,
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
    "reliability_pool_quick": 15.0,
    "reliability_pool_full": 90.0,
    "done": 0.5,
}
"""Expected seconds of each part of the main job on the reference machine (2 cores, shared with other
test runs), measured from ``--quick`` and full runs there (a full run without reliability: 508 s): the
weights of the progress plan (``plan_steps``; for an adaptive step, the cost of one round). Only their
ratios matter: the estimate of the time left rescales them by the pace observed in the run
(``bench.progress.Estimate``)."""


def plan_steps(options: Options) -> tuple[PlannedStep, ...]:
    """The steps ``run`` reports, in its order, each with its expected seconds (``STEP_SECONDS``).

    An adaptive step is expected to run until its budget (a shared machine rarely pins its figures
    sooner), but never less than its minimum rounds or more than its maximum rounds take.
    """
    sizes, cost = options.sizes, STEP_SECONDS
    n, per = sizes.producer_parallel, sizes.producer_per_thread

    def adaptive(step: str, per_round: float) -> float:
        budget = sizes.budget(step)
        return max(budget.min_rounds * per_round, min(budget.seconds, budget.max_rounds * per_round))

    steps = [
        PlannedStep("broker", cost["broker"]),
        PlannedStep("enqueue latency", adaptive("enqueue", sizes.enqueue_per_round * cost["enqueue_call"])),
        PlannedStep("fidelity", sizes.overhead_blocks * sizes.overhead_per_block * cost["overhead_call"]),
        PlannedStep("producer 1 thread", adaptive("producer", per * cost["producer_1_thread_task"])),
        PlannedStep("producer threads", adaptive("producer", n * per * cost["producer_threads_task"])),
        PlannedStep(
            "producer processes",
            adaptive("producer", n * per * cost["producer_processes_task"] + cost["producer_process_round"]),
        ),
    ]
    for pool in options.pools:
        for concurrency in sizes.concurrency.get(pool, (1,)):
            steps += [
                PlannedStep(f"{pool} x{concurrency} start", cost["worker_start"]),
                PlannedStep(
                    f"{pool} x{concurrency} drain", adaptive("drain", sizes.drain_tasks * cost["drain_task"])
                ),
                PlannedStep(
                    f"{pool} x{concurrency} I/O drain", adaptive("io", _io_round_cost(sizes, concurrency))
                ),
                PlannedStep(
                    f"{pool} x{concurrency} open loop",
                    adaptive("e2e", sizes.e2e_seconds + cost["e2e_after_arrivals"]),
                ),
            ]
    if options.reliability:
        per_pool = cost["reliability_pool_quick" if options.quick else "reliability_pool_full"]
        steps.append(PlannedStep("reliability", per_pool * len(options.pools)))
    steps.append(PlannedStep("done", cost["done"]))
    return tuple(steps)


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
    broker = from_option(options.broker_url)
    steps.step(f"broker: {'starting a private Redis' if broker.owned else 'checking ' + redact(broker.url)}")
    with broker:
        measured = _benchmarks(options, broker, steps)
    warnings: list[str] = []
    reliability, errors = _reliability_section(options, steps, warnings)
    assert measured.overhead is not None  # _benchmarks measured it, or raised
    fidelity = _fidelity(measured.overhead, measured.producer, measured.drains, measured.lag_max)
    warnings.extend(_warnings(measured.results, fidelity, options.sizes))
    context = collect_context(
        broker=broker,
        options=options,
        message_bytes=measured.message_bytes,
        queue=measured.queue,
        server_version=measured.server_version,
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


@dataclass
class _Measured:
    """What the benchmark part of a run measured (before the reliability section and the report)."""

    queue: str
    server_version: str | None = None
    message_bytes: int = 0
    results: list[Result] = field(default_factory=list)
    samples: dict[str, tuple[float, ...]] = field(default_factory=dict)
    overhead: tuple[loadgen.Overhead, loadgen.Overhead] | None = None
    producer: list[Result] = field(default_factory=list)
    drains: dict[tuple[str, int], float] = field(default_factory=dict)
    lag_max: float = 0.0


def _benchmarks(options: Options, broker: Broker, steps: Listener) -> _Measured:
    """Enqueue, producer, then per pool and concurrency the drain and the open loop, on ``broker``."""
    sizes, config = options.sizes, options.config
    run_id = uuid.uuid4().hex[:10]
    measured = _Measured(queue=f"celery-bench.{run_id}")
    queue, samples = measured.queue, measured.samples
    conn = broker.client()
    measured.server_version = broker_server_version(conn)
    try:
        settings, reuse = config.producer_settings, config.producer_reuse
        with loadgen.Client(broker.url, queue, settings=settings, reuse_producer=reuse) as client:
            measured.message_bytes = loadgen.celery_message_bytes(client, conn)
            enqueue, measured.overhead = _enqueue(
                client, conn, queue, measured.message_bytes, sizes, steps, samples
            )
            measured.producer = _producer(client, broker.url, queue, conn, sizes, steps, config)
            measured.results.extend(enqueue + measured.producer)
        for pool in options.pools:
            for concurrency in sizes.concurrency.get(pool, (1,)):
                cell, lag = _pool_cell(
                    broker, conn, queue, run_id, pool, concurrency, sizes, steps, samples, config
                )
                measured.results.extend(cell)
                measured.lag_max = max(measured.lag_max, lag)
                drain = next(r for r in cell if r.scenario == "drain")
                assert drain.throughput is not None
                measured.drains[(pool, concurrency)] = drain.throughput.median
    finally:
        if not broker.owned:
            _cleanup_external(conn, queue, run_id)
        conn.close()
    return measured


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
    "enqueue.floor": "redis-py LPUSH {message_bytes} B (floor)",
    "enqueue.apply_async": "apply_async(ignore_result=True)",
    "enqueue.delay": "delay() (Redis result backend)",
}
"""The enqueue rows and their titles (``{message_bytes}``: the size of the message the floor pushes)."""


def _enqueue(
    client: loadgen.Client,
    conn: redis.Redis,
    queue: str,
    message_bytes: int,
    sizes: Plan,
    steps: Listener,
    samples: dict[str, tuple[float, ...]],
) -> tuple[list[Result], tuple[loadgen.Overhead, loadgen.Overhead]]:
    """The floor, ``apply_async`` and ``delay`` interleaved, rounds until precise; then timing overhead."""
    scratch = f"{queue}.floor"
    floor = loadgen.floor_call(conn, scratch, message_bytes)

    def trim() -> None:  # keep the queues small between rounds (no worker consumes them yet)
        conn.delete(scratch, queue)

    budget = sizes.budget("enqueue")
    steps.step(
        f"enqueue latency: LPUSH floor ({message_bytes} B), apply_async, delay interleaved, "
        f"{budget.min_rounds}-{budget.max_rounds} rounds x {sizes.enqueue_per_round} calls"
    )
    calls = dict(zip(ENQUEUE_TITLES, (floor, client.apply_async_ignore, client.delay), strict=True))
    measured: dict[str, list[list[float]]] = {name: [] for name in calls}
    loadgen.warm_up(calls)
    loadgen.rounds_until_precise(
        lambda: loadgen.interleaved_round(calls, measured, per_round=sizes.enqueue_per_round, between=trim),
        lambda: {name: [statistics.median(r) for r in rounds] for name, rounds in measured.items()},
        dict.fromkeys(calls, defaults.PRECISION_TARGET),
        budget,
    )
    for name, rounds in measured.items():
        samples[name] = tuple(v for r in rounds for v in r)
    steps.step("fidelity: per-call timing vs a bare loop (apply_async, floor)")
    overhead = loadgen.timing_overhead(
        client.apply_async_ignore, blocks=sizes.overhead_blocks, per_block=sizes.overhead_per_block
    )
    overhead_floor = loadgen.timing_overhead(  # the floor is ~7x cheaper: more calls, same time
        floor, blocks=sizes.overhead_blocks, per_block=sizes.overhead_per_block * 5
    )
    trim()
    return _enqueue_results(measured, message_bytes), (overhead, overhead_floor)


def _enqueue_results(measured: Mapping[str, list[list[float]]], message_bytes: int) -> list[Result]:
    """One latency row per enqueue call, each with its ratio to the floor's median and its precision."""
    floor_summary = stats.summarize_latency(measured["enqueue.floor"], what="enqueue.floor")
    out = []
    for name, rounds in measured.items():
        summary = floor_summary if name == "enqueue.floor" else stats.summarize_latency(rounds, what=name)
        precision = stats.precision(
            summary.round_medians, statistic="median", target=defaults.PRECISION_TARGET
        )
        out.append(
            Result(
                scenario=name,
                title=ENQUEUE_TITLES[name].format(message_bytes=message_bytes),
                pool=None,
                concurrency=None,
                latency=summary,
                floor_ratio=stats.ratio(summary.median, floor_summary.median),
                precision=(precision,),
            )
        )
    return out


def _producer(
    client: loadgen.Client,
    url: str,
    queue: str,
    conn: redis.Redis,
    sizes: Plan,
    steps: Listener,
    config: Config,
) -> list[Result]:
    n = sizes.producer_parallel
    per = sizes.producer_per_thread
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
                url, queue, processes=n, per_process=per, settings=config.producer_settings
            ),
        ),
    ]
    out = []
    budget = sizes.budget("producer")
    for name, title, measure in modes:
        steps.step(f"producer throughput: {title} ({budget.min_rounds}-{budget.max_rounds} rounds)")
        rounds = _rounds_of(measure, budget, after=lambda: conn.delete(queue))
        throughput = stats.summarize_throughput(rounds, what=name)
        out.append(
            Result(
                scenario=name,
                title=title,
                pool=None,
                concurrency=None,
                throughput=throughput,
                precision=(_rate_precision(throughput),),
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
    broker: Broker,
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
    label = f"{pool} x{concurrency}"
    steps.step(f"{label}: starting a worker")
    worker = Worker(
        broker.url,
        **config.on(pool, concurrency).worker_kwargs(),
        queues=(f"{queue}.idle",),
        loglevel=WORKER_LOGLEVEL,
        name=f"bench-{pool}{concurrency}-{run_id}",
    )
    control = control_app(broker.url)
    cell = _Cell(conn, queue, f"{run_id}-{pool}{concurrency}", label, control, worker)
    try:
        with worker, _cell_producer(broker, queue, config) as producer:
            budget = sizes.budget("drain")
            steps.step(
                f"{label}: drain {budget.min_rounds}-{budget.max_rounds} rounds x {sizes.drain_tasks} "
                "queued no-op tasks"
            )
            drain = stats.summarize_throughput(
                _rounds_of(lambda: cell.drain_round(producer, sizes.drain_tasks), budget, after=lambda: None),
                what=f"drain {label}",
            )
            io = _io_drain(cell, producer, sizes.io_tasks(concurrency), sizes.budget("io"), steps)
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
    return _cell_results(label, pool, concurrency, sizes, (drain, io), loop), loop.lag


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


def _cell_producer(broker: Broker, queue: str, config: Config) -> loadgen.Client:
    """The producer a pool cell sends its drain and open-loop tasks with (no result backend of its own)."""
    settings, reuse = config.producer_settings, config.producer_reuse
    return loadgen.Client(broker.url, queue, backend=False, settings=settings, reuse_producer=reuse)


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
    """The reliability section (``bench.faults``): fault scenarios with loss accounting, per pool."""
    records = reliability_section(
        list(options.pools), broker_url=options.broker_url, quick=options.quick, progress=note
    )
    return tuple(records)


def _fidelity(
    overhead: tuple[loadgen.Overhead, loadgen.Overhead],
    producer: list[Result],
    drains: Mapping[tuple[str, int], float],
    lag_max: float,
) -> Fidelity:
    one = next((r for r in producer if r.scenario == CAPACITY_MODE and r.throughput is not None), None)
    capacity = one.throughput.median if one is not None and one.throughput is not None else None
    slowest = min(drains.items(), key=lambda item: item[1], default=None)
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
        producer_mode=CAPACITY_MODE if one is not None else None,
        slowest_pool=f"{slowest[0][0]} x{slowest[0][1]}" if slowest else None,
        slowest_drain=slowest[1] if slowest else None,
        capacity_ratio=stats.ratio(capacity, slowest[1]) if capacity is not None and slowest else None,
        generator_lag_max_s=lag_max if drains else None,
    )


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
        where = r.scenario if r.pool is None else f"{r.scenario} {r.pool} x{r.concurrency}"
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


def broker_server_version(conn: redis.Redis) -> str | None:
    """The broker server's own version (``INFO server``: ``redis_version``); ``None`` if it does not say."""
    try:
        version = conn.info("server").get("redis_version")
    except redis.RedisError:
        return None
    return None if version is None else str(version)


def collect_context(
    *, broker: Broker, options: Options, message_bytes: int, queue: str, server_version: str | None = None
) -> dict[str, Any]:
    """Versions, machine, commit and run parameters: what a saved result needs to be comparable."""
    sizes = options.sizes
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
        "broker": redact(broker.url),
        "broker_private": broker.owned,
        "broker_server": server_version,
        "pools": {p: list(sizes.concurrency.get(p, (1,))) for p in options.pools},
        "quick": options.quick,
        "plan": dataclasses.asdict(sizes)
        | {"concurrency": {k: list(v) for k, v in sizes.concurrency.items()}},
        "message_bytes": message_bytes,
        "queue": queue,
        "serializer": options.config.producer_settings.get("task_serializer", "json"),
        "config": options.config.to_json(),
        "worker_loglevel": WORKER_LOGLEVEL,
        "argv": [redact(arg) if "://" in arg else arg for arg in sys.argv[1:]],
    }
