"""Where one enqueue's time goes: a cost breakdown by layer, and the broker commands it makes.

For several producer paths (the seed's ``delay()``, ``apply_async(ignore_result=True)``, a reused
producer or connection, no publish retry policy, a named direct exchange, a pre-built message published
through kombu, and two *patched* paths that show what an upstream change in kombu would buy), in one run
on one broker nothing else uses:

1. **latency and ratio to the floor**: the paths and the raw ``LPUSH`` floor, unpatched, in interleaved
   rounds (``bench.loadgen.measure_interleaved``); medians with their spread and sample counts;
2. **broker commands per enqueue**: Redis ``INFO commandstats`` before and after a batch of calls
   (:func:`commands_per_call`): what the server executed, by command;
3. **layers**: the same calls again with targeted timers around the functions that mark each layer
   (:data:`MARKERS`: Celery's ``apply_async``, message building and sending, kombu's ``Producer.publish``,
   kombu's ``_create_client``, redis-py's ``execute_command``, the socket round trip). Each layer gets
   its *exclusive* time (its nested layers' time subtracted, :class:`LayerTimer`), so the shares add up
   to the whole call, in wall time and in the producer thread's CPU time. The timers are installed only
   for this step, apart from step 1, so they do not distort the latency figures; the step's own mean per
   call is kept in the record beside the unpatched median.

The seed's default routing makes **one** broker command per enqueue, like the floor: Celery turns a
publish to a direct exchange without both an exchange and a routing key into one to the anonymous
exchange (``celery/app/amqp.py``, ``send_task_message``), which kombu's virtual transport sends straight to
the queue. Naming both (the ``exchange=`` path, or a route that does) makes kombu look up the exchange's
bindings first: an SMEMBERS before the LPUSH, a second round trip (kombu#994).

Numbers only (frozen records); ``bench.breakdown_format`` renders them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery.app.task import Task
from kombu.messaging import Producer

from bench import loadgen, stats

TARGET_RATIO = 3.0
"""The target of issue 9: a producer path whose median enqueue latency is at most this x the floor."""

WARMUP = loadgen.WARMUP_CALLS
"""Calls of each path made (and discarded) before each step."""

OWN_COMMANDS = frozenset({"info"})
"""Commands the breakdown itself sends (its ``INFO commandstats`` snapshots): not counted per enqueue."""

# -- layers ------------------------------------------------------------------------------------------
CALL_SITE = "call site (outside every layer below)"
CELERY_APPLY = "Celery apply_async (options, routing, producer from the pool)"
CELERY_BUILD = "Celery message building (create_task_message)"
CELERY_SEND = "Celery send_task_message (routing, signals)"
RESULT_SUBSCRIBE = "Celery result backend: subscribe to the result"
KOMBU_PUBLISH = "kombu Producer.publish (serialize, virtual channel)"
CLIENT_CREATION = "redis-py client creation (kombu _create_client)"
REDIS_COMMAND = "redis-py command (pool checkout, packing)"
ROUND_TRIP = "broker round trip (socket send, wait, read, parse)"

LAYERS = (
    CALL_SITE,
    CELERY_APPLY,
    CELERY_BUILD,
    CELERY_SEND,
    RESULT_SUBSCRIBE,
    KOMBU_PUBLISH,
    CLIENT_CREATION,
    REDIS_COMMAND,
    ROUND_TRIP,
)
"""Every layer, outermost first (the order of the tables)."""

ROUND_TRIP_MARK = "send_packed_command"
"""The marker whose calls count the round trips the client makes (one socket write per command or
pipeline; a pipeline of N commands is one round trip)."""


@dataclass(frozen=True)
class Marker:
    """A function whose time (minus the nested markers' time) is attributed to ``layer``."""

    owner: Any
    attribute: str
    layer: str


MARKERS = (
    Marker(Task, "apply_async", CELERY_APPLY),
    Marker(Producer, "publish", KOMBU_PUBLISH),
    Marker(redis.client.Redis, "execute_command", REDIS_COMMAND),
    Marker(redis.client.Pipeline, "execute", REDIS_COMMAND),
    Marker(redis.client.PubSub, "execute_command", REDIS_COMMAND),
    Marker(redis.connection.AbstractConnection, "send_packed_command", ROUND_TRIP),
    Marker(redis.connection.AbstractConnection, "read_response", ROUND_TRIP),
)
"""Class-level markers (installed for the layer step only). Markers on one app's instances (its
``amqp.create_task_message``, ``amqp.send_task_message`` and its backend's ``on_task_call``) and on
kombu's Redis channel class are added by :func:`app_markers`."""


class LayerTimer:
    """Exclusive time per layer from nested enter/exit events (each layer minus its nested layers).

    Two clocks: wall time (``clock``) and this thread's CPU time (``cpu_clock``). On a busy machine the
    wall time of a round trip includes waiting to be scheduled again; the CPU time does not, so the
    CPU shares show what each layer costs the producer itself. ``counts`` holds how often each marked
    function was entered (e.g. the round trips). Single-threaded: one path at a time on one thread.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [layer, wall start, cpu start, nested wall, nested cpu]

    def enter(self, layer: str, mark: str = "") -> None:
        if mark:
            self.counts[mark] += 1
        self._stack.append([layer, self.clock(), self.cpu_clock(), 0.0, 0.0])

    def exit(self) -> None:
        cpu_now, now = self.cpu_clock(), self.clock()
        layer, started, cpu_started, nested, cpu_nested = self._stack.pop()
        elapsed, cpu = now - started, cpu_now - cpu_started
        self.seconds[layer] += elapsed - nested
        self.cpu_seconds[layer] += cpu - cpu_nested
        if self._stack:
            self._stack[-1][3] += elapsed
            self._stack[-1][4] += cpu

    @property
    def depth(self) -> int:
        return len(self._stack)

    def reset(self) -> None:
        if self._stack:
            raise RuntimeError(f"layer timer reset inside {len(self._stack)} open layers")
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.counts.clear()

    def wrap(self, fn: Callable[..., Any], layer: str, mark: str) -> Callable[..., Any]:
        """``fn`` timed as ``layer`` (a plain function; its cost is four clock reads, measured apart by
        :func:`cpu_per_call`)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(layer, mark)
            try:
                return fn(*args, **kwargs)
            finally:
                self.exit()

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed


def app_markers(app: Any) -> list[Marker]:
    """The markers on ``app``'s own objects (cached per instance, so patched on the instance)."""
    from kombu.transport.redis import Channel

    out = [
        Marker(app.amqp, "create_task_message", CELERY_BUILD),
        Marker(app.amqp, "send_task_message", CELERY_SEND),
        Marker(Channel, "_create_client", CLIENT_CREATION),
    ]
    if app.conf.result_backend:
        out.append(Marker(app.backend, "on_task_call", RESULT_SUBSCRIBE))
    return out


@contextlib.contextmanager
def installed(timer: LayerTimer, markers: Sequence[Marker]) -> Iterator[LayerTimer]:
    """The markers wrapped by ``timer`` inside the block; the originals are always restored."""
    saved: list[tuple[Any, str, Any, bool]] = []
    try:
        for m in markers:
            own = m.attribute in vars(m.owner)
            original = vars(m.owner)[m.attribute] if own else None
            target = getattr(m.owner, m.attribute)  # a function on a class, a bound method on an instance
            saved.append((m.owner, m.attribute, original, own))
            setattr(m.owner, m.attribute, timer.wrap(target, m.layer, m.attribute))
        yield timer
    finally:
        for owner, attribute, original, own in reversed(saved):
            if own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)


