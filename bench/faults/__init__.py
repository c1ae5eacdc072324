"""Fault injection with loss accounting, per pool.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bench import pools
from bench.broker import Broker, from_option
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
    queue_kept_past,
    worker_killed_as_documented,
)
from bench.faults.kombu_redis import unacked_ids
from bench.faults.messages import json_task_message, pickle_task_message, protocol2_message, push_raw
from bench.faults.observations import (
    BrokerDown,
    ChildFacts,
    CountdownFacts,
    Inapplicable,
    KillFacts,
    KillSnapshot,
    LoadFacts,
    Observation,
    RestartFacts,
    WarmFacts,
    WorkerSettings,
)
from bench.faults.producer import TASK_MARK, Published, client_app, enqueue, worker_env
from bench.faults.run import ACKS_AFTER_THE_BODY, NO_RESTORE_SWEEP, Run, Scenario, observe
from bench.faults.scenarios import (
    LOAD_TASKS,
    QUICK_LOAD_TASKS,
    REFUSED_WHILE_DOWN,
    broker_down,
    broker_down_with_results,
    broker_restart,
    child_killed,
    countdown_redelivery,
    no_faults,
    warm_shutdown,
    worker_killed,
)
from bench.ledger import ReliabilityRecord, Verdict

__all__ = [
    "ACKS_AFTER_THE_BODY",
    "BrokerDown",
    "ChildFacts",
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
    "Run",
    "Scenario",
    "TASK_MARK",
    "Verdict",
    "WarmFacts",
    "WorkerSettings",
    "broker_down",
    "broker_down_with_results",
    "broker_restart",
    "child_killed",
    "child_killed_as_documented",
    "client_app",
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
    "pickle_task_message",
    "policy_sleeps",
    "print_table",
    "protocol2_message",
    "publish_error_time",
    "push_raw",
    "reliability_section",
    "restart_broker",
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
) -> list[ReliabilityRecord]:
    """Run the fault scenarios on each pool; one record per scenario and pool (see docs/reliability.md).

    ``broker_url`` None: a private Redis with append-only persistence (the restart scenario needs it).
    ``quick``: the load scenario with :data:`QUICK_LOAD_TASKS`, the child and worker kills with the
    at-least-once settings only, and the broker-down timing; the rest is skipped.
    """
    if not pools_:
        raise ValueError("reliability_section needs at least one pool; pass e.g. ['solo']")
    for name in pools_:
        info = pools.support(name)
        if not info.available:
            raise ValueError(f"pool {name!r} is unavailable here: {info.reason}")
    records: list[ReliabilityRecord] = []
    with from_option(broker_url, appendonly=True) as broker:
        for pool in pools_:
            records.extend(_pool_scenarios(broker, pool, quick=quick, progress=progress))
        progress("reliability: broker down at enqueue")
        records.extend(judge(o) for o in broker_down(broker, with_results=not quick))
    return records


def _pool_scenarios(
    broker: Broker, pool: str, *, quick: bool, progress: Callable[[str], None]
) -> Iterator[ReliabilityRecord]:
    count = QUICK_LOAD_TASKS if quick else LOAD_TASKS
    steps: list[tuple[str, Callable[[], Any]]] = [
        (f"no faults, {count:,} tasks", lambda: no_faults(broker, pool, count=count)),
        ("child killed (acks_late)", lambda: child_killed(broker, pool, acks_late=True)),
        ("worker killed (acks_late)", lambda: worker_killed(broker, pool, acks_late=True)),
    ]
    if not quick:
        steps += [
            ("child killed (defaults)", lambda: child_killed(broker, pool, acks_late=False)),
            ("worker killed (defaults)", lambda: worker_killed(broker, pool, acks_late=False)),
            ("warm shutdown", lambda: warm_shutdown(broker, pool)),
            ("broker restart", lambda: broker_restart(broker, pool)),
            ("countdown redelivery", lambda: countdown_redelivery(broker, pool)),
        ]
    for label, step in steps:
        progress(f"reliability [{pool}]: {label}")
        yield judge(step())


def print_table(
    *, quick: bool = True, pools_: list[str] | None = None, broker_url: str | None = None
) -> None:
    """Run the reliability section and print its table (the command in docs/reliability.md)."""
    from bench.report import reliability_table  # report imports scenarios, which imports this package

    chosen = pools.select(pools_)
    records = reliability_section(chosen, broker_url=broker_url, quick=quick, progress=print)
    print(reliability_table(records))
