"""The ledger's accounting, without a server: every enqueued id lands in exactly one bucket."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tasks.reliability
from bench import ledger
from bench.ledger import Executions, ReliabilityRecord, account


def ex(starts: dict[str, int], done: dict[str, int] | None = None) -> Executions:
    return Executions(starts=starts, done=dict(starts) if done is None else done, pids={})


def test_every_id_executed_once():
    tally = account(["a", "b"], ex({"a": 1, "b": 1}))
    assert (tally.executed_once, tally.duplicated, tally.lost, tally.unexpected) == (2, 0, 0, 0)
    assert tally.completed == 2


def test_never_executed_is_lost():
    tally = account(["a", "b"], ex({"a": 1}))
    assert tally.lost == 1 and tally.lost_ids == ("b",)


def test_started_but_never_completed_is_lost():
    tally = account(["a"], ex({"a": 1}, {}))
    assert (tally.lost, tally.executed_once) == (1, 0)


def test_killed_then_redelivered_is_a_duplicate_not_a_loss():
    tally = account(["a"], ex({"a": 2}, {"a": 1}))
    assert (tally.duplicated, tally.lost, tally.executed_once) == (1, 0, 0)
    assert tally.duplicated_ids == ("a",)


def test_completed_twice_is_a_duplicate():
    assert account(["a"], ex({"a": 2}, {"a": 2})).duplicated == 1


def test_execution_of_an_id_never_enqueued_is_unexpected():
    tally = account(["a"], ex({"a": 1, "ghost": 1}))
    assert tally.unexpected == 1 and tally.unexpected_ids == ("ghost",)


def test_failed_publish_that_ran_anyway_is_recovered_not_unexpected():
    tally = account(["a"], ex({"a": 1, "f": 1}), failed=["f"])
    assert (tally.publish_errors, tally.recovered, tally.unexpected) == (1, 1, 0)


def test_duplicate_ids_in_the_enqueued_list_count_once():
    assert account(["a", "a"], ex({"a": 1})).enqueued == 1


def test_in_flight_is_started_minus_done():
    assert ledger.in_flight(ex({"a": 1, "b": 2, "c": 1}, {"a": 1, "b": 1})) == {"b", "c"}


ids = st.lists(st.text(alphabet="abcdef0123456789", min_size=1, max_size=6), unique=True, max_size=30)


@given(
    enqueued=ids,
    starts=st.dictionaries(st.text(alphabet="abcdef0123456789", min_size=1, max_size=6), st.integers(1, 3)),
    data=st.data(),
)
def test_buckets_partition_the_enqueued_ids(enqueued, starts, data):
    done = {k: data.draw(st.integers(0, v), label=f"done[{k}]") for k, v in starts.items()}
    tally = account(enqueued, ex(starts, done))
    assert tally.executed_once + tally.duplicated + tally.lost == tally.enqueued == len(enqueued)
    assert tally.unexpected == len(set(starts) - set(enqueued))


def test_record_verdict_and_unexpected_executions_make_it_a_deviation():
    clean = ledger.record(account(["a"], ex({"a": 1})), pool="solo", scenario="s", recovery_seconds=None,
                          expected="lost 0", ok=True)  # fmt: skip
    assert clean.verdict == "ok" and clean.lost == 0
    ghost = ledger.record(account(["a"], ex({"a": 1, "g": 1})), pool="solo", scenario="s",
                          recovery_seconds=1.0, expected="lost 0", ok=True)  # fmt: skip
    assert ghost.verdict == "deviation" and "never enqueued" in ghost.note
    assert ledger.record(account(["a"], ex({})), pool="solo", scenario="s", recovery_seconds=None,
                         expected="lost 0", ok=False).verdict == "deviation"  # fmt: skip


def test_not_applicable_row_carries_its_reason():
    row = ledger.not_applicable("solo", "child killed", expected="x", reason="no children under solo")
    assert (row.verdict, row.note, row.recovery_seconds) == ("n/a", "no children under solo", None)


def test_a_record_refuses_an_unknown_verdict():
    with pytest.raises(ValueError, match="verdict"):
        ReliabilityRecord("solo", "s", 0, 0, 0, 0, 0, None, "", "fine", "")


def test_records_are_frozen():
    row = ledger.not_applicable("solo", "s", expected="x", reason="r")
    with pytest.raises(AttributeError):
        row.lost = 3  # type: ignore[misc]


def test_the_tasks_write_the_key_layout_the_ledger_reads():
    for kind in ("start", "done", "pid"):
        assert tasks.reliability.key("run1", kind) == ledger.key("run1", kind)


def test_the_ledger_probes_are_the_names_the_fault_scenarios_send():
    from bench import faults, probes

    sent = {faults.producer.TASK_MARK, faults.producer.TASK_MARK_RESULT}
    sent |= {faults.producer.TASK_WORK, faults.producer.TASK_WORK_LATE}
    assert sent == {t.name for t in (probes.mark, probes.mark_with_result, probes.work, probes.work_late)}