# -- broker commands ---------------------------------------------------------------------------------
def command_counts(info: Mapping[str, Any]) -> dict[str, int]:
    """``INFO commandstats`` (as redis-py parses it) as {command: calls}."""
    out = {}
    for key, value in info.items():
        name = key.removeprefix("cmdstat_")
        out[name] = int(value["calls"]) if isinstance(value, Mapping) else int(value)
    return out


def commands_per_call(
    before: Mapping[str, int], after: Mapping[str, int], calls: int, *, own: frozenset[str] = OWN_COMMANDS
) -> dict[str, float]:
    """Commands per call between two ``commandstats`` snapshots, without the snapshots' own commands."""
    if calls <= 0:
        raise ValueError(f"calls must be positive, got {calls!r}")
    out = {}
    for name in sorted(set(before) | set(after)):
        if name in own:
            continue
        delta = after.get(name, 0) - before.get(name, 0)
        if delta < 0:
            raise ValueError(f"commandstats went backwards for {name!r} (was the server reset?)")
        if delta:
            out[name] = delta / calls
    return out


def count_commands(conn: redis.Redis, call: Callable[[], object], *, calls: int) -> dict[str, float]:
    """Broker commands per call of ``call``, from ``INFO commandstats`` deltas (nothing else may use
    the broker meanwhile: the harness's private Redis)."""
    before = command_counts(conn.info("commandstats"))
    for _ in range(calls):
        call()
    after = command_counts(conn.info("commandstats"))
    return commands_per_call(before, after, calls)


