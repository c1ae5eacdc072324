"""Security and bad input: refused content, a closed private broker, malformed task input, isolation."""

from __future__ import annotations

import socket
import uuid

import psutil
import pytest
import redis
from celery import states
from celery.result import AsyncResult

from bench import defaults, faults, ledger
from bench.broker import private_redis
from bench.procs import make_tempdir, remove_tempdir, wait_for
from bench.worker import Worker
from tasks import add

pytestmark = pytest.mark.faults
RESULT = defaults.RESULT_TIMEOUT


def test_pickled_message_is_refused_and_never_executed(pool, fault_broker, no_leaks):
    run = uuid.uuid4().hex[:12]
    queue = f"rel.{run}"
    bad_id, good_id = uuid.uuid4().hex, uuid.uuid4().hex
    scratch = make_tempdir("canary")
    canary = scratch / "unpickled"
    client = fault_broker.client()  # the store: ledger and results
    try:
        with Worker(
            fault_broker.url, pool=pool, queues=(queue,), backend_url=fault_broker.backend_url
        ) as worker:
            no_leaks.extend([worker.pid, *worker.child_pids()])
            bad = faults.pickle_task_message(faults.TASK_MARK, bad_id, (run,), queue=queue, canary=canary)
            good = faults.json_task_message(faults.TASK_MARK, good_id, (run,), queue=queue)
            faults.push_raw(fault_broker, queue, bad)  # Redis LPUSH + BRPOP, AMQP: first in, first delivered
            faults.push_raw(fault_broker, queue, good)
            wait_for(lambda: good_id in ledger.read(client, run).done, timeout=RESULT,
                     what="the JSON message pushed after the pickled one to run")  # fmt: skip
            wait_for(lambda: "Refusing to deserialize" in worker.log(), timeout=RESULT,
                     what="the worker to log the refused content")  # fmt: skip
            executions = ledger.read(client, run)
            assert bad_id not in executions.starts and bad_id not in executions.done
            assert not canary.exists(), "the worker unpickled the message body"
            assert "application/x-python-serialize" in worker.log()
            assert faults.queue_length(fault_broker, queue) == 0, (
                "the refused message must not stay in the queue"
            )
            assert worker.alive() and worker.ping(timeout=2.0)
            no_leaks.extend(worker.child_pids())
    finally:
        ledger.forget(client, run)
        client.close()
        remove_tempdir(scratch)


@pytest.mark.pools("solo")  # a property of the broker, not of the pool
def test_private_redis_listens_on_loopback_only_and_needs_its_password(pool, redis_server):
    with private_redis() as broker:
        assert broker.process is not None
        listening = [
            c.laddr for c in psutil.Process(broker.process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]  # fmt: skip
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
        anonymous = redis.Redis(host="127.0.0.1", port=broker.port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        wrong = redis.Redis(host="127.0.0.1", port=broker.port, password="not-" + broker.password)
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()
        for address in _non_loopback_ipv4():
            with pytest.raises(OSError):
                socket.create_connection((address, broker.port), timeout=2).close()
        assert broker.client().ping()


def _non_loopback_ipv4() -> list[str]:
    return [
        a.address for addrs in psutil.net_if_addrs().values() for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        pytest.param((1,), {}, id="too-few-args"),
        pytest.param((1, 2, 0, 4), {}, id="too-many-args"),
        pytest.param((1, 2), {"z": 3}, id="unknown-kwarg"),
        pytest.param((None, 1), {}, id="none"),
        pytest.param(("2", 8), {}, id="str-plus-int"),
        pytest.param(([1], 2), {}, id="list-plus-int"),
    ],
)
def test_malformed_input_to_add_fails_with_the_task_exception(app, worker, args, kwargs):
    """Sent by name as the harness does (no client-side signature check): FAILURE, worker alive."""
    result = app.send_task("tasks.add", args, kwargs)
    returned = result.get(timeout=RESULT, propagate=False)
    assert result.state == states.FAILURE
    assert isinstance(returned, TypeError), repr(returned)
    assert worker.alive() and worker.ping(timeout=2.0)
    assert add.delay(2, 8).get(timeout=RESULT) == 10


def test_wrong_argument_count_is_caught_before_sending_by_delay(app):
    with pytest.raises(TypeError):
        add.delay(1)


@pytest.mark.brokers("redis")  # two private Redis servers of its own: the session's broker kind is not used
def test_two_harness_runs_do_not_see_each_others_tasks_or_results(pool, no_leaks, redis_server):
    with private_redis() as first, private_redis() as second:
        with Worker(first.url, pool=pool) as one, Worker(second.url, pool=pool) as two:
            no_leaks.extend([one.pid, two.pid, *one.child_pids(), *two.child_pids()])
            app_one, app_two = faults.client_app(first.url), faults.client_app(second.url)
            try:
                sent_one = [app_one.send_task("tasks.behaviour.where") for _ in range(5)]
                sent_two = [app_two.send_task("tasks.behaviour.where") for _ in range(5)]
                assert {r.get(timeout=RESULT) for r in sent_one} == {one.node}
                assert {r.get(timeout=RESULT) for r in sent_two} == {two.node}
                for mine, other_app, other in ((sent_one, app_two, second), (sent_two, app_one, first)):
                    for res in mine:
                        assert AsyncResult(res.id, app=other_app).state == states.PENDING
                        assert not other.client().exists(f"celery-task-meta-{res.id}")
            finally:
                app_one.close()
                app_two.close()
            no_leaks.extend([*one.child_pids(), *two.child_pids()])
