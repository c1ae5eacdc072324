"""Producers: the enqueue-latency sampler, throughput drivers, the open-loop generator, result collection.

Everything here talks to the broker through a *client* Celery app built from a URL (JSON by default,
with the configuration under test's producer settings) and names the tasks it sends (the probes
``bench.probes.noop``, ``bench.probes.stamp``); it never imports the app under test. Clocks and sleeps
are parameters, so the pacing logic is unit-tested with a fake clock.

Timing conventions:

* in-process durations (enqueue latency, throughput) use ``time.perf_counter``;
* cross-process instants (when a task was meant to be enqueued, when it started on the worker, when
  its result was published) use ``time.time()``, the one clock a worker on the same host shares.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue as queue_module
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from bench import defaults, procs, stats
from bench.client import client_app

NOOP = "bench.probes.noop"
"""The no-op probe task (``bench/probes.py``, included in every worker the harness starts). Named, not
imported: importing the probes would register them with every app of the harness's process."""

STAMP = "bench.probes.stamp"
"""The probe task that returns the ``time.time()`` at which it started on the worker."""

IO_WAIT = "bench.probes.io_wait"
"""The I/O-bound probe task: waits ``defaults.IO_WAIT_S`` (a patched ``time.sleep`` in a green pool), and
returns the ``time.time()`` at which it started, as ``stamp`` does."""

RESULT_PREFIX = "celery-task-meta-"
"""Key (and pub/sub channel) prefix of the Redis result backend; it publishes each state it stores."""

CHANNEL_PREFIXES = (RESULT_PREFIX, defaults.PROBE_DONE_PREFIX)
"""Where a probe's completion is published: by the result backend (its result stored), or by the probe
itself when the producer's message says to ignore its result (``bench.probes._announce``)."""


def task_id_of(channel: str) -> str:
    """The task id of a completion channel (``CHANNEL_PREFIXES`` + id)."""
    prefix = next(p for p in CHANNEL_PREFIXES if channel.startswith(p))
    return channel[len(prefix) :]


WARMUP_CALLS = 20
"""Calls made (and discarded) before timing, to open connections and fill caches."""