# -- the producer paths ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PathSpec:
    """One way to enqueue a no-op task (or the floor), ready to call."""

    name: str
    title: str
    call: Callable[[], object]
    patched: bool = False
    """A what-if path: kombu patched as an upstream change would do it, not a setting a user can choose."""


FLOOR = "floor"


@contextlib.contextmanager
def reused_client(channel: Any) -> Iterator[None]:
    """kombu's Redis ``channel`` reuses one redis-py client for every publish inside the block.

    Today ``Channel._put`` builds a new ``redis.Redis`` per publish (``conn_or_acquire`` ->
    ``_create_client``; the socket comes from the pool, the client object does not). This is the
    upstream change whose worth the patched paths measure. Only this channel instance is patched.
    """
    client = channel._create_client()

    @contextlib.contextmanager
    def conn_or_acquire(given: Any = None) -> Iterator[Any]:
        yield given or client

    channel.conn_or_acquire = conn_or_acquire
    try:
        yield
    finally:
        del channel.conn_or_acquire


def prebuilt_publish(producer: Producer, message: Any, queue: str) -> Callable[[], object]:
    """kombu ``Producer.publish`` of a Celery message built once (``amqp.create_task_message``) to
    ``queue`` by the anonymous exchange, as Celery's default route sends it."""

    def publish() -> object:
        return producer.publish(
            message.body, exchange="", routing_key=queue, headers=message.headers,
            serializer="json", retry=False, **message.properties,
        )  # fmt: skip

    return publish


def apply_async_paths(noop: Any, queue: str, *, producer: Any, connection: Any) -> list[PathSpec]:
    """``apply_async(ignore_result=True)`` with a reused producer, without the publish retry policy,
    with a reused connection, and routed by a named direct exchange."""
    return [
        PathSpec(
            "producer=",
            "apply_async(ignore_result=True, producer=P) (P reused)",
            lambda: noop.apply_async(ignore_result=True, producer=producer),
        ),
        PathSpec(
            "producer=,retry=False",
            "apply_async(ignore_result=True, producer=P, retry=False) (no publish retry policy)",
            lambda: noop.apply_async(ignore_result=True, producer=producer, retry=False),
        ),
        PathSpec(
            "connection=",
            "apply_async(ignore_result=True, connection=C) (C reused)",
            lambda: noop.apply_async(ignore_result=True, connection=connection),
        ),
        PathSpec(
            "exchange=",
            "apply_async(ignore_result=True, exchange=E, routing_key=Q) (named direct exchange)",
            lambda: noop.apply_async(ignore_result=True, exchange=queue, routing_key=queue),
        ),
    ]


@contextlib.contextmanager
def producer_paths(client: loadgen.Client, conn: redis.Redis, message_bytes: int) -> Iterator[list[PathSpec]]:
    """The floor and the producer paths, with every producer and connection they hold released after."""
    app = client.app
    assert app is not None
    queue, noop = client.queue, client.noop
    message = app.amqp.create_task_message(str(uuid.uuid4()), loadgen.NOOP, (), {})
    with contextlib.ExitStack() as stack:
        reused = stack.enter_context(app.producer_or_acquire())
        patched = stack.enter_context(app.producer_pool.acquire(block=True))
        connection = stack.enter_context(app.connection_for_write())
        stack.enter_context(reused_client(patched.channel))
        floor = loadgen.floor_call(conn, f"{queue}.floor", message_bytes)
        yield [
            PathSpec(FLOOR, f"redis-py LPUSH {message_bytes} B (floor)", floor),
            PathSpec("delay", "delay() (seed: result backend on)", client.delay),
            PathSpec("apply_async", "apply_async(ignore_result=True)", client.apply_async_ignore),
            *apply_async_paths(noop, queue, producer=reused, connection=connection),
            PathSpec(
                "prebuilt",
                "kombu Producer.publish of a pre-built Celery message",
                prebuilt_publish(reused, message, queue),
            ),
            PathSpec(
                "producer=+client",
                "apply_async(ignore_result=True, producer=P), kombu reusing its redis-py client",
                lambda: noop.apply_async(ignore_result=True, producer=patched),
                patched=True,
            ),
            PathSpec(
                "prebuilt+client",
                "pre-built message via kombu, kombu reusing its redis-py client",
                prebuilt_publish(patched, message, queue),
                patched=True,
            ),
        ]


