"""Fault injection with loss accounting, per broker and pool.

Small injections over broker and worker handles (:func:`kill_child`, :func:`kill_worker`,
:func:`warm_stop`, :func:`restart_broker`, :func:`publish_error_time`, :func:`push_raw`), and the
scenarios built from them. Each scenario starts its own worker(s) on a queue of its own, enqueues
tasks of ``bench.probes`` (the ledger probes) *by name*, in any app's worker, injects one fault,
waits (bounded) for the system to settle, stops every process it started, and accounts for every
task id with :mod:`bench.ledger`. :func:`reliability_section` runs them for ``python -m bench run``.

Where Redis keeps unacknowledged messages (kombu's ``transport/redis.py``): a delivered message is
copied into the ``unacked`` hash with the delivery time as its score in ``unacked_index``. Only
``QoS.restore_visible`` reads ``visibility_timeout``: it moves back to their queue the messages
delivered more than ``visibility_timeout`` seconds ago. It runs in every process that *consumes*
from the broker: when a worker's event loop starts (``on_poll_init``: a new worker restores at once),
every ``unacked_restore_interval`` x ``unacked_restore_throttle`` seconds (10 x 10 by default) in a
running worker, and on every empty ``drain_events`` of a synchronous consumer (a client waiting for
control replies, e.g. ``app.control.ping``). So every worker *and* every client app must carry the
same ``visibility_timeout`` (a client with a shorter one would requeue messages that workers still
hold): the workers get it through ``TASKS_VISIBILITY_TIMEOUT`` (``broker_transport_options`` and
``result_backend_transport_options`` in ``tasks/celery_config.py``), the client app here through
:func:`client_app`. A warm shutdown puts the unacknowledged messages back at once
(``restore_at_shutdown``); a killed worker leaves them for the next ``restore_visible`` sweep.

RabbitMQ has no visibility timeout: a channel holds what it was delivered until it acknowledges, and
the broker puts it back when the channel closes (a killed or stopped worker, a closed connection), or
closes the channel itself past ``consumer_timeout``. The scenarios take a :class:`Target` (the broker
plus a Redis store for the ledger and results) and read the AMQP queue where they read Redis's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from bench import brokers as broker_kinds
from bench import defaults, pools
from bench.broker import from_option, private_redis
from bench.faults.injections import (
    PublishFailure,
    down_broker_url,
    forget_pooled_connections,
    kill_child,
    policy_sleeps,
    publish_error_time,
    restart_broker,
)
from bench.faults.judging import (
    Judgement,
    child_killed_as_documented,
    judge,
    lost_in_brpop,
    paced_by_synloop,
    queue_kept_past,
    worker_killed_as_documented,
)
from bench.faults.kombu_redis import unacked_ids
from bench.faults.messages import (
    json_task_message,
    pickle_task_message,
    protocol2_message,
    push_raw,
    queue_length,
)
from bench.faults.observations import (
    BrokerDown,
    ChildFacts,
    ConsumerTimeoutFacts,
    CountdownFacts,
    Inapplicable,
    KillFacts,
    KillSnapshot,
    LoadFacts,
    Observation,
    RestartFacts,
    ShutdownCase,
    ShutdownFacts,
    WarmFacts,
    WorkerSettings,
)
from bench.faults.producer import TASK_MARK, Published, client_app, enqueue, worker_env
from bench.faults.run import (
    ACKS_AFTER_THE_BODY,
    HEARTBEAT_OFF,
    NO_RESTORE_SWEEP,
    Run,
    Scenario,
    Target,
    as_target,
    observe,
    paced,
)
from bench.faults.scenarios import (
    LOAD_TASKS,
    QUICK_LOAD_TASKS,
    REFUSED_WHILE_DOWN,
    broker_down,
    broker_down_with_results,
    broker_restart,
    child_killed,
    consumer_timeout,
    countdown_redelivery,
    no_faults,
    warm_shutdown,
    worker_killed,
)
from bench.faults.shutdown import SHUTDOWN_CASES, read_log, shutdown, shutdown_settings
from bench.ledger import ReliabilityRecord, Verdict
from bench.report import reliability_table

__all__ = [
    "ACKS_AFTER_THE_BODY",
    "HEARTBEAT_OFF",
    "BrokerDown",
    "ChildFacts",
    "ConsumerTimeoutFacts",
    "CountdownFacts",
    "Inapplicable",
    "Judgement",
    "KillFacts",
    "KillSnapshot",
    "LOAD_TASKS",
    "NO_RESTORE_SWEEP",
    "LoadFacts",
    "Observation",
    "PublishFailure",
    "Published",
    "QUICK_LOAD_TASKS",
    "REFUSED_WHILE_DOWN",
    "RestartFacts",
    "SHUTDOWN_CASES",
    "ShutdownCase",
    "ShutdownFacts",
    "Run",
    "Scenario",
    "TASK_MARK",
    "Target",
    "Verdict",
    "WarmFacts",
    "WorkerSettings",
    "as_target",
    "broker_down",
    "broker_down_with_results",
    "broker_restart",
    "child_killed",
    "child_killed_as_documented",
    "client_app",
    "consumer_timeout",
    "countdown_redelivery",
    "down_broker_url",
    "enqueue",
    "forget_pooled_connections",
    "json_task_message",
    "judge",
    "kill_child",
    "lost_in_brpop",
    "queue_kept_past",
    "no_faults",
    "observe",
    "paced",
    "paced_by_synloop",
    "pickle_task_message",
    "policy_sleeps",
    "print_table",
    "protocol2_message",
    "publish_error_time",
    "push_raw",
    "queue_length",
    "fault_target",
    "reliability_section",
    "section_brokers",
    "restart_broker",
    "shutdown",
    "read_log",
    "shutdown_settings",
    "unacked_ids",
    "warm_shutdown",
    "worker_env",
    "worker_killed",
    "worker_killed_as_documented",
]


# -- the main job's section --------------------------------------------------------------------------
def reliability_section(
    pools_: list[str],
    *,
    broker_url: str | None,
    quick: bool,
    progress: Callable[[str], None],
    brokers: Sequence[str] | None = None,
) -> list[ReliabilityRecord]:
    """Run the fault scenarios on each broker kind and pool; one record per scenario, pool and broker
    (each carries its ``broker``; see docs/reliability.md).

    ``brokers``: the kinds (``redis``, ``rabbitmq``); None: the kind of ``broker_url`` if given, else every
    kind this machine can start. ``broker_url`` None: private brokers (a Redis with append-only
    persistence, which the restart scenario needs; a RabbitMQ node beside a private Redis for the ledger
    and results). ``quick``: the load scenario with :data:`QUICK_LOAD_TASKS`, the child and worker kills
    with the at-least-once settings only, two shutdown cases and the broker-down timing; the rest is skipped.
    """
    if not pools_:
        raise ValueError("reliability_section needs at least one pool; pass e.g. ['solo']")
    for name in pools_:
        info = pools.support(name)
        if not info.available:
            raise ValueError(f"pool {name!r} is unavailable here: {info.reason}")
    records: list[ReliabilityRecord] = []
    for kind in section_brokers(brokers, broker_url):
        with fault_target(kind, broker_url) as target:
            for pool in pools_:
                records.extend(_pool_scenarios(target, pool, quick=quick, progress=progress))
            progress(f"reliability [{kind}]: broker down at enqueue")
            records.extend(judge(o) for o in broker_down(target, with_results=not quick))
    return records


def section_brokers(requested: Sequence[str] | None, broker_url: str | None) -> list[str]:
    """The broker kinds of the section: ``requested`` (each one this machine can start, or the kind of
    ``broker_url``), else ``broker_url``'s kind, else every kind available here."""
    if requested is None:
        if broker_url:
            return [broker_kinds.kind_of_url(broker_url)]
        return [k for k in broker_kinds.KINDS if broker_kinds.support(k).available]
    chosen = list(dict.fromkeys(requested))
    for kind in chosen:
        if broker_url and broker_kinds.kind_of_url(broker_url) == kind:
            continue
        info = broker_kinds.support(kind)  # ValueError for an unknown kind
        if not info.available:
            raise ValueError(f"broker {kind!r} is unavailable here: {info.reason}")
    return chosen


