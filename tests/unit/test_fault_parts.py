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
    # e and f were queued just before the kill and never started: popped but never held (kombu#1733);
    # b was started, so it was delivered and acknowledged, not lost in a BRPOP window.
    assert snap.popped_unseen == {"e", "f"}
