"""Routing (the seed's ``task_routes``, ``apply_async(queue=...)`` and ``worker -Q``), on every pool."""

from __future__ import annotations

import json

import pytest

from bench import defaults
from bench.procs import wait_for
from tasks import add, routed_add
from tasks.behaviour import where

pytestmark = pytest.mark.integration
RESULT = defaults.RESULT_TIMEOUT


def _queued_ids(app, queue: str) -> set[str]:
    """Ids of the task messages waiting in ``queue``: on Redis the list kombu keeps for it; on AMQP,
    which has no peek, every message taken unacknowledged, then put back by closing the channel."""
    with app.connection_for_write() as conn:
        if conn.transport.driver_type == "redis":
            raw = conn.default_channel.client.lrange(queue, 0, -1)
            return {json.loads(entry)["headers"]["id"] for entry in raw}
        channel = conn.channel()
        ids: set[str] = set()
        try:
            while (message := channel.basic_get(queue=queue, no_ack=False)) is not None:
                ids.add(message.headers["id"])
        finally:
            channel.close()  # the unacknowledged messages go back to the queue
        return ids


def test_routed_task_waits_for_a_worker_of_its_queue(app, worker, make_worker, pool):
    queue = "add_queue"
    assert app.amqp.router.route({}, routed_add.name)["queue"].name == queue
    routed = routed_add.delay(2, 2)
    # The default worker is alive and consuming: a task sent *after* the routed one completes ...
    assert where.delay().get(timeout=RESULT) == worker.node
    # ... while the routed one still sits, unconsumed, in its own queue.
    assert routed.state == "PENDING"
    assert routed.id in _queued_ids(app, queue)
    q_worker = make_worker(pool=pool, queues=[queue])
    assert routed.get(timeout=RESULT) == 4
    # the -Q worker consumes only its queue: it never takes the default queue's work
    assert where.apply_async(queue=queue).get(timeout=RESULT) == q_worker.node
    assert where.delay().get(timeout=RESULT) == worker.node


def test_apply_async_queue_overrides_the_route(app, worker, make_worker, pool):
    q_worker = make_worker(pool=pool, queues=["add_queue"])
    # the seed: add.apply_async((2, 2), queue='add_queue') goes to the -Q worker
    assert add.apply_async((2, 2), queue="add_queue").get(timeout=RESULT) == 4
    assert where.apply_async(queue="add_queue").get(timeout=RESULT) == q_worker.node
    # and a routed task can be sent to the default queue instead of its route
    assert routed_add.apply_async((3, 3), queue="celery").get(timeout=RESULT) == 6
    wait_for(lambda: "tasks.routed_add" in worker.log(), timeout=RESULT, what="the default worker to log it")