# -- records -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How many calls each step makes per path."""

    rounds: int
    per_round: int
    command_calls: int
    profile_rounds: int
    profile_per_round: int


QUICK = Sizes(rounds=20, per_round=50, command_calls=200, profile_rounds=10, profile_per_round=50)
FULL = Sizes(rounds=40, per_round=250, command_calls=1000, profile_rounds=20, profile_per_round=250)
"""Short rounds, many of them: on a busy machine a burst of load then hits every path alike (a round of
the floor lasts a few milliseconds, one of ``delay()`` ten times longer)."""


@dataclass(frozen=True)
class Layer:
    """One layer's exclusive time per call (timers installed) and its share of the path's total, in wall
    time and in the producer thread's CPU time."""

    name: str
    seconds: float
    share: float
    cpu_seconds: float
    cpu_share: float


@dataclass(frozen=True)
class PathBreakdown:
    """One producer path: latency vs the floor (unpatched), broker commands, and its layers."""

    path: str
    title: str
    patched: bool
    latency: stats.LatencySummary
    floor_ratio: float | None
    round_ratios: tuple[float, ...]
    """Per interleaved round: this path's median over that round's floor median."""
    commands: tuple[tuple[str, float], ...]
    """Broker commands per call, by command (``INFO commandstats`` deltas)."""
    round_trips: float
    """Client round trips per call (socket writes: ``send_packed_command`` calls)."""
    layers: tuple[Layer, ...]
    profiled_calls: int
    profiled_mean_s: float
    """Mean seconds per call with the layer timers installed (their overhead included)."""
    cpu_ratio: float | None = None
    """The producer thread's CPU time per call over the floor's, untimed where measured (else with the
    timers installed): the cost that depends least on how busy the machine is."""

    untimed_cpu_s: float | None = None
    """CPU seconds per call without the timers, measured apart (``cpu_per_call``)."""

    @property
    def cpu_s(self) -> float:
        return sum(x.cpu_seconds for x in self.layers)

    @property
    def timer_overhead(self) -> float | None:
        """What the layer timers add to the CPU per call: 0.05 = the timed calls cost 5% more."""
        ratio = stats.ratio(self.cpu_s, self.untimed_cpu_s) if self.untimed_cpu_s else None
        return None if ratio is None else ratio - 1.0

    @property
    def broker_commands(self) -> float:
        return sum(n for _, n in self.commands)

    def layer(self, name: str) -> Layer | None:
        return next((x for x in self.layers if x.name == name), None)


@dataclass(frozen=True)
class Breakdown:
    """Every path of one breakdown run (the floor first), with the run's sizes."""

    message_bytes: int
    sizes: Sizes
    paths: tuple[PathBreakdown, ...]
    target_ratio: float = TARGET_RATIO
    warnings: tuple[str, ...] = ()
    load: tuple[float, ...] = ()
    """The machine's 1-minute load average before and after the run (``os.getloadavg``; empty where
    the platform has none): above the CPU count, round trips include waiting to be scheduled."""

    @property
    def floor(self) -> PathBreakdown:
        return next(p for p in self.paths if p.path == FLOOR)

    def reaching(self, *, patched: bool) -> tuple[PathBreakdown, ...]:
        """The paths (patched or not) whose median is at most ``target_ratio`` x the floor's."""
        return tuple(
            p
            for p in self.paths
            if p.path != FLOOR
            and p.patched == patched
            and p.floor_ratio is not None
            and p.floor_ratio <= self.target_ratio
        )

    def cheapest(self, *, patched: bool) -> PathBreakdown | None:
        candidates = [p for p in self.paths if p.path != FLOOR and p.patched == patched and p.floor_ratio]
        return min(candidates, key=lambda p: p.floor_ratio or 0.0, default=None)


