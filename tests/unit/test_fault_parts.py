"""The pure parts of the fault scenarios: raw messages, ``unacked`` parsing, the kill snapshot."""

from __future__ import annotations

import json

from bench import faults


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
