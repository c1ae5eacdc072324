"""The pure parts of the fault scenarios: raw messages, ``unacked`` parsing, the kill snapshot."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench import defaults, faults


def _unacked_entry(task_id: str, queue: str) -> bytes:
    envelope = json.loads(faults.json_task_message("t.x", task_id, (1,), queue=queue))
    return json.dumps([envelope, "", queue]).encode()


def test_a_hand_built_message_carries_its_task_id_and_queue():
    raw = faults.json_task_message("t.x", "id-1", (1, 2), queue="q.one")
    envelope = json.loads(raw)
    assert envelope["headers"]["id"] == "id-1" and envelope["headers"]["task"] == "t.x"
    assert envelope["properties"]["delivery_info"]["routing_key"] == "q.one"


def test_unacked_ids_keeps_only_the_queues_task_messages():
    unacked = {
        b"tag-a": _unacked_entry("id-a", "q.one"),
        b"tag-b": _unacked_entry("id-b", "q.other"),
        b"tag-c": b"not json",
        b"tag-d": json.dumps([{"headers": {}}, "", "q.one"]).encode(),
        b"tag-e": json.dumps({"no": "triple"}).encode(),
    }
    assert faults.unacked_ids(unacked, "q.one") == {"tag-a": "id-a"}


def test_kill_snapshot_sorts_each_id_by_where_it_was():
    snap = faults.KillSnapshot(
        ids=frozenset("abcdefg"),
        queued_before=frozenset("efg"),
        queued=frozenset("g"),
        held=frozenset("cd"),
        started=frozenset("abc"),
        done=frozenset("a"),
    )
    assert snap.interrupted == {"b", "c"}  # started, not done
    assert snap.acknowledged == {"b", "e", "f"}  # not done, neither queued nor held
    # e and f never started and are gone: popped but never held (kombu#1733, under acks_late); b was
    # started, so it was delivered and acknowledged, not lost in a BRPOP window.
    assert snap.popped_unseen == {"e", "f"}


def _snap(**buckets: str) -> faults.KillSnapshot:
    fields = ("ids", "queued_before", "queued", "held", "started", "done")
    return faults.KillSnapshot(**{f: frozenset(buckets.get(f, "")) for f in fields})


def test_worker_killed_verdict_acks_late():
    snap = _snap(ids="abcd", held="bcd", started="ab", done="a")  # b running, c and d reserved
    assert faults.worker_killed_as_documented(snap, frozenset(), frozenset("b"), acks_late=True)
    assert not faults.worker_killed_as_documented(snap, frozenset("c"), frozenset("b"), acks_late=True)
    assert not faults.worker_killed_as_documented(snap, frozenset(), frozenset(), acks_late=True)


def test_worker_killed_verdict_without_acks_late():
    # b was acknowledged and running (lost), c started but its ack not written yet (runs again).
    snap = _snap(ids="abcde", held="cd", queued="e", started="abc", done="a")
    assert faults.worker_killed_as_documented(snap, frozenset("b"), frozenset("c"), acks_late=False)
    # Losing a held one, or a duplicate of one the broker no longer had: not as documented.
    assert not faults.worker_killed_as_documented(snap, frozenset("bd"), frozenset("c"), acks_late=False)
    assert not faults.worker_killed_as_documented(snap, frozenset("b"), frozenset("bc"), acks_late=False)
    # No running task was acknowledged before the kill (solo, celery#3430): a deviation.
    solo = _snap(ids="abc", held="bc", started="ab", done="a")
    assert not faults.worker_killed_as_documented(solo, frozenset(), frozenset("b"), acks_late=False)


def test_child_killed_verdict():
    from bench.ledger import Executions, account

    once_lost = account(["t"], Executions(starts={"t": 1}, done={}, pids={}))
    twice = account(["t"], Executions(starts={"t": 2}, done={"t": 1}, pids={}))
    assert faults.child_killed_as_documented("FAILURE", "WorkerLostError", 1, once_lost, acks_late=False)
    assert not faults.child_killed_as_documented("FAILURE", "ValueError", 1, once_lost, acks_late=False)
    assert faults.child_killed_as_documented("SUCCESS", "", 2, twice, acks_late=True)
    assert not faults.child_killed_as_documented("SUCCESS", "", 1, once_lost, acks_late=True)


# -- judging: one step from an observation to a verdict and a note (no broker, no worker) -----------------
def _observation(facts, *, ids="abc", starts=None, done=None, pool="prefork", acks_late=False, **fields):
    from bench.ledger import Executions, account

    starts = {i: 1 for i in ids} if starts is None else starts
    done = {i: 1 for i in ids} if done is None else done
    executions = Executions(starts=starts, done=done, pids={})
    common = dict(
        scenario="s", expected="e", pool=pool, settings=faults.WorkerSettings(acks_late=acks_late),
        visibility_timeout=2.0, facts=facts, ids=tuple(ids), failed=(), executions=executions,
        tally=account(list(ids), executions), settled=True, settle_seconds=1.0, recovery_seconds=3.0,
        worker_alive=True, worker_exit=None, reserve_window=8, queued_after=0, held_after=frozenset(),
        log_tail="", pids=(),
    )  # fmt: skip
    return faults.Observation(**{**common, **fields})


def test_every_facts_type_has_a_judge():
    from bench.faults import judging, observations

    facts = {
        c for c in vars(observations).values()
        if isinstance(c, type) and c.__module__ == observations.__name__ and c.__name__.endswith("Facts")
    }  # fmt: skip
    assert facts == set(judging.JUDGES)


def test_observation_derives_lost_and_twice_from_the_ledger():
    obs = _observation(faults.LoadFacts(3, 0.1), starts={"a": 1, "b": 2, "c": 1}, done={"a": 1, "b": 1})
    assert obs.lost_ids == {"c"} and obs.twice == {"b"} and obs.starts("b") == 2 and obs.starts("z") == 0


def test_judge_no_faults_verdict_and_row():
    good = _observation(faults.LoadFacts(3, 0.5))
    row = faults.judge(good)
    assert row.verdict is faults.Verdict.OK and (row.enqueued, row.executed_once, row.lost) == (3, 3, 0)
    assert row.recovery_seconds == 3.0 and row.note.startswith("enqueued at 6/s; drained 1.0s")
    short = _observation(faults.LoadFacts(4, 0.5))  # one publish short of the count asked for
    assert faults.judge(short).verdict is faults.Verdict.DEVIATION
    lost = _observation(faults.LoadFacts(3, 0.5), done={"a": 1, "b": 1}, settled=False, queued_after=1)
    row = faults.judge(lost)
    assert row.verdict is faults.Verdict.DEVIATION and row.lost == 1
    assert "timed out" in row.note and "1 messages still queued" in row.note


def test_a_green_load_on_rabbitmq_at_the_synloop_pace_is_a_deviation_unless_heartbeat_is_off():
    # 3 tasks in 1.0 s: slower than 0.8 x 0.1 s each, the pace of celery#10500's drain per delivery.
    slow = _observation(faults.LoadFacts(3, 0.5), pool="gevent", broker="rabbitmq")
    assert faults.paced_by_synloop(slow) and faults.judge(slow).verdict is faults.Verdict.DEVIATION
    assert "celery#10500" in faults.judge(slow).note
    fast = _observation(faults.LoadFacts(3, 0.5), pool="eventlet", broker="rabbitmq", settle_seconds=0.2)
    assert not faults.paced_by_synloop(fast) and faults.judge(fast).verdict is faults.Verdict.OK
    off = faults.WorkerSettings(celery=faults.HEARTBEAT_OFF)
    unpaced = _observation(faults.LoadFacts(3, 0.5), pool="gevent", broker="rabbitmq", settings=off)
    assert not faults.paced_by_synloop(unpaced) and faults.judge(unpaced).verdict is faults.Verdict.OK
    for pool, broker in (("threads", "rabbitmq"), ("gevent", "redis")):  # neither runs the paced synloop
        assert not faults.paced_by_synloop(_observation(faults.LoadFacts(3, 0.5), pool=pool, broker=broker))


def test_judge_child_killed_needs_the_worker_alive():
    facts = faults.ChildFacts("a", False, 7, frozenset({7}), "FAILURE", "WorkerLostError", True, True)
    obs = _observation(facts, ids="a", done={})
    assert faults.judge(obs).verdict is faults.Verdict.OK
    dead = _observation(dataclasses.replace(facts, worker_alive=False), ids="a", done={})
    row = faults.judge(dead)
    assert row.verdict is faults.Verdict.DEVIATION and row.note.endswith("worker did not survive")


def test_judge_worker_killed_uses_the_documented_verdict():
    snap = _snap(ids="abcd", held="bcd", started="ab", done="a")
    facts = faults.KillFacts(snap, killed_wall=0.0)
    # acks_late: b interrupted and run again, c and d run once: nothing lost.
    obs = _observation(facts, ids="abcd", starts={"a": 1, "b": 2, "c": 1, "d": 1}, acks_late=True)
    assert faults.judge(obs).verdict is faults.Verdict.OK
    stuck = _observation(
        dataclasses.replace(facts, stuck=frozenset("d")), ids="abcd", acks_late=True,
        starts={"a": 1, "b": 2, "c": 1}, done={"a": 1, "b": 1, "c": 1}, settled=False,
    )  # fmt: skip
    row = faults.judge(stuck)
    assert row.verdict is faults.Verdict.DEVIATION
    assert "1 still held unacknowledged" in row.note and "not settled within" in row.note
    assert "recovery" not in row.note  # not settled: no recovery to break down


def test_worker_kill_recovery_names_its_fixed_parts():
    snap = _snap(ids="abcd", held="bcd", started="ab", done="a")
    facts = faults.KillFacts(snap, killed_wall=0.0, waited=2.25, startup=1.5)
    starts = {"a": 1, "b": 2, "c": 1, "d": 1}
    row = faults.judge(_observation(facts, ids="abcd", starts=starts, acks_late=True, recovery_seconds=4.0))
    assert "recovery 4.0s = 2.2s waiting out visibility_timeout + 1.5s replacement start-up" in row.note
    assert row.note.endswith("+ 0.2s running what it restored")


def test_judge_warm_shutdown():
    facts = faults.WarmFacts(0, 1.5, frozenset("a"), frozenset("a"), 2)
    assert faults.judge(_observation(facts)).verdict is faults.Verdict.OK
    unfinished = dataclasses.replace(facts, finished=frozenset())
    assert faults.judge(_observation(unfinished)).verdict is faults.Verdict.DEVIATION
    failed_exit = _observation(dataclasses.replace(facts, exit_code=1))
    assert faults.judge(failed_exit).verdict is faults.Verdict.DEVIATION


def _restart_facts(before="ab", after="c"):
    published = lambda ids: faults.Published(tuple(ids), (), 0.1)  # noqa: E731
    return faults.RestartFacts(published(before), faults.Published((), ("x", "y", "z"), 0.0),
                               published(after), frozenset(), 10.0, 12.5)  # fmt: skip


def test_lost_in_brpop_only_for_ids_published_before_never_started_and_gone():
    facts = _restart_facts(before="abd")
    ran = {"a": 1, "c": 1, "d": 1}
    lost_b = _observation(facts, ids="abdc", starts=ran, done=ran)
    assert faults.lost_in_brpop(lost_b)
    assert not faults.lost_in_brpop(_observation(facts, ids="abdc"))  # nothing lost
    assert not faults.lost_in_brpop(dataclasses.replace(lost_b, held_after=frozenset("b")))  # still held
    assert not faults.lost_in_brpop(dataclasses.replace(lost_b, queued_after=1))  # something still queued
    started = _observation(facts, ids="abdc", starts={**ran, "b": 1}, done=ran)
    assert not faults.lost_in_brpop(started)  # it ran (and died): not a BRPOP loss
    after = _observation(facts, ids="abdc", starts={"a": 1, "b": 1, "d": 1}, done={"a": 1, "b": 1, "d": 1})
    assert not faults.lost_in_brpop(after)  # c was published after the restart


def test_a_loss_counts_as_brpop_only_if_a_later_message_survived_the_restart():
    facts = _restart_facts(before="abd")
    # b lost, d (published after b, before the restart) ran: Redis kept the queue; b went in a pop.
    kept = _observation(facts, ids="abdc", starts={"a": 1, "c": 1, "d": 1}, done={"a": 1, "c": 1, "d": 1})
    assert faults.queue_kept_past(kept) and faults.lost_in_brpop(kept)
    # b and d lost, nothing published after them before the restart ran: Redis may have lost the queue.
    tail = _observation(facts, ids="abdc", starts={"a": 1, "c": 1}, done={"a": 1, "c": 1})
    assert not faults.queue_kept_past(tail) and not faults.lost_in_brpop(tail)


def test_judge_broker_restart():
    facts = _restart_facts()
    row = faults.judge(_observation(facts))
    assert row.verdict is faults.Verdict.OK and row.note.startswith("broker down 2.5s; 3 publishes refused")
    stalled = faults.judge(_observation(facts, settled=False, recovery_seconds=None))
    assert stalled.verdict is faults.Verdict.DEVIATION and "worker stalled" in stalled.note
    dead = _observation(dataclasses.replace(facts, crashed=True), worker_alive=False, worker_exit=1)
    row = faults.judge(dead)
    assert row.verdict is faults.Verdict.DEVIATION and "exited with 1 on AttributeError" in row.note


def test_judge_countdown_and_inapplicable_and_broker_down():
    counted = _observation(faults.CountdownFacts("a", 6.0), ids="a", starts={"a": 2})
    assert faults.judge(counted).verdict is faults.Verdict.OK
    once = _observation(faults.CountdownFacts("a", 6.0), ids="a")
    assert faults.judge(once).verdict is faults.Verdict.DEVIATION
    row = faults.judge(faults.Inapplicable("child killed", "lost 1", "solo", "no pool child"))
    assert (row.verdict, row.note, row.pool) == (faults.Verdict.NA, "no pool child", "solo")
    raised = faults.PublishFailure(retry=True, seconds=1.2, error="OperationalError: down", hung=False)
    assert faults.judge(faults.BrokerDown("default", "OperationalError", raised)).verdict is faults.Verdict.OK
    hung = faults.PublishFailure(retry=True, seconds=40.0, error=None, hung=True)
    row = faults.judge(faults.BrokerDown("default", "OperationalError", hung))
    assert row.verdict is faults.Verdict.DEVIATION and row.note.endswith(": hung")


def test_a_verdict_is_typed_and_renders_as_its_value():
    from bench import report
    from bench.ledger import not_applicable

    row = not_applicable("solo", "s", expected="x", reason="r")
    assert row.verdict is faults.Verdict.NA and json.dumps(report.record_dict(row))  # JSON-serialisable
    assert json.loads(json.dumps(report.record_dict(row)))["verdict"] == "n/a"
    assert report.reliability_table([row]).splitlines()[2].split()[-1] == "n/a"


# -- RabbitMQ rows and shutdown semantics (pure) ------------------------------------------------------------
def test_countdown_verdict_depends_on_the_broker():
    twice = _observation(faults.CountdownFacts("a", 6.0), ids="a", starts={"a": 2}, broker="rabbitmq")
    once = _observation(faults.CountdownFacts("a", 6.0), ids="a", broker="rabbitmq")
    assert faults.judge(once).verdict is faults.Verdict.OK and faults.judge(once).broker == "rabbitmq"
    assert faults.judge(twice).verdict is faults.Verdict.DEVIATION


def test_worker_killed_on_rabbitmq_names_no_visibility_timeout_nor_brpop():
    snap = _snap(ids="abcd", queued="d", held="bc", started="ab", done="a")  # c reserved, b running
    obs = _observation(faults.KillFacts(snap, 0.0), ids="abcd", starts={"a": 1, "b": 2, "c": 1, "d": 1},
                       acks_late=True, broker="rabbitmq", visibility_timeout=None)  # fmt: skip
    row = faults.judge(obs)
    assert row.verdict is faults.Verdict.OK and "2 put back by the broker" in row.note
    assert "visibility_timeout" not in row.note.split(";")[0]


def test_lost_in_brpop_is_a_redis_symptom_only():
    ran = {"a": 1, "c": 1, "d": 1}
    lost_b = _observation(_restart_facts(before="abd"), ids="abdc", starts=ran, done=ran)
    assert faults.lost_in_brpop(lost_b)
    assert not faults.lost_in_brpop(dataclasses.replace(lost_b, broker="rabbitmq"))  # no BRPOP on AMQP


def test_consumer_timeout_verdict():
    facts = faults.ConsumerTimeoutFacts("a", 2.0, 6.0, channel_closed=True)
    again = _observation(facts, ids="a", starts={"a": 2}, done={"a": 2}, broker="rabbitmq",
                         worker_alive=False, worker_exit=1)  # fmt: skip
    row = faults.judge(again)
    assert row.verdict is faults.Verdict.OK and "exited with 1" in row.note
    never = _observation(dataclasses.replace(facts, channel_closed=False), ids="a", broker="rabbitmq")
    assert faults.judge(never).verdict is faults.Verdict.DEVIATION
    lost = _observation(facts, ids="a", starts={"a": 2}, done={}, broker="rabbitmq")
    assert faults.judge(lost).verdict is faults.Verdict.DEVIATION


def _case(label: str) -> faults.ShutdownCase:
    return next(c for c in faults.SHUTDOWN_CASES if c.label.startswith(label))


def test_shutdown_case_bounds_and_exit_codes():
    slack = defaults.SHUTDOWN_SLACK
    warm, cold, soft = _case("TERM, running"), _case("QUIT, running"), _case("TERM as QUIT, soft")
    assert (warm.cold, warm.expected_exit, warm.bound(1.5)) == (False, 0, 1.5 + slack)
    assert (cold.cold, cold.expected_exit, cold.bound(1.5)) == (True, 1, slack)
    assert soft.cold and soft.soft_waits and soft.bound(1.5) == defaults.SOFT_SHUTDOWN_TIMEOUT + slack
    idle_soft = _case("TERM as QUIT, soft 3s on idle")
    assert idle_soft.soft_waits  # worker_enable_soft_shutdown_on_idle: it waits with nothing running
    assert not dataclasses.replace(idle_soft, soft_on_idle=False).soft_waits
    assert faults.shutdown_settings(soft).env == (("TASKS_LOG_ACCEPTED", "1"), ("REMAP_SIGTERM", "SIGQUIT"))
    assert dict(faults.shutdown_settings(idle_soft).celery) == {
        "worker_soft_shutdown_timeout": defaults.SOFT_SHUTDOWN_TIMEOUT,
        "worker_enable_soft_shutdown_on_idle": True,
    }


def _shutdown(case, **fields):
    base = dict(case=case, task_seconds=1.5, exit_code=case.expected_exit, seconds=1.0, hung=False,
                started=frozenset("ab"), done=frozenset("a"), started_after=frozenset("ab"),
                done_after=frozenset("ab"), kept=frozenset("cd"), held=frozenset())  # fmt: skip
    return faults.ShutdownFacts(**{**base, **fields})


def test_shutdown_problems():
    from bench.faults.judging import shutdown_problems

    ids = frozenset("abcd")
    warm = _case("TERM, running")
    assert shutdown_problems(_shutdown(warm), ids) == []
    assert "exit code 1 after a warm shutdown" in shutdown_problems(_shutdown(warm, exit_code=1), ids)
    assert any("over its bound" in p for p in shutdown_problems(_shutdown(warm, seconds=30.0), ids))
    assert any("lost" in p for p in shutdown_problems(_shutdown(warm, kept=frozenset("c")), ids))
    twice = _shutdown(warm, kept=frozenset("acd"))  # a completed before the signal and is back
    assert any("would run twice" in p for p in shutdown_problems(twice, ids))
    assert any(
        "celery#10180" in p for p in shutdown_problems(_shutdown(warm, started_after=frozenset("abc")), ids)
    )
    assert any(
        "celery#9505" in p for p in shutdown_problems(_shutdown(warm, failure_marked=frozenset("b")), ids)
    )
    cold = _case("QUIT, running")  # b running at the signal, cancelled: lost without acks_late
    assert shutdown_problems(_shutdown(cold, done_after=frozenset("a")), ids) == []
    finished = shutdown_problems(_shutdown(cold), ids)  # b ran to the end instead of being cancelled
    assert any("celery#10490" in p for p in finished)
    late = _case("QUIT, running, acks_late")
    assert any("lost" in p for p in shutdown_problems(_shutdown(late, done_after=frozenset("a")), ids))


def test_a_task_taken_but_not_started_at_a_cold_shutdown_may_be_lost_without_acks_late():
    from bench.faults.judging import shutdown_problems

    ids, cold = frozenset("abcd"), _case("QUIT, running")
    # b ran and was cancelled; c was taken by the pool (acknowledged) but its body had not started: gone
    taken = _shutdown(cold, accepted=frozenset("bc"), done_after=frozenset("a"), kept=frozenset("d"))
    assert taken.taken_unstarted == {"c"} and shutdown_problems(taken, ids) == []
    obs = _observation(taken, ids="abcd", starts={"a": 1, "b": 1}, done={"a": 1})
    assert "1 taken and acknowledged by the pool but not started" in faults.judge(obs).note
    queued = dataclasses.replace(taken, accepted=frozenset("b"))  # c never taken: it should be back
    assert any("lost that the shutdown should have put back" in p for p in shutdown_problems(queued, ids))
    late = dataclasses.replace(taken, case=_case("QUIT, running, acks_late"))  # nothing acknowledged early
    assert any("lost" in p for p in shutdown_problems(late, ids))


def test_read_log_takes_the_accepted_ids_before_the_first_shutdown_line_and_the_crash():
    log = (
        "[..: DEBUG/MainProcess] Task accepted: bench.probes.work[aa11] pid:7\n"
        "worker: Hitting Ctrl+C again will terminate all running tasks!\n"
        "[..: DEBUG/MainProcess] Task accepted: bench.probes.work[bb22] pid:7\n"
        "[..: CRITICAL/MainProcess] Unrecoverable error: RuntimeError('do not call blocking functions')\n"
    )
    logged = faults.read_log(log + "[..: INFO/MainProcess] Task bench.probes.work[dd44] received\n")
    assert logged == ({"aa11"}, {"bb22"}, {"dd44"}, "RuntimeError('do not call blocking functions')", False)
    hub = "gevent.exceptions.BlockingSwitchOutError: Impossible\nworker: Cold shutdown (MainProcess)"
    assert faults.read_log(hub)[3:] == ("gevent.exceptions.BlockingSwitchOutError: Impossible", True)
    assert not faults.read_log(hub, cold=False).handled
    assert faults.read_log("Task accepted: t[cc-33] pid:1\n").accepted == {"cc-33"}


def test_a_task_lost_at_a_shutdown_on_redis_that_the_worker_never_received_is_noted():
    cold = _case("QUIT, running")  # c: gone from the queue, never received, accepted or started
    facts = _shutdown(cold, done_after=frozenset("a"), kept=frozenset("d"), received=frozenset("abd"))
    obs = _observation(facts, ids="abcd", starts={"a": 1, "b": 1}, done={"a": 1})
    assert "1 gone from the queue, never received by the worker: kombu#1733" in faults.judge(obs).note
    seen = dataclasses.replace(facts, received=frozenset("abcd"))
    assert "never received" not in faults.judge(_observation(seen, ids="abcd")).note


def test_a_green_cold_shutdown_that_died_in_its_handler_says_so():
    from bench.faults.judging import shutdown_problems

    crashed = _shutdown(_case("QUIT, running"), crash="RuntimeError('x')")  # b finished, not cancelled
    (problem,) = shutdown_problems(crashed, frozenset("abcd"), "eventlet")
    assert "died on RuntimeError('x')" in problem and "celery#10490" not in problem
    (problem,) = shutdown_problems(crashed, frozenset("abcd"), "threads")
    assert "celery#10490" in problem


def test_section_brokers():
    from bench import brokers

    assert faults.section_brokers(None, "amqp://u:p@h:5672//") == ["rabbitmq"]
    assert faults.section_brokers(["redis", "redis"], None) == ["redis"]
    assert faults.section_brokers(None, None) == [k for k in brokers.KINDS if brokers.support(k).available]
    with pytest.raises(ValueError, match="unknown broker"):
        faults.section_brokers(["kafka"], None)


def test_the_quick_section_runs_known_shutdown_cases():
    from bench.faults import QUICK_SHUTDOWN_CASES

    labels = [c.label for c in faults.SHUTDOWN_CASES]
    assert set(QUICK_SHUTDOWN_CASES) <= set(labels) and len(set(labels)) == len(labels)


def test_the_section_runs_a_green_pools_load_on_rabbitmq_without_heartbeat_and_shows_the_pace(monkeypatch):
    import types

    import bench.faults as section

    loads: list[tuple[str, int, tuple]] = []

    def no_faults(target, pool, *, count, celery=()):
        loads.append((pool, count, tuple(celery)))
        return faults.Inapplicable("s", "e", pool, "recorded", target.kind)

    def other(target, pool, *args, **kwargs):
        return faults.Inapplicable("s", "e", pool, "recorded", target.kind)

    monkeypatch.setattr(section, "no_faults", no_faults)
    for name in ("child_killed", "worker_killed", "shutdown"):
        monkeypatch.setattr(section, name, other)
    for kind, pool in (("rabbitmq", "gevent"), ("redis", "gevent"), ("rabbitmq", "prefork")):
        target = types.SimpleNamespace(kind=kind)
        list(section._pool_scenarios(target, pool, quick=True, progress=lambda _: None))
    quick = faults.QUICK_LOAD_TASKS
    assert loads == [
        ("gevent", quick, faults.HEARTBEAT_OFF), ("gevent", defaults.PACED_LOAD_TASKS, ()),
        ("gevent", quick, ()), ("prefork", quick, ()),
    ]  # fmt: skip


def test_a_shutdown_row_counts_what_is_back_in_the_broker_as_not_lost():
    warm = _case("TERM, running")
    facts = _shutdown(warm)  # a and b completed, c and d back in the broker
    obs = _observation(facts, ids="abcd", starts={"a": 1, "b": 1}, done={"a": 1, "b": 1})
    assert obs.tally.lost == 2  # the ledger alone: c and d never ran
    row = faults.judge(obs)
    assert (row.lost, row.verdict) == (0, faults.Verdict.OK) and "2 back in the broker" in row.note
