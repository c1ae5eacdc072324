"""The sweep's delivery probe: a worker SIGKILLed mid-run under a configuration's own settings.

A small, fast variant of the fault tier's ``worker killed mid-run`` scenario
(:func:`bench.faults.scenarios.worker_killed`), run by the same runner (:func:`~bench.faults.run.observe`)
but with a sweep cell's configuration (``bench.config.Config``: its app, ``--set`` settings such as
``worker_prefetch_multiplier`` and ``task_acks_late``, and its pool and concurrency) instead of the
seed app's fault settings: publish :data:`PROBE_TASKS` ledger tasks (``bench.probes.work``, each
:data:`PROBE_TASK_SECONDS` of work), SIGKILL the worker once two completed and one runs, wait out a
short visibility timeout, start a replacement (its start-up ``restore_visible`` sweep moves back
what the dead one held), and count from the ledger (``bench.ledger``) what never completed (lost)
and what ran twice (duplicated). It is measured, not judged: the fault tier says what Celery's docs
promise; a sweep says what each setting costs. Each worker process that ran a probe also records
its redis-py reply parser (``bench.parsers``), so a sweep can say whether hiredis was
active inside the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from bench import defaults, ledger
from bench.broker import Broker
from bench.config import Config
from bench.faults.observations import Inapplicable, KillFacts, WorkerSettings
from bench.faults.producer import TASK_WORK
from bench.faults.run import Run, Scenario, observe
from bench.faults.scenarios import kill_mid_run

PROBE_TASKS = 16
"""Tasks of one delivery probe (the kill comes after two completed and one runs)."""

PROBE_TASK_SECONDS = 0.2
"""Work of one probe task: long enough for the kill to find one running on 4 processes."""

PROBE_VISIBILITY_TIMEOUT = 1.0
"""Seconds before Redis may redeliver what the killed worker held (the probe waits this out)."""


@dataclass(frozen=True)
class Delivery:
    """What one delivery probe counted.

    ``lost``: enqueued, never completed; ``duplicated``: completed, and started or completed twice;
    ``in_flight``: started and not completed at the kill; ``held``: delivered and unacknowledged at
    the kill (in kombu's ``unacked``: they come back); ``gone``: not completed and no longer in the
    broker at the kill (acknowledged, running or not yet, or popped by a BRPOP the dead worker never
    read, kombu#1733): the most the kill can lose; ``parsers``: the redis-py reply parser class of
    each worker process that ran a probe task (e.g. ``_HiredisParser``).
    """

    enqueued: int
    lost: int
    duplicated: int
    in_flight: int
    held: int
    gone: int
    settled: bool
    seconds: float
    parsers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "enqueued": self.enqueued,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "in_flight_at_kill": self.in_flight,
            "held_at_kill": self.held,
            "gone_at_kill": self.gone,
            "settled": self.settled,
            "seconds": self.seconds,
            "worker_parsers": list(self.parsers),
        }


@dataclass(frozen=True)
class _Facts:
    kill: KillFacts
    parsers: tuple[str, ...] = ()


def _inject(run: Run, tasks: int, seconds: float) -> _Facts:
    """Publish, SIGKILL the worker once under way, wait out the visibility timeout, start another."""
    published = run.enqueue(TASK_WORK, (run.run, seconds), count=tasks)
    return _Facts(kill_mid_run(run, published.ids))


def _parsers(run: Run) -> tuple[str, ...]:
    """The distinct redis-py parsers the run's worker processes reported."""
    return tuple(sorted(set(ledger.parsers(run.redis, run.run).values())))


def _settled(run: Run, facts: _Facts) -> bool:
    """Everything the broker still had at the kill (queued, or held unacknowledged) completed."""
    snapshot = facts.kill.snapshot
    return snapshot.held | snapshot.queued <= set(run.executions().done)


def probe(
    broker: Broker,
    config: Config,
    pool: str,
    *,
    tasks: int = PROBE_TASKS,
    seconds: float = PROBE_TASK_SECONDS,
    visibility_timeout: float = PROBE_VISIBILITY_TIMEOUT,
    worker_env: Mapping[str, str] | None = None,
) -> Delivery:
    """One delivery probe of ``config`` on ``pool`` (``config.concurrency`` processes or threads)."""
    scenario: Scenario[_Facts] = Scenario(
        name="delivery probe", expected="measured, not judged",
        settings=WorkerSettings(loglevel="WARNING"), visibility_timeout=visibility_timeout,
        settle_timeout=defaults.FAULT_SETTLE_TIMEOUT,
        inject=lambda run: _inject(run, tasks, seconds), settle=_settled,
        aftermath=lambda run, f, _: replace(f, parsers=_parsers(run)),
    )  # fmt: skip
    observed = observe(broker, pool, scenario, config=config, worker_env=worker_env)
    if isinstance(observed, Inapplicable):  # pragma: no cover - the probe applies to every pool
        raise RuntimeError(observed.reason)
    snapshot = observed.facts.kill.snapshot
    return Delivery(
        enqueued=observed.tally.enqueued, lost=observed.tally.lost, duplicated=observed.tally.duplicated,
        in_flight=len(snapshot.interrupted), held=len(snapshot.held), gone=len(snapshot.acknowledged),
        settled=observed.settled,
        seconds=observed.settle_seconds, parsers=observed.facts.parsers,
    )  # fmt: skip