@contextmanager
def fault_target(kind: str, broker_url: str | None) -> Iterator[Target]:
    """The section's broker of ``kind`` with its store: ``broker_url`` if it is of that kind, else a private
    one (Redis: append-only, its own store; RabbitMQ: a node, and a private Redis for ledger and results)."""
    url = broker_url if broker_url and broker_kinds.kind_of_url(broker_url) == kind else None
    if kind == "redis":
        with from_option(url, appendonly=True) as redis_broker:
            yield Target(redis_broker, redis_broker)
        return
    node = broker_kinds.external(url) if url else broker_kinds.private(kind)
    with private_redis() as store:
        node.start()
        try:
            yield Target(node, store)  # type: ignore[arg-type]
        finally:
            node.stop()


def _pool_scenarios(
    target: Target, pool: str, *, quick: bool, progress: Callable[[str], None]
) -> Iterator[ReliabilityRecord]:
    count = QUICK_LOAD_TASKS if quick else LOAD_TASKS
    steps: list[tuple[str, Callable[[], Any]]] = [
        (f"no faults, {count:,} tasks", lambda: no_faults(target, pool, count=count)),
    ]
    if paced(target.kind, pool, WorkerSettings()):  # the load without the pace, and the pace on a short one
        steps = [
            (f"no faults, {count:,} tasks, no heartbeat",
             lambda: no_faults(target, pool, count=count, celery=HEARTBEAT_OFF)),
            (f"no faults, {defaults.PACED_LOAD_TASKS} tasks",
             lambda: no_faults(target, pool, count=defaults.PACED_LOAD_TASKS)),
        ]  # fmt: skip
    steps += [
        ("child killed (acks_late)", lambda: child_killed(target, pool, acks_late=True)),
        ("worker killed (acks_late)", lambda: worker_killed(target, pool, acks_late=True)),
    ]
    if not quick:
        steps += [
            ("child killed (defaults)", lambda: child_killed(target, pool, acks_late=False)),
            ("worker killed (defaults)", lambda: worker_killed(target, pool, acks_late=False)),
            ("warm shutdown", lambda: warm_shutdown(target, pool)),
            ("broker restart", lambda: broker_restart(target, pool)),
            ("countdown redelivery", lambda: countdown_redelivery(target, pool)),
            ("consumer timeout", lambda: consumer_timeout(target, pool)),
        ]
    cases = SHUTDOWN_CASES if not quick else [c for c in SHUTDOWN_CASES if c.label in QUICK_SHUTDOWN_CASES]
    steps += [(f"shutdown: {c.label}", partial(shutdown, target, pool, c)) for c in cases]
    for label, step in steps:
        progress(f"reliability [{target.kind}/{pool}]: {label}")
        yield judge(step())


QUICK_SHUTDOWN_CASES = ("TERM, running", f"TERM as QUIT, soft {defaults.SOFT_SHUTDOWN_TIMEOUT:g}s, running")
"""The shutdown cases a ``--quick`` section runs (the warm one and the soft one)."""


def print_table(
    *,
    quick: bool = True,
    pools_: list[str] | None = None,
    broker_url: str | None = None,
    brokers: Sequence[str] | None = None,
) -> None:
    """Run the reliability section and print its table (the command in docs/reliability.md)."""
    chosen = pools.select(pools_)
    records = reliability_section(chosen, broker_url=broker_url, quick=quick, progress=print, brokers=brokers)
    print(reliability_table(records))