# -- the client app ----------------------------------------------------------------------------------
@dataclass
class Client:
    """A client Celery app for ``broker_url`` sending to ``queue``, with proxies of the benchmark tasks.

    ``backend=True`` gives it the Redis result backend (as the seed's ``client.py`` has), at
    ``backend_url`` (default: the broker's own URL, for a Redis broker): ``delay()`` then subscribes to the
    task's result channel, which is part of what users pay per call.
    """

    broker_url: str
    queue: str
    backend: bool = True
    backend_url: str | None = None
    app: Celery | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The configuration under test's producer settings (``bench.config.Config.producer_settings``)."""
    reuse_producer: bool = False
    """Publish through one producer per thread, held for the client's life (``apply_async(producer=...)``,
    as Celery's own ``bench_apply`` does), instead of one acquired from the app's pool per call."""

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._held: list[tuple[threading.Thread, Any]] = []  # (holding thread, its producer)
        self._held_lock = threading.Lock()
        app = client_app(
            self.broker_url,
            backend=self.backend,
            backend_url=self.backend_url,
            **{
                **self.settings,
                "task_default_queue": self.queue,
                "broker_connection_timeout": defaults.CLIENT_CONNECT_TIMEOUT,
            },
        )

        # Client-side declarations of the benchmark tasks: only their names matter, the bodies run
        # on the worker (bench/probes.py). They make ``noop.delay()`` the exact call a user writes.
        @app.task(name=NOOP, shared=False)
        def noop(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - never runs here
            return None

        @app.task(name=STAMP, shared=False)
        def stamp(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - never runs here
            return None

        @app.task(name=IO_WAIT, shared=False)
        def io_wait(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - never runs here
            return None

        self.app = app
        self.noop = noop
        self.stamp = stamp
        self._tasks = {NOOP: noop, STAMP: stamp, IO_WAIT: io_wait}

    def _producer(self) -> dict[str, Any]:
        """``{"producer": this thread's held producer}`` with ``reuse_producer``, else nothing."""
        if not self.reuse_producer or self.app is None:
            return {}
        producer = getattr(self._local, "producer", None)
        if producer is None:
            self._release_ended_threads()  # else every round's new threads drain the pool (a deadlock)
            producer = self._local.producer = self.app.producer_pool.acquire(block=True)
            with self._held_lock:
                self._held.append((threading.current_thread(), producer))
        return {"producer": producer}

    def _release_ended_threads(self) -> None:
        """Give back to the pool the producers held by threads that have ended."""
        with self._held_lock:
            ended = [producer for thread, producer in self._held if not thread.is_alive()]
            self._held = [(t, p) for t, p in self._held if t.is_alive()]
        for producer in ended:
            producer.release()

    def delay(self) -> object:
        """``noop.delay()``: the call on a user's request path (result backend on)."""
        return self.noop.apply_async(**self._producer()) if self.reuse_producer else self.noop.delay()

    def apply_async_ignore(self) -> object:
        """``noop.apply_async(ignore_result=True)``: fire and forget."""
        return self.noop.apply_async(ignore_result=True, **self._producer())

    def send(self, name: str, task_id: str) -> None:
        """Send task ``name`` with our own ``task_id`` (so its result channel is predictable)."""
        self._tasks[name].apply_async(task_id=task_id, **self._producer())

    def close(self) -> None:
        with self._held_lock:
            held, self._held = self._held, []
        for _thread, producer in held:
            producer.release()
        if self.app is not None:
            self.app.close()
            self.app = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def task_ids(prefix: str, count: int) -> list[str]:
    """``count`` task ids starting with ``prefix`` (a collector subscribes to exactly those)."""
    return [f"{prefix}{i:07d}-{uuid.uuid4().hex[:8]}" for i in range(count)]


def celery_message_bytes(client: Client, conn: redis.Redis) -> int:
    """Size in bytes of the message ``noop.delay()`` puts in Redis, read back from a scratch queue."""
    scratch = f"{client.queue}.sizeprobe"
    try:
        client.noop.apply_async(queue=scratch)
        raw = conn.lpop(scratch)
        if raw is None:
            raise RuntimeError(f"no Celery message arrived in scratch queue {scratch!r}")
        return len(raw)
    finally:
        conn.delete(scratch, f"_kombu.binding.{scratch}")


def floor_call(conn: redis.Redis, key: str, size: int) -> Callable[[], object]:
    """A raw redis-py ``LPUSH`` of ``size`` bytes to ``key``: the floor under any enqueue."""
    payload = b"x" * size

    def push() -> object:
        return conn.lpush(key, payload)

    return push


# -- timing loops ------------------------------------------------------------------------------------
def sample_calls(
    call: Callable[[], object], *, n: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Time each of ``n`` calls separately; returns seconds per call."""
    out = [0.0] * n
    for i in range(n):
        started = clock()
        call()
        out[i] = clock() - started
    return out


def bare_loop(call: Callable[[], object], *, n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds for ``n`` calls timed as one block (no per-call timing): the fidelity reference."""
    started = clock()
    for _ in range(n):
        call()
    return clock() - started


def measure_latency(
    call: Callable[[], object],
    *,
    rounds: int,
    per_round: int,
    warmup: int = WARMUP_CALLS,
    clock: Callable[[], float] = time.perf_counter,
    between: Callable[[], object] | None = None,
) -> list[list[float]]:
    """``rounds`` batches of ``per_round`` timed calls after ``warmup`` untimed ones.

    ``between`` runs after each round, untimed (e.g. trimming a scratch list).
    """
    for _ in range(warmup):
        call()
    out = []
    for _ in range(rounds):
        out.append(sample_calls(call, n=per_round, clock=clock))
        if between is not None:
            between()
    return out


def measure_interleaved(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    per_round: int,
    warmup: int = WARMUP_CALLS,
    clock: Callable[[], float] = time.perf_counter,
    between: Callable[[], object] | None = None,
) -> dict[str, list[list[float]]]:
    """Like :func:`measure_latency` for several calls, their rounds interleaved (A B C A B C ...).

    A change in machine speed during the run then hits every call alike, so the ratios between them
    (e.g. to the floor) stay fair.
    """
    warm_up(calls, warmup)
    out: dict[str, list[list[float]]] = {name: [] for name in calls}
    for _ in range(rounds):
        interleaved_round(calls, out, per_round=per_round, clock=clock, between=between)
    return out


def warm_up(calls: Mapping[str, Callable[[], object]], warmup: int = WARMUP_CALLS) -> None:
    """``warmup`` untimed calls of each call (connections opened, caches filled)."""
    for call in calls.values():
        for _ in range(warmup):
            call()


def interleaved_round(
    calls: Mapping[str, Callable[[], object]],
    out: dict[str, list[list[float]]],
    *,
    per_round: int,
    clock: Callable[[], float] = time.perf_counter,
    between: Callable[[], object] | None = None,
) -> None:
    """One round of each call in turn (A B C), appended to ``out[name]``; ``between`` after each."""
    for name, call in calls.items():
        out.setdefault(name, []).append(sample_calls(call, n=per_round, clock=clock))
        if between is not None:
            between()


@dataclass(frozen=True)
class Budget:
    """How many rounds a step may run: at least ``min_rounds``; then more while any compared series is
    not yet precise, until ``max_rounds`` or until the next round would overrun ``seconds``."""

    min_rounds: int
    max_rounds: int
    seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"rounds: need 1 <= min ({self.min_rounds}) <= max ({self.max_rounds})")


def rounds_until_precise(
    one_round: Callable[[], object],
    series: Callable[[], Mapping[str, Sequence[float]]],
    targets: Mapping[str, float],
    budget: Budget,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run ``one_round`` until every series named in ``targets`` pins its median within its target.

    ``series()`` gives, after each round, one value per round for each compared series (e.g. each
    round's median latency); a series is precise when :func:`stats.precise` says so. Stops at
    ``budget.max_rounds``, or when the mean round time so far says the next round would end past
    ``budget.seconds`` (never before ``budget.min_rounds``). Returns the rounds run.
    """
    started = clock()
    done = 0
    while done < budget.max_rounds:
        one_round()
        done += 1
        if done < budget.min_rounds:
            continue
        current = series()
        if all(stats.precise(current[name], target) for name, target in targets.items()):
            break
        elapsed = clock() - started
        if elapsed + elapsed / done > budget.seconds:
            break
    return done


@dataclass(frozen=True)
class Overhead:
    """The harness's per-call timing vs a bare loop around the same call, interleaved in one run.

    What it bounds: the cost of reading the clock around each call in the producer's own loop (two
    ``perf_counter`` reads, ~0.1 us, against calls of 60-600 us). Block-to-block noise on a shared machine
    is far larger than that cost, so the figure is an interval, not a measurement: ``difference.low`` ..
    ``difference.high`` is what the data rule out beyond. It does not cover the result collector thread
    (which competes for the GIL while the open loop and the drains run), the polling loops, or the worker.
    """

    calls: int
    harness_mean_s: float
    bare_mean_s: float
    difference: stats.PairedDifference
    """Median over block pairs of (harness block / bare block) - 1, with its bootstrap interval."""

    @property
    def ratio(self) -> float:
        return self.difference.median


def timing_overhead(
    call: Callable[[], object],
    *,
    blocks: int,
    per_block: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Overhead:
    """Alternate blocks timed per call (as the harness reports) with bare blocks; compare them pairwise.

    The order alternates (ABBA) so a drift in machine speed cancels out, and the median of the pair
    ratios ignores a pair that a burst of load on a shared machine hit.
    """
    harness: list[float] = []
    bare: list[float] = []
    for i in range(blocks):
        if i % 2:
            b = bare_loop(call, n=per_block, clock=clock)
            h = sum(sample_calls(call, n=per_block, clock=clock))
        else:
            h = sum(sample_calls(call, n=per_block, clock=clock))
            b = bare_loop(call, n=per_block, clock=clock)
        harness.append(h)
        bare.append(b)
    calls = blocks * per_block
    return Overhead(
        calls=calls,
        harness_mean_s=sum(harness) / calls,
        bare_mean_s=sum(bare) / calls,
        difference=stats.paired_difference(harness, bare),
    )


# -- producer throughput -----------------------------------------------------------------------------
def throughput_threads(
    make_call: Callable[[], Callable[[], object]],
    *,
    threads: int,
    per_thread: int,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[int, float]:
    """``threads`` threads each make ``per_thread`` calls; returns (calls, seconds) from a common start."""
    calls = [make_call() for _ in range(threads)]
    for call in calls:
        for _ in range(WARMUP_CALLS):
            call()
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                call()
        except BaseException as exc:  # surfaced below, with the thread's error
            errors.append(exc)

    workers = [
        threading.Thread(target=run, args=(c,), name=f"bench-producer-{i}") for i, c in enumerate(calls)
    ]
    for w in workers:
        w.start()
    barrier.wait()
    started = clock()
    for w in workers:
        w.join()
    elapsed = clock() - started
    if errors:
        raise RuntimeError(f"a producer thread failed: {errors[0]!r}") from errors[0]
    return threads * per_thread, elapsed


def _producer_process(
    parent_pid: int,
    broker_url: str,
    queue: str,
    count: int,
    ready: Any,
    go: Any,
    done: Any,
    settings: Mapping[str, Any],
    backend_url: str | None = None,
) -> None:
    """Body of one spawned producer process (module level so that ``spawn`` can pickle it)."""
    procs.die_with_parent(parent_pid)  # a SIGKILLed harness takes its producers with it (Linux)
    try:
        with Client(broker_url, queue, settings=settings, backend_url=backend_url) as client:
            for _ in range(WARMUP_CALLS * 5):  # a fresh interpreter: warm up longer
                client.apply_async_ignore()
            ready.put(os.getpid())
            if not go.wait(defaults.PROCESS_START_TIMEOUT):
                return
            for _ in range(count):
                client.apply_async_ignore()
        done.put(("ok", count))
    except BaseException as exc:  # reported to the parent, which raises
        done.put(("error", repr(exc)))


def throughput_processes(
    broker_url: str,
    queue: str,
    *,
    processes: int,
    per_process: int,
    settings: Mapping[str, Any] | None = None,
    backend_url: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[int, float]:
    """``processes`` spawned processes each send ``per_process`` tasks; (calls, seconds) from "go".

    The processes are always terminated and joined before this returns (Ctrl-C included).
    """
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    args = (os.getpid(), broker_url, queue, per_process, ready, go, done, dict(settings or {}), backend_url)
    procs = [
        ctx.Process(
            target=_producer_process,
            args=args,
            name=f"bench-producer-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    try:
        for p in procs:
            p.start()
        _wait_ready(procs, ready, done)
        started = clock()
        go.set()
        sent = 0
        for _ in procs:
            status, value = done.get(timeout=defaults.PROCESS_RUN_TIMEOUT)
            if status != "ok":
                raise RuntimeError(f"a producer process failed: {value}")
            sent += int(value)
        return sent, clock() - started
    finally:
        go.set()
        _stop_processes(procs)
        for q in (ready, done):
            q.close()
            q.join_thread()


def _wait_ready(procs: Sequence[Any], ready: Any, done: Any) -> None:
    """Until every producer process said it is ready (bounded; a process that exits fails it at once)."""
    deadline = time.monotonic() + defaults.PROCESS_START_TIMEOUT
    waiting = len(procs)
    while waiting:
        try:
            ready.get(timeout=defaults.COLLECTOR_POLL)
            waiting -= 1
        except queue_module.Empty:
            if any(p.exitcode is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError(
                    f"producer processes did not get ready within {defaults.PROCESS_START_TIMEOUT:g}s"
                    f"{_process_problems(procs, done)}"
                ) from None


def _stop_processes(procs: Sequence[Any]) -> None:
    """Terminate, then kill, and join every producer process that started."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        if p.pid is None:  # never started
            continue
        p.join(defaults.PROCESS_STOP_TIMEOUT)
        if p.is_alive():
            p.kill()
            p.join(defaults.PROCESS_STOP_TIMEOUT)


def _process_problems(procs: Iterable[Any], done: Any) -> str:
    notes = []
    try:
        while True:
            status, value = done.get_nowait()
            if status != "ok":
                notes.append(str(value))
    except Exception:  # noqa: S110 - the queue is empty
        pass
    exits = [p.exitcode for p in procs if p.exitcode is not None]
    if exits:
        notes.append(f"exit codes {exits}")
    return (": " + "; ".join(notes)) if notes else ""


# -- open loop ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    """One enqueue of the open-loop generator: when it was due (``intended``) and when it went out."""

    index: int
    task_id: str
    intended: float
    actual: float


class OpenLoop:
    """Enqueue at a fixed arrival rate, whatever the worker does (no coordinated omission).

    Arrival ``i`` is due at ``start + i / rate``. The generator sleeps until an arrival is due and
    never waits for a reply; when it falls behind it sends at once, and the latency of every task is
    measured from its *intended* time, so a slow system cannot hide its own latency by slowing the
    producer down.
    """

    def __init__(
        self,
        send: Callable[[str], object],
        *,
        rate: float,
        count: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"arrival rate must be positive, got {rate!r}")
        if count <= 0:
            raise ValueError(f"arrival count must be positive, got {count!r}")
        self.send = send
        self.rate = rate
        self.count = count
        self.clock = clock
        self.sleep = sleep

    def due(self, start: float, index: int) -> float:
        return start + index / self.rate

    def run(self, ids: list[str]) -> list[Sent]:
        if len(ids) != self.count:
            raise ValueError(f"need {self.count} task ids, got {len(ids)}")
        out: list[Sent] = []
        start = self.clock()
        for i, task_id in enumerate(ids):
            intended = self.due(start, i)
            now = self.clock()
            if intended > now:
                self.sleep(intended - now)
            actual = self.clock()
            self.send(task_id)
            out.append(Sent(i, task_id, intended, actual))
        return out


def generator_lag(sent: list[Sent]) -> float:
    """The largest delay (seconds) between an arrival's due time and its actual send."""
    return max((s.actual - s.intended for s in sent), default=0.0)


# -- result collection -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A task's result as published by the backend: when the producer side saw it, and its value."""

    task_id: str
    seen: float
    status: str
    result: Any


class ResultCollector:
    """Sees every result the Redis backend publishes for task ids starting with ``prefix``.

    The Redis result backend stores a state with SET and PUBLISHes it on the key's channel (that is
    how ``AsyncResult.get()`` learns of it); a probe whose result is ignored publishes the same message
    on a channel of its own (``defaults.PROBE_DONE_PREFIX``). The collector pattern-subscribes to both from
    one thread and stamps each message with ``clock()`` on arrival, so the time a result becomes
    available to the producer is measured without one ``get()`` per task.
    """

    def __init__(self, conn: redis.Redis, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.prefix = prefix
        self.clock = clock
        self.events: list[tuple[float, bytes, bytes]] = []
        self.successes = 0
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ResultCollector:
        self._thread = threading.Thread(target=self._run, name="bench-result-collector", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(defaults.SUBSCRIBE_TIMEOUT):
            self.stop()
            raise RuntimeError(
                f"result collector: no pattern subscription after {defaults.SUBSCRIBE_TIMEOUT:g}s "
                f"({self._error!r})"
            )
        return self

    def _run(self) -> None:
        pubsub = self.conn.pubsub()
        try:
            pubsub.psubscribe(*(f"{prefix}{self.prefix}*" for prefix in CHANNEL_PREFIXES))
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=defaults.COLLECTOR_POLL)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "psubscribe" and message["data"] == len(CHANNEL_PREFIXES):
                    self._subscribed.set()
                elif kind == "pmessage":
                    data = message["data"]
                    self.events.append((self.clock(), message["channel"], data))
                    if b"SUCCESS" in data or b"FAILURE" in data:
                        self.successes += 1
        except BaseException as exc:  # surfaced by check()
            self._error = exc
        finally:
            pubsub.close()

    def check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"result collector failed: {self._error!r}") from self._error

    def finished(self, count: int) -> bool:
        """True once ``count`` results in a ready state were seen (raises if the collector died)."""
        self.check()
        return self.successes >= count

    def outcomes(self) -> dict[str, Outcome]:
        """The first ready-state message per task id."""
        out: dict[str, Outcome] = {}
        for seen, channel, data in list(self.events):
            meta = json.loads(data)
            if meta.get("status") not in ("SUCCESS", "FAILURE"):
                continue
            task_id = task_id_of(channel.decode())
            out.setdefault(task_id, Outcome(task_id, seen, meta["status"], meta.get("result")))
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(defaults.COLLECTOR_POLL * 20 + 1)

    def __enter__(self) -> ResultCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def e2e_latencies(
    sent: list[Sent], outcomes: dict[str, Outcome]
) -> tuple[list[float], list[float], list[str]]:
    """Per task: (worker start - intended enqueue, result seen - intended enqueue); and missing ids.

    ``stamp`` tasks return the ``time.time()`` at which they started on the worker.
    """
    to_start: list[float] = []
    to_result: list[float] = []
    missing: list[str] = []
    for s in sent:
        outcome = outcomes.get(s.task_id)
        if outcome is None or outcome.status != "SUCCESS":
            missing.append(s.task_id)
            continue
        to_start.append(max(float(outcome.result) - s.intended, 0.0))
        to_result.append(max(outcome.seen - s.intended, 0.0))
    return to_start, to_result, missing


def drain_rate(outcomes: dict[str, Outcome]) -> tuple[int, float]:
    """(tasks, seconds) between the first and the last completion seen: the steady drain of a full queue."""
    seen = sorted(o.seen for o in outcomes.values())
    if len(seen) < 2:
        return 0, 0.0
    return len(seen) - 1, seen[-1] - seen[0]


def drain_span(outcomes: dict[str, Outcome]) -> float:
    """Seconds from the first task's start on the worker to the last result seen: the drain alone.

    The outcomes are of ``stamp`` tasks (their result is the ``time.time()`` at which each started), so
    neither the control command that switched the worker onto the queue nor the polling that waited
    for the results is in it. Raises :class:`stats.NoSamplesError` without a successful stamp.
    """
    done = [o for o in outcomes.values() if o.status == "SUCCESS" and isinstance(o.result, int | float)]
    if not done:
        raise stats.NoSamplesError(f"drain span of no successful stamp task ({len(outcomes)} outcomes)")
    return max(o.seen for o in done) - min(float(o.result) for o in done)


# -- rounds shared by the main job (bench.scenarios), the fleet (bench.fleet) and tests/benchmarks --------
def fill(producer: Client, prefix: str, count: int, *, task: str = NOOP) -> list[str]:
    """Queue ``count`` ``task`` messages with ids ``prefix<i>`` (no worker consumes the queue yet)."""
    ids = task_ids(prefix, count)
    for task_id in ids:
        producer.send(task, task_id)
    return ids


def await_results(
    collector: ResultCollector,
    count: int,
    consume: Callable[[], contextlib.AbstractContextManager[object]],
    *,
    timeout: float,
    what: str,
) -> dict[str, Outcome]:
    """Inside ``consume()`` (the workers on the queue), wait (bounded) for ``count`` results."""
    with consume():
        procs.wait_for(lambda: collector.finished(count), timeout=timeout, what=what)
    return collector.outcomes()


def drain_round(
    producer: Client,
    conn: redis.Redis,
    prefix: str,
    count: int,
    consume: Callable[[], contextlib.AbstractContextManager[object]],
    *,
    timeout: float,
    what: str,
    task: str = NOOP,
) -> dict[str, Outcome]:
    """Fill the queue with ``count`` ``task`` messages (no-ops by default), then let ``consume()`` drain
    it; the tasks' outcomes."""
    fill(producer, prefix, count, task=task)
    with ResultCollector(conn, prefix) as collector:
        return await_results(collector, count, consume, timeout=timeout, what=what)


def open_loop_round(
    producer: Client,
    conn: redis.Redis,
    prefix: str,
    *,
    rate: float,
    count: int,
    consume: Callable[[], contextlib.AbstractContextManager[object]],
    grace: float,
    what: str,
) -> tuple[list[Sent], dict[str, Outcome]]:
    """``count`` ``stamp`` tasks at ``rate`` per second while ``consume()`` runs; what was sent, and the
    outcomes (bounded by ``grace`` after the last arrival)."""
    ids = task_ids(prefix, count)
    generator = OpenLoop(lambda task_id: producer.send(STAMP, task_id), rate=rate, count=count)
    with ResultCollector(conn, prefix) as collector, consume():
        sent = generator.run(ids)
        procs.wait_for(lambda: collector.finished(count), timeout=grace, what=what)
    return sent, collector.outcomes()