# -- pure computations -------------------------------------------------------------------------------
def round_ratios(rounds: Sequence[Sequence[float]], floor: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Per round, the median of ``rounds[i]`` over the median of ``floor[i]`` (rounds interleaved)."""
    if len(rounds) != len(floor):
        raise ValueError(f"{len(rounds)} rounds against {len(floor)} floor rounds: they must pair up")
    out = []
    for mine, base in zip(rounds, floor, strict=True):
        reference = statistics.median(base)
        if reference > 0:
            out.append(statistics.median(mine) / reference)
    return tuple(out)


def layers_of(
    seconds: Mapping[str, float], cpu_seconds: Mapping[str, float], calls: int
) -> tuple[Layer, ...]:
    """Exclusive wall and CPU seconds by layer (over ``calls`` calls) as per-call layers with their
    shares, in :data:`LAYERS` order; layers the path never entered are left out."""
    if calls <= 0:
        raise ValueError(f"calls must be positive, got {calls!r}")
    unknown = set(seconds) - set(LAYERS)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}: add them to LAYERS")
    total = sum(seconds.values())
    cpu_total = sum(cpu_seconds.values())
    if total <= 0:
        raise stats.NoSamplesError("no time was attributed to any layer")
    return tuple(
        Layer(
            name,
            seconds=seconds[name] / calls,
            share=seconds[name] / total,
            cpu_seconds=cpu_seconds.get(name, 0.0) / calls,
            cpu_share=cpu_seconds.get(name, 0.0) / cpu_total if cpu_total > 0 else 0.0,
        )
        for name in LAYERS
        if seconds.get(name, 0) > 0
    )


# -- the measurement ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profiled:
    """The layer step of one path: exclusive seconds by layer, marker entries, calls, wall seconds."""

    seconds: Mapping[str, float]
    cpu_seconds: Mapping[str, float]
    counts: Mapping[str, int]
    calls: int
    elapsed: float


def profile_layers(
    calls: Mapping[str, Callable[[], object]],
    markers: Sequence[Marker],
    *,
    rounds: int,
    per_round: int,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.thread_time,
    between: Callable[[], object] | None = None,
) -> dict[str, Profiled]:
    """Each call under the layer timers, in interleaved rounds (so machine drift hits every path alike)."""
    timer = LayerTimer(clock, cpu_clock)
    seconds: dict[str, dict[str, float]] = {name: defaultdict(float) for name in calls}
    cpu: dict[str, dict[str, float]] = {name: defaultdict(float) for name in calls}
    counts: dict[str, dict[str, int]] = {name: defaultdict(int) for name in calls}
    elapsed = dict.fromkeys(calls, 0.0)
    with installed(timer, markers):
        for call in calls.values():
            for _ in range(WARMUP):
                call()
        for _ in range(rounds):
            for name, call in calls.items():
                timer.reset()  # what ran between the chunks (warm-up, ``between``) is not counted
                started = clock()
                for _ in range(per_round):
                    timer.enter(CALL_SITE)
                    try:
                        call()
                    finally:
                        timer.exit()
                elapsed[name] += clock() - started
                for layer, s in timer.seconds.items():
                    seconds[name][layer] += s
                for layer, s in timer.cpu_seconds.items():
                    cpu[name][layer] += s
                for mark, n in timer.counts.items():
                    counts[name][mark] += n
                if between is not None:
                    between()
    n = rounds * per_round
    return {
        name: Profiled(dict(seconds[name]), dict(cpu[name]), dict(counts[name]), n, elapsed[name])
        for name in calls
    }


def cpu_per_call(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    per_round: int,
    cpu_clock: Callable[[], float] = time.thread_time,
    between: Callable[[], object] | None = None,
) -> dict[str, float]:
    """The producer thread's CPU seconds per call of each path, untimed, in interleaved rounds: the
    reference that shows what the layer timers add."""
    spent = dict.fromkeys(calls, 0.0)
    for _ in range(rounds):
        for name, call in calls.items():
            started = cpu_clock()
            for _ in range(per_round):
                call()
            spent[name] += cpu_clock() - started
            if between is not None:
                between()
    return {name: s / (rounds * per_round) for name, s in spent.items()}


def measure(
    client: loadgen.Client,
    conn: redis.Redis,
    *,
    message_bytes: int,
    sizes: Sizes = QUICK,
    progress: Callable[[str], None] | None = None,
) -> Breakdown:
    """The three steps over every path (module docstring); ``conn`` is a client of the same broker,
    which nothing else may use meanwhile (the commandstats deltas count every command it runs)."""
    say = progress or (lambda line: None)
    queue = client.queue

    def trim() -> None:
        conn.delete(queue, f"{queue}.floor")

    assert client.app is not None
    load = [_load()]
    with producer_paths(client, conn, message_bytes) as paths:
        calls = {p.name: p.call for p in paths}
        say(f"breakdown: latency, {len(calls)} paths x {sizes.rounds} x {sizes.per_round} calls, interleaved")
        latency = loadgen.measure_interleaved(
            calls, rounds=sizes.rounds, per_round=sizes.per_round, between=trim
        )
        say(f"breakdown: broker commands per enqueue ({sizes.command_calls} calls per path)")
        commands = {}
        for p in paths:
            for _ in range(WARMUP):  # first publishes declare the queue and open connections
                p.call()
            commands[p.name] = count_commands(conn, p.call, calls=sizes.command_calls)
            trim()
        say(
            f"breakdown: layers, {sizes.profile_rounds} x {sizes.profile_per_round} calls per path untimed "
            "(CPU), then timed"
        )
        untimed = cpu_per_call(
            calls, rounds=sizes.profile_rounds, per_round=sizes.profile_per_round, between=trim
        )
        markers = [*MARKERS, *app_markers(client.app)]
        profiled = profile_layers(
            calls, markers, rounds=sizes.profile_rounds, per_round=sizes.profile_per_round, between=trim
        )
    trim()
    load.append(_load())
    out = assemble(
        paths, latency, commands, profiled, message_bytes=message_bytes, sizes=sizes, untimed=untimed
    )
    return dataclasses.replace(out, load=tuple(x for x in load if x is not None))


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return None


def assemble(
    paths: Sequence[PathSpec],
    latency: Mapping[str, Sequence[Sequence[float]]],
    commands: Mapping[str, Mapping[str, float]],
    profiled: Mapping[str, Profiled],
    *,
    message_bytes: int,
    sizes: Sizes,
    untimed: Mapping[str, float] | None = None,
) -> Breakdown:
    """The records from the three steps' raw figures (pure); ``untimed``: CPU seconds per call without
    the timers (:func:`cpu_per_call`)."""
    floor = stats.summarize_latency(latency[FLOOR], what="breakdown floor")
    cpu = {name: sum(prof.cpu_seconds.values()) for name, prof in profiled.items()}
    if untimed and all(untimed.get(name) for name in cpu):
        cpu = dict(untimed)  # free of the timers' own cost
    out = []
    warnings = []
    for p in paths:
        summary = (
            floor if p.name == FLOOR else stats.summarize_latency(latency[p.name], what=f"breakdown {p.name}")
        )
        if summary.warning:
            warnings.append(summary.warning)
        prof = profiled[p.name]
        out.append(
            PathBreakdown(
                path=p.name,
                title=p.title,
                patched=p.patched,
                latency=summary,
                floor_ratio=stats.ratio(summary.median, floor.median),
                round_ratios=round_ratios(latency[p.name], latency[FLOOR]),
                commands=tuple(sorted(commands[p.name].items())),
                round_trips=prof.counts.get(ROUND_TRIP_MARK, 0) / prof.calls,
                layers=layers_of(prof.seconds, prof.cpu_seconds, prof.calls),
                profiled_calls=prof.calls,
                profiled_mean_s=prof.elapsed / prof.calls,
                cpu_ratio=stats.ratio(cpu[p.name], cpu[FLOOR]),
                untimed_cpu_s=(untimed or {}).get(p.name),
            )
        )
    return Breakdown(message_bytes=message_bytes, sizes=sizes, paths=tuple(out), warnings=tuple(warnings))


def run(
    broker_url: str,
    *,
    sizes: Sizes = QUICK,
    settings: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Breakdown:
    """A breakdown on the broker at ``broker_url`` (a queue of its own, removed after)."""
    queue = f"celery-bench.breakdown.{uuid.uuid4().hex[:10]}"
    conn = redis.Redis.from_url(broker_url)
    try:
        with loadgen.Client(broker_url, queue, settings=settings or {}) as client:
            message_bytes = loadgen.celery_message_bytes(client, conn)
            return measure(client, conn, message_bytes=message_bytes, sizes=sizes, progress=progress)
    finally:
        conn.delete(queue, f"{queue}.floor", f"_kombu.binding.{queue}")
        conn.close()
