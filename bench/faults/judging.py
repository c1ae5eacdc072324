"""Judging apart from measuring: one step from an observation and its documented expectation to a
verdict (:class:`~bench.ledger.Verdict`) and a note, as a :class:`~bench.ledger.ReliabilityRecord`.

Pure: nothing here touches a broker or a worker. The verdict functions are what the table's ``ok``
means for each scenario; the notes say what happened in words, for the report only (tests assert on
the observations' typed fields, never on a note).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench import pools
from bench.defaults import (
    FAULT_PUBLISH_ERROR_BOUND,
    FAULT_SETTLE_TIMEOUT,
    FAULT_STALL_TIMEOUT,
    GREEN_POOLS,
    SHUTDOWN_EXIT_TIMEOUT,
    SYNLOOP_DRAIN_PACE,
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
    ShutdownFacts,
    WarmFacts,
)
from bench.faults.run import NO_RESTORE_SWEEP, NO_RESTORE_SWEEP_ISSUE, paced
from bench.ledger import ReliabilityRecord, Tally, Verdict, not_applicable, record

BRPOP_LOSS_ISSUES = "kombu#1733, kombu#305: a BRPOP answered while the connection closes loses its message"
STALL_ISSUES = "celery#8990, celery#10205"
NO_TERMINATE_JOB = "celery#10490: the pool has no terminate_job"
GREEN_COLD_HANDLER = (
    "the cold-shutdown handler runs in the green pool's event loop, where its first blocking call raises; "
    "no upstream issue for the cold path (celery#10083, closed, is the warm one's)"
)
GREEN_KILL_ACKED = (
    "a killed green thread returns as a success (celery/concurrency/{pool}.py, killable_target), so "
    "on_success acknowledges it"
)


@dataclass(frozen=True)
class Judgement:
    """A scenario's verdict and the sentence that explains it; ``tally`` replaces the observation's
    when the scenario counts differently (a shutdown: what is back in the broker is not lost)."""

    verdict: Verdict
    note: str
    tally: Tally | None = None

    @classmethod
    def of(cls, ok: bool, note: str, tally: Tally | None = None) -> Judgement:
        return cls(Verdict.OK if ok else Verdict.DEVIATION, note, tally)


def judge(observed: Observation[Any] | Inapplicable | BrokerDown) -> ReliabilityRecord:
    """The table row of one observation: its counts, its verdict against ``expected``, its note."""
    if isinstance(observed, Inapplicable):
        return not_applicable(
            observed.pool, observed.scenario, expected=observed.expected, reason=observed.reason,
            broker=observed.broker,
        )  # fmt: skip
    if isinstance(observed, BrokerDown):
        return judge_broker_down(observed)
    judgement = JUDGES[type(observed.facts)](observed)
    return record(
        judgement.tally or observed.tally, pool=observed.pool, scenario=observed.scenario,
        recovery_seconds=observed.recovery_seconds, expected=observed.expected,
        ok=judgement.verdict is Verdict.OK, note=judgement.note, broker=observed.broker,
    )  # fmt: skip


# -- 1 ---------------------------------------------------------------------------------------------------
def judge_no_faults(obs: Observation[LoadFacts]) -> Judgement:
    tally, facts = obs.tally, obs.facts
    rate = len(obs.ids) / facts.publish_seconds if facts.publish_seconds else float("inf")
    note = f"enqueued at {rate:,.0f}/s; drained {obs.settle_seconds:.1f}s after the last publish"
    if not obs.settled:
        note += " (not all of it: timed out)"
    if obs.queued_after:
        note += f"; {obs.queued_after} messages still queued"
    slow = paced_by_synloop(obs)
    if slow:
        note += f"; {SYNLOOP_DRAIN_PACE:g}s or more per task ({pools.SYNLOOP_PACED})"
    ok = tally.lost == 0 and tally.duplicated == 0 and not obs.failed and tally.enqueued == facts.count
    return Judgement.of(ok and not slow, note)


def paced_by_synloop(obs: Observation[LoadFacts]) -> bool:
    """The load drained at :data:`SYNLOOP_DRAIN_PACE` per task or slower (timed out counts), on a pool and
    broker where Celery's ``synloop`` paces it (``run.paced``). Polling adds at most
    :data:`FAULT_POLL`; the margin of 0.8 allows for the ``drain_events`` that overlap the publishing."""
    if not paced(obs.broker, obs.pool, obs.settings):
        return False
    return not obs.settled or obs.settle_seconds >= 0.8 * SYNLOOP_DRAIN_PACE * obs.facts.count


# -- 2 ---------------------------------------------------------------------------------------------------
def child_killed_as_documented(state: str, error: str, starts: int, tally: Tally, *, acks_late: bool) -> bool:
    """The verdict of a killed prefork child: redelivered once (acks_late + reject_on_worker_lost), or
    FAILURE with ``WorkerLostError`` and never run again (the defaults)."""
    if acks_late:
        return state == "SUCCESS" and starts == 2 and tally.lost == 0 and tally.duplicated == 1
    return state == "FAILURE" and error == "WorkerLostError" and starts == 1 and tally.lost == 1


def judge_child_killed(obs: Observation[ChildFacts]) -> Judgement:
    f = obs.facts
    starts = obs.starts(f.task_id)
    ok = child_killed_as_documented(f.state, f.error, starts, obs.tally, acks_late=f.acks_late)
    note = f"state {f.state}{' ' + f.error if f.error else ''}; body started {starts}x"
    survived = f.worker_alive and f.child_replaced
    note += "; worker survived, child replaced" if survived else "; worker did not survive"
    return Judgement.of(ok and f.worker_alive, note)


# -- 3 ---------------------------------------------------------------------------------------------------
def worker_killed_as_documented(
    snap: KillSnapshot, lost_ids: frozenset[str], twice: frozenset[str], *, acks_late: bool
) -> bool:
    """The verdict of a killed worker. ``acks_late``: nothing lost, every interrupted task ran again.
    Without: lost exactly what was acknowledged and unfinished at the kill, a running task among them,
    and only what the broker still held ran twice."""
    if acks_late:
        return not lost_ids and snap.interrupted <= twice
    return lost_ids == snap.acknowledged and bool(snap.interrupted & lost_ids) and twice <= snap.held


def judge_worker_killed(obs: Observation[KillFacts]) -> Judgement:
    snap, stuck, acks_late = obs.facts.snapshot, obs.facts.stuck, obs.settings.acks_late
    lost_ids, twice = obs.lost_ids, obs.twice
    note = f"{len(snap.interrupted)} in flight at the kill; " + (
        f"visibility_timeout {obs.visibility_timeout:g}s"
        if obs.visibility_timeout is not None
        else f"{len(snap.held)} put back by the broker when the connection closed"
    )
    if not acks_late and snap.interrupted and snap.interrupted <= snap.held:
        note += "; the running tasks ran again instead of being lost: not acknowledged before they ran" + (
            " (celery#3430: solo acks after the task body)" if obs.pool == "solo" else ""
        )
    if acks_late and twice - snap.interrupted:
        note += f"; {len(twice - snap.interrupted)} completed but unacknowledged at the kill also ran twice"
    if (unseen := lost_ids & snap.popped_unseen) and obs.broker == "redis":
        note += f"; {len(unseen)} popped from the queue at the kill, never held ({BRPOP_LOSS_ISSUES})"
    elif unseen:
        note += f"; {len(unseen)} never started and gone from the queue"
    if stuck:
        note += f"; {len(stuck)} still held unacknowledged: no restore sweep moved them back" + (
            f" ({NO_RESTORE_SWEEP_ISSUE})" if obs.pool in NO_RESTORE_SWEEP else ""
        )
    if not obs.settled:
        note += f"; not settled within {FAULT_SETTLE_TIMEOUT:g}s"
    elif obs.recovery_seconds is not None:
        f = obs.facts
        note += (f"; recovery {obs.recovery_seconds:.1f}s = {f.waited:.1f}s waiting out visibility_timeout + "
                 f"{f.startup:.1f}s replacement start-up + "
                 f"{obs.recovery_seconds - f.waited - f.startup:.1f}s running what it restored")  # fmt: skip
    return Judgement.of(worker_killed_as_documented(snap, lost_ids, twice, acks_late=acks_late), note)


# -- 4 ---------------------------------------------------------------------------------------------------
def judge_warm_shutdown(obs: Observation[WarmFacts]) -> Judgement:
    f, tally = obs.facts, obs.tally
    ok = tally.lost == 0 and tally.duplicated == 0 and f.finished == f.interrupted and f.exit_code == 0
    note = (
        f"exit code {f.exit_code} after {f.stop_seconds:.1f}s; {len(f.finished)}/{len(f.interrupted)} "
        f"running tasks finished before exit; {f.requeued} messages back in the queue"
    )
    return Judgement.of(ok, note)


# -- 5 ---------------------------------------------------------------------------------------------------
def queue_kept_past(obs: Observation[RestartFacts]) -> bool:
    """Whether a message published before the restart *after* every lost one ran.

    A queue is FIFO (LPUSH, BRPOP), so the worker pops in publish order: a later message that ran was
    still queued when the earlier ones were popped, so Redis kept the queue across the restart and the
    lost ids went in a pop. Redis losing queued data would take every later message with them. (A read
    of the queue just before the stop cannot tell the two apart: the worker keeps popping until the stop
    lands.)"""
    order = obs.facts.before.ids
    last_lost = max((order.index(i) for i in obs.lost_ids if i in order), default=-1)
    return any(obs.executions.done.get(i, 0) for i in order[last_lost + 1 :])


def lost_in_brpop(obs: Observation[RestartFacts], ids: frozenset[str] | None = None) -> bool:
    """kombu#1733's symptom after a restart: every lost id (or every one of ``ids``) was published before
    it, never started, neither queued nor held once the workers stopped, and a message published after
    them ran (:func:`queue_kept_past`)."""
    lost = obs.lost_ids if ids is None else ids
    return (
        obs.broker == "redis" and bool(lost) and lost <= set(obs.facts.before.ids) and obs.queued_after == 0
        and not any(obs.starts(i) for i in lost) and not lost & obs.held_after
        and queue_kept_past(obs)
    )  # fmt: skip


def judge_broker_restart(obs: Observation[RestartFacts]) -> Judgement:
    f, tally = obs.facts, obs.tally
    note = f"broker down {f.downtime:.1f}s; {f.refused_while_down} publishes refused while down"
    if f.held:
        note += (f"; {len(f.held)} messages held unacknowledged across the restart ran only after "
                 f"visibility_timeout ({obs.visibility_timeout:g}s here, 3600s by default)")  # fmt: skip
    if not obs.worker_alive:
        note += f"; the worker exited with {obs.worker_exit}"
        if f.crashed:
            note += " on AttributeError at the connection loss (kombu#582 / celery#10205 family)"
    if lost_in_brpop(obs):
        note += (f"; {tally.lost} popped from the queue but never run nor held unacknowledged "
                 f"({BRPOP_LOSS_ISSUES})")  # fmt: skip
    elif tally.lost:
        note += f"; {tally.lost} never ran"
    if not obs.settled:
        note += f"; worker stalled: idle {FAULT_STALL_TIMEOUT:g}s after the broker was back ({STALL_ISSUES})"
    if failed_up := len(f.before.failed) + len(f.after.failed):
        note += f"; {failed_up} publishes failed while the broker was up"
    return Judgement.of(tally.lost == 0 and obs.settled and obs.worker_alive, note)


# -- 6 ---------------------------------------------------------------------------------------------------
def judge_broker_down(down: BrokerDown) -> ReliabilityRecord:
    """A producer-side row: no worker, nothing enqueued; ok if the publish raised OperationalError."""
    failure = down.failure
    ok = not failure.hung and (failure.error or "").startswith("OperationalError")
    what = "hung" if failure.hung else (failure.error or "no error raised")[:160]
    note = (
        f"producer-side, no worker; {failure.seconds:.2f}s to the error (hung if over "
        f"{FAULT_PUBLISH_ERROR_BOUND:g}s; broker_connection_timeout {down.connect_timeout:g}s bounds the "
        f"connect, the publish policy only the publish): {what}"
        + (" (celery#5919: the result subscription fails first)" if down.results and not ok else "")
    )
    return ReliabilityRecord(
        pool="any", scenario=f"broker down at enqueue ({down.label})", enqueued=0,
        publish_errors=1 if failure.error else 0, executed_once=0, duplicated=0, lost=0,
        recovery_seconds=failure.seconds, expected=down.expected,
        verdict=Verdict.OK if ok else Verdict.DEVIATION, note=note, broker=down.broker,
    )  # fmt: skip


# -- 7 ---------------------------------------------------------------------------------------------------
def judge_countdown(obs: Observation[CountdownFacts]) -> Judgement:
    runs = obs.starts(obs.facts.task_id)
    note = f"ran {runs}x; countdown {obs.facts.countdown:g}s, visibility_timeout {obs.visibility_timeout:g}s"
    if obs.broker == "redis":
        if runs < 2 and obs.pool in NO_RESTORE_SWEEP:
            note += f"; no restore sweep redelivered it ({NO_RESTORE_SWEEP_ISSUE})"
        return Judgement.of(obs.tally.lost == 0 and runs >= 2, note)
    return Judgement.of(obs.tally.lost == 0 and runs == 1, note + " (Redis's setting; RabbitMQ has none)")


# -- 8 ---------------------------------------------------------------------------------------------------
def consumer_timeout_as_documented(starts: int, tally: Tally, *, channel_closed: bool) -> bool:
    """RabbitMQ's docs for a delivery unacknowledged past ``consumer_timeout``: the channel is closed and
    the delivery requeued, so the late-acknowledged task runs again (twice here: the first run completes
    too, its ack is what fails) and nothing is lost. Whether the worker exits (Celery's calling guide
    says it does) or reconnects is in the note."""
    return channel_closed and starts == 2 and tally.lost == 0


def judge_consumer_timeout(obs: Observation[ConsumerTimeoutFacts]) -> Judgement:
    f = obs.facts
    starts = obs.starts(f.task_id)
    note = (
        f"task {f.task_seconds:g}s, consumer_timeout {f.timeout_seconds:g}s; body started {starts}x; "
        + (
            "channel closed by the broker (PRECONDITION_FAILED)"
            if f.channel_closed
            else "channel never closed"
        )
        + ("; the worker reconnected" if f.reconnected else "")
        + (
            ""
            if obs.worker_alive
            else f"; the worker exited with {obs.worker_exit} (PreconditionFailed), "
            "a replacement ran the requeued task"
        )
    )
    return Judgement.of(
        consumer_timeout_as_documented(starts, obs.tally, channel_closed=f.channel_closed), note
    )


# -- 9 ---------------------------------------------------------------------------------------------------
def shutdown_problems(f: ShutdownFacts, ids: frozenset[str], pool: str = "") -> list[str]:
    """What a shutdown did that its documented behaviour excludes (empty: as documented): not exiting, or
    with another code, or slower than its bound; a loss other than a cancelled task acknowledged before
    it completed (cold, without ``acks_late``); a completed task back in the broker (it would run
    twice); a completed task whose result says FAILURE (celery#9505)."""
    case, problems = f.case, []
    bound = case.bound(f.task_seconds)
    if f.hung:
        problems.append(f"hung: still running {SHUTDOWN_EXIT_TIMEOUT:g}s after the signal, killed")
    elif not case.cold and f.exit_code != 0:
        problems.append(f"exit code {f.exit_code} after a warm shutdown")
    if not f.hung and f.seconds > bound:
        problems.append(f"took {f.seconds:.1f}s to exit, over its bound of {bound:g}s")
    hit = f.interrupted | f.taken_later
    allowed = hit | f.taken_unstarted if case.cold and not case.acks_late else frozenset()
    if stray := (ids - f.done_after - f.kept) - allowed:
        problems.append(f"{len(stray)} lost that the shutdown should have put back")
    if twice := (f.kept & f.done_after) - hit:
        problems.append(f"{len(twice)} completed, not interrupted, yet back in the broker (would run twice)")
    if f.taken_later:
        problems.append(f"{len(f.taken_later)} tasks taken by the pool after the signal (celery#10180)")
    if f.cancels and (finished := f.interrupted & f.done_after):
        problems.append(
            f"{len(finished)} running tasks finished instead of being cancelled ({_why(f, pool)})"
        )
    if f.errors:
        problems.append(f"interrupted tasks failed with {', '.join(sorted(f.errors))} ({NO_TERMINATE_JOB})")
    if f.failure_marked:
        problems.append(f"{len(f.failure_marked)} completed but marked FAILURE (celery#9505)")
    return problems


def _why(f: ShutdownFacts, pool: str) -> str:
    """Why running tasks were not cancelled: a green pool's handler broke, or the pool cannot cancel."""
    if pool not in GREEN_POOLS:
        return NO_TERMINATE_JOB
    how = f"died on {f.crash}" if f.crash else "did not return" if not f.handled else "returned"
    return f"the handler {how}; {GREEN_COLD_HANDLER}"


def judge_shutdown(obs: Observation[ShutdownFacts]) -> Judgement:
    f = obs.facts
    ids = frozenset(obs.ids)
    lost = ids - f.done_after - f.kept
    code = f"exit {f.exit_code}" + (
        f" (the cold-shutdown handler sets {f.case.expected_exit})"
        if f.exit_code != f.case.expected_exit
        else ""
    )
    note = (
        f"{code} after {f.seconds:.1f}s (bound {f.case.bound(f.task_seconds):g}s); "
        f"{len(f.interrupted)} running at the signal, {len(f.done_after & f.interrupted)} of them finished; "
        f"{len(f.kept)} back in the broker"
        + (
            f" ({len(f.held)} {'still in unacked' if obs.broker == 'redis' else 'redelivered'})"
            if f.held
            else ""
        )
        + f"; {len(lost)} lost"
    )
    if (unseen := lost - f.seen) and obs.broker == "redis":
        note += f" ({len(unseen)} gone from the queue, never received by the worker: {BRPOP_LOSS_ISSUES})"
    if early := lost & f.taken_unstarted:
        note += f" ({len(early)} taken and acknowledged by the pool but not started at the signal)"
    if f.case.acks_late and obs.pool in GREEN_POOLS and lost & f.interrupted:
        note += f" ({GREEN_KILL_ACKED.format(pool=obs.pool)})"
    problems = shutdown_problems(f, ids, obs.pool)
    # Lost here: neither completed nor back in the broker (what is back runs on the next worker).
    tally = replace(obs.tally, lost=len(lost), lost_ids=tuple(sorted(lost))[:5])
    return Judgement.of(not problems, "; ".join([note, *problems]), tally)


JUDGES: dict[type, Callable[[Observation[Any]], Judgement]] = {
    LoadFacts: judge_no_faults,
    ChildFacts: judge_child_killed,
    KillFacts: judge_worker_killed,
    WarmFacts: judge_warm_shutdown,
    RestartFacts: judge_broker_restart,
    CountdownFacts: judge_countdown,
    ConsumerTimeoutFacts: judge_consumer_timeout,
    ShutdownFacts: judge_shutdown,
}
"""The judge of each scenario, by the type of its facts."""
