"""Loss accounting: which enqueued tasks ran once, more than once, or never.

After the Jepsen total-queue checker: the producer knows the ids it enqueued (publishes that returned
without error) and the ids whose publish raised; every execution records itself in Redis under a key
space of its own (``rel:<run>:start`` and ``rel:<run>:done``, hashes of task id -> count, written by
``tasks.reliability``). :func:`account` compares the two, purely; :func:`read` fetches the counts.

Every enqueued id falls in exactly one bucket:

- **lost**: no execution completed (``done == 0``), whether or not one started;
- **duplicated**: completed, and its body started or completed more than once (a side effect before
  the fault happened twice);
- **executed once**: started once and completed once.

Ids that executed without being enqueued are *unexpected* (should never happen); ids whose publish
raised and that ran anyway are *recovered* (a publish error is ambiguous: the message may have
reached the broker before the connection broke).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import redis

KEY_PREFIX = "rel"
"""Prefix of the ledger's key space; ``tasks/reliability.py`` writes the same layout."""


class Verdict(StrEnum):
    """How a scenario's outcome compares with what Celery's docs promise (its value is the JSON's)."""

    OK = "ok"
    """Celery did what its docs promise."""
    DEVIATION = "deviation"
    """It did not."""
    NA = "n/a"
    """The scenario does not apply here (the pool, or a broker the harness may not restart)."""


VERDICTS = tuple(v.value for v in Verdict)
"""The verdicts' values, in the JSON schema's order."""


def key(run: str, kind: str) -> str:
    """The Redis key of ``kind`` (``start``, ``done``, ``pid``) for run ``run``."""
    return f"{KEY_PREFIX}:{run}:{kind}"


@dataclass(frozen=True)
class ReliabilityRecord:
    """One row of the reliability table: a scenario on a pool, its counts and its verdict."""

    pool: str
    scenario: str
    enqueued: int
    publish_errors: int
    executed_once: int
    duplicated: int
    lost: int
    recovery_seconds: float | None
    expected: str
    verdict: Verdict
    note: str
    broker: str = "redis"
    """The broker kind the scenario ran on (``redis``, ``rabbitmq``); ``any`` for none in particular."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        object.__setattr__(self, "verdict", Verdict(self.verdict))  # a plain 'ok' becomes Verdict.OK


@dataclass(frozen=True)
class Executions:
    """What the tasks recorded: per task id, how many executions started and completed."""

    starts: Mapping[str, int]
    done: Mapping[str, int]
    pids: Mapping[str, int]


@dataclass(frozen=True)
class Tally:
    """The accounting of one run (counts, plus a few ids of each bucket for the report's notes)."""

    enqueued: int
    publish_errors: int
    executed_once: int
    duplicated: int
    lost: int
    unexpected: int
    recovered: int
    lost_ids: tuple[str, ...]
    duplicated_ids: tuple[str, ...]
    unexpected_ids: tuple[str, ...]

    @property
    def completed(self) -> int:
        """Enqueued ids with at least one completed execution."""
        return self.executed_once + self.duplicated


def account(
    enqueued: Iterable[str],
    executions: Executions,
    *,
    failed: Iterable[str] = (),
) -> Tally:
    """Classify every enqueued id; ``failed`` are ids whose publish raised. Pure, no I/O."""
    enqueued_ids = list(dict.fromkeys(enqueued))
    failed_ids = [i for i in dict.fromkeys(failed) if i not in set(enqueued_ids)]
    once: list[str] = []
    duplicated: list[str] = []
    lost: list[str] = []
    for task_id in enqueued_ids:
        starts = executions.starts.get(task_id, 0)
        done = executions.done.get(task_id, 0)
        if done == 0:
            lost.append(task_id)
        elif starts > 1 or done > 1:
            duplicated.append(task_id)
        else:
            once.append(task_id)
    known = set(enqueued_ids) | set(failed_ids)
    seen = set(executions.starts) | set(executions.done)
    unexpected = sorted(seen - known)
    recovered = [i for i in failed_ids if executions.done.get(i, 0) > 0]
    return Tally(
        enqueued=len(enqueued_ids),
        publish_errors=len(failed_ids),
        executed_once=len(once),
        duplicated=len(duplicated),
        lost=len(lost),
        unexpected=len(unexpected),
        recovered=len(recovered),
        lost_ids=tuple(lost[:5]),
        duplicated_ids=tuple(duplicated[:5]),
        unexpected_ids=tuple(unexpected[:5]),
    )


def in_flight(executions: Executions) -> set[str]:
    """Ids whose execution started and has not completed yet (what a fault now interrupts)."""
    return {i for i, n in executions.starts.items() if n > executions.done.get(i, 0)}


def _counts(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def read(client: redis.Redis, run: str) -> Executions:
    """The executions recorded for ``run`` (one round trip)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(key(run, "start"))
    pipe.hgetall(key(run, "done"))
    pipe.hgetall(key(run, "pid"))
    starts, done, pids = pipe.execute()
    return Executions(starts=_counts(starts), done=_counts(done), pids=_counts(pids))


def done_count(client: redis.Redis, run: str) -> int:
    """How many distinct ids completed at least once (cheap: one HLEN)."""
    return int(client.hlen(key(run, "done")))


def parsers(client: redis.Redis, run: str) -> dict[int, str]:
    """Per worker process that ran a ``work`` probe of ``run``: its redis-py reply parser's class."""
    return {int(pid): name.decode() for pid, name in client.hgetall(key(run, "parser")).items()}


def forget(client: redis.Redis, run: str) -> None:
    """Delete the run's ledger keys (they also expire on their own after a day)."""
    client.delete(key(run, "start"), key(run, "done"), key(run, "pid"), key(run, "parser"))


def record(
    tally: Tally,
    *,
    pool: str,
    scenario: str,
    recovery_seconds: float | None,
    expected: str,
    ok: bool,
    note: str = "",
    broker: str = "redis",
) -> ReliabilityRecord:
    """A table row from a tally; ``ok`` is whether what happened is what ``expected`` says."""
    extra = []
    if tally.unexpected:
        extra.append(f"{tally.unexpected} executions of ids never enqueued")
    if tally.recovered:
        extra.append(f"{tally.recovered} of the failed publishes ran anyway")
    return ReliabilityRecord(
        pool=pool,
        scenario=scenario,
        enqueued=tally.enqueued,
        publish_errors=tally.publish_errors,
        executed_once=tally.executed_once,
        duplicated=tally.duplicated,
        lost=tally.lost,
        recovery_seconds=recovery_seconds,
        expected=expected,
        verdict=Verdict.OK if ok and not tally.unexpected else Verdict.DEVIATION,
        note="; ".join([n for n in (note, *extra) if n]),
        broker=broker,
    )


def not_applicable(
    pool: str, scenario: str, *, expected: str, reason: str, broker: str = "redis"
) -> ReliabilityRecord:
    """A row for a scenario that does not apply to ``pool`` (or to this broker), with the reason."""
    return ReliabilityRecord(
        pool=pool,
        scenario=scenario,
        enqueued=0,
        publish_errors=0,
        executed_once=0,
        duplicated=0,
        lost=0,
        recovery_seconds=None,
        expected=expected,
        verdict=Verdict.NA,
        note=reason,
        broker=broker,
    )
