"""``--set task_ignore_result=true``: the main job's drain and open loop still see every task complete.

A producer's ``ignore_result`` travels in the message and the worker then stores no result, so the
rounds that waited for the probes' results used to wait ``DRAIN_TIMEOUT`` for nothing. The probes now
announce their completion on a channel of their own when their result is ignored
(``bench.probes._announce``): the same rounds ``bench run`` uses must finish, with no result stored.
"""

from __future__ import annotations

import uuid

import pytest

from bench import defaults, loadgen, scenarios
from bench.broker import Broker
from bench.brokers import BrokerHandle
from bench.config import Config
from bench.worker import Worker, control_app

pytestmark = pytest.mark.integration

TASKS = 60
CONFIG = Config(settings=(("task_ignore_result", True),))


@pytest.mark.parametrize("kind", ["solo", "prefork"])
def test_a_drain_and_an_open_loop_finish_when_results_are_ignored(
    bench_broker: Broker | BrokerHandle, bench_backend: Broker, kind: str
):
    queue = f"ignored-{uuid.uuid4().hex[:8]}"
    conn = bench_backend.client()  # the probes announce their completion on the result backend's Redis
    control = control_app(bench_broker.url)
    worker = Worker(
        bench_broker.url, **CONFIG.on(kind, None).worker_kwargs(), queues=(f"{queue}.idle",),
        backend_url=bench_backend.url,
    )  # fmt: skip
    producer = loadgen.Client(bench_broker.url, queue, backend=False, settings=CONFIG.producer_settings)
    try:
        with worker, producer:

            def consume():
                return scenarios.consuming(control, worker, queue)

            outcomes = loadgen.drain_round(
                producer, conn, f"{queue}-drain-", TASKS, consume,
                timeout=defaults.DRAIN_TIMEOUT, what=f"{kind} worker to drain {TASKS} tasks",
            )  # fmt: skip
            sent, stamps = loadgen.open_loop_round(
                producer, conn, f"{queue}-e2e-", rate=50.0, count=TASKS, consume=consume,
                grace=defaults.E2E_GRACE, what="the open loop's completions",
            )  # fmt: skip
    finally:
        control.close()
    assert len(outcomes) == TASKS and {o.status for o in outcomes.values()} == {"SUCCESS"}
    assert loadgen.drain_rate(outcomes)[0] == TASKS - 1
    to_start, to_result, missing = loadgen.e2e_latencies(sent, stamps)
    assert missing == [] and len(to_start) == len(to_result) == TASKS
    assert all(0 <= start <= done for start, done in zip(to_start, to_result, strict=True))
    # the worker really ignored the results: nothing was stored for any of the tasks
    assert list(conn.scan_iter(match=f"{loadgen.RESULT_PREFIX}{queue}*", count=1000)) == []
    conn.close()
