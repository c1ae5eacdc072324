"""The seed article's behaviours, on every selected pool, against a real worker and a real Redis."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from celery import chain, states
from celery.exceptions import TimeoutError as CeleryTimeoutError

import tasks
from bench import defaults
from bench.procs import wait_for
from bench.worker import child_env
from tasks import add, multiply
from tasks.behaviour import fail, named, sleep_for, stacked_add, task_id, where

pytestmark = pytest.mark.integration
RESULT = defaults.RESULT_TIMEOUT


def test_task_runs_on_this_pools_worker(app, worker):
    assert where.delay().get(timeout=RESULT) == worker.node


def test_delay_returns_before_the_work_is_done(app):
    work = 2.0  # the seed's time.sleep(2)
    started = time.perf_counter()
    res = add.delay(2, 8, work=work)
    call_time = time.perf_counter() - started
    state_after_call = res.state
    assert res.get(timeout=RESULT) == 10
    total = time.perf_counter() - started
    assert state_after_call in (states.PENDING, states.STARTED)
    assert total >= work
    # Both durations come from this run: the call is a small fraction of the time to the result.
    assert call_time * 4 < total, f"delay() took {call_time:.3f}s of the {total:.3f}s to the result"


def test_apply_async_equals_delay(app):
    assert add.apply_async((2, 8)).get(timeout=RESULT) == add.delay(2, 8).get(timeout=RESULT) == 10


def test_async_result_id_and_get_with_timeout(app):
    res = add.delay(2, 8)
    assert isinstance(res.id, str) and len(res.id) >= 32
    assert res.get(timeout=RESULT) == 10
    assert res.state == states.SUCCESS


def test_get_times_out_while_the_task_still_works(app):
    res = sleep_for.delay(2.0)
    with pytest.raises(CeleryTimeoutError):
        res.get(timeout=0.2)
    assert res.get(timeout=RESULT) == 2.0


def test_get_propagates_or_returns_the_error(app):
    res = fail.delay("boom")
    with pytest.raises(ValueError, match="boom"):
        res.get(timeout=RESULT)
    returned = res.get(timeout=RESULT, propagate=False)
    assert isinstance(returned, ValueError) and "boom" in str(returned)
    assert res.state == states.FAILURE
    assert add.delay(2, 8).get(timeout=RESULT, propagate=False) == 10


def _observed_states(res, timeout: float) -> list[str]:
    seen: list[str] = []

    def done() -> bool:
        state = res.state
        if not seen or seen[-1] != state:
            seen.append(state)
        return state in states.READY_STATES

    wait_for(done, timeout=timeout, what=f"task {res.id} to finish", interval=0.01)
    return seen


def _states_of_a_held_task(app, worker, signature) -> list[str]:
    """Send ``signature`` to a queue nobody consumes (so it is PENDING for sure), then let the pool's
    worker consume that queue (``add_consumer``) and record every state until the task is ready."""
    queue = f"hold-{uuid.uuid4().hex[:8]}"
    res = signature.apply_async(queue=queue)
    seen = [res.state]
    replies = app.control.add_consumer(queue, destination=[worker.node], reply=True, timeout=2)
    assert replies, f"{worker.node} did not acknowledge add_consumer({queue!r})"
    try:
        for state in _observed_states(res, RESULT):
            if seen[-1] != state:
                seen.append(state)
    finally:
        app.control.cancel_consumer(queue, destination=[worker.node], reply=True, timeout=2)
    return seen


def test_state_goes_pending_started_success(app, worker):
    seen = _states_of_a_held_task(app, worker, add.s(2, 8, work=1.0))
    assert seen == [states.PENDING, states.STARTED, states.SUCCESS]


def test_state_goes_pending_started_failure(app, worker):
    seen = _states_of_a_held_task(app, worker, fail.s("late", work=1.0))
    assert seen == [states.PENDING, states.STARTED, states.FAILURE]


def test_async_result_from_another_process(app):
    res = add.delay(2, 8)
    res.get(timeout=RESULT)
    code = (
        "import sys; from tasks import app; r = app.AsyncResult(sys.argv[1]); "
        f"print(r.state, r.get(timeout={RESULT}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, res.id],
        env=child_env(app.conf.broker_url, app.conf.result_backend),
        capture_output=True,
        text=True,
        timeout=RESULT,
        check=True,
    )
    assert out.stdout.split() == ["SUCCESS", "10"]


def test_bound_task_returns_its_own_id(app):
    res = task_id.delay()
    assert res.get(timeout=RESULT) == res.id


def test_task_names(app):
    assert add.name == "tasks.add" and multiply.name == "tasks.multiply"
    assert named.name == "seed.explicitly_named"
    assert app.send_task("seed.explicitly_named", (1, 2)).get(timeout=RESULT) == 3
    assert app.send_task("tasks.add", (1, 2)).get(timeout=RESULT) == 3


def test_stacked_decorator_still_a_task(app):
    assert stacked_add.name == "tasks.behaviour.stacked_add"
    assert stacked_add.delay(2, 3).get(timeout=RESULT) == ["logged", 5]


def test_signature_countdown_runs_no_earlier(app):
    countdown = 1.0
    sent = datetime.now(UTC)
    res = add.signature((2, 2), countdown=countdown).delay()
    assert res.get(timeout=RESULT) == 4
    assert res.date_done is not None
    waited = (res.date_done.replace(tzinfo=UTC) - sent).total_seconds()
    assert waited >= countdown, f"ran {waited:.3f}s after sending, countdown was {countdown}s"


def test_signature_shorthand(app):
    s1 = add.s(2, 2)
    assert s1.delay().get(timeout=RESULT) == 4


def test_chain(app):
    assert chain(add.s(4, 4) | multiply.s(8))().get(timeout=RESULT) == 64


def test_worker_log_captured(app, worker):
    assert add.delay(20, 22).get(timeout=RESULT) == 42
    wait_for(lambda: "tasks.add" in worker.log(), timeout=RESULT, what="the worker log to show tasks.add")
    assert tasks.app.main == "demo"


def test_the_articles_client_script(app, worker):
    """The seed's ``client.py``, verbatim, run as its own process: prints at once, the sum comes later."""
    client_py = (
        "from tasks import add\n\n# 异步任务\nres = add.delay(2, 8)\nprint('hello world')\nprint(res.id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", client_py],
        env=child_env(app.conf.broker_url, app.conf.result_backend),
        capture_output=True,
        text=True,
        timeout=RESULT,
        check=True,
    )
    hello, task_id_line = out.stdout.splitlines()
    assert hello == "hello world"
    assert app.AsyncResult(task_id_line).get(timeout=RESULT) == 10


@pytest.mark.pools("solo")
def test_remote_shutdown_is_a_warm_stop(bench_app, make_worker, pool):
    """The warm step ``Worker.stop`` uses on Windows (no SIGTERM there), checked on a real worker."""
    queue = f"warm-{uuid.uuid4().hex[:8]}"
    w = make_worker(pool=pool, queues=[queue])
    res = sleep_for.apply_async((1.0,), queue=queue)
    wait_for(lambda: res.state == states.STARTED, timeout=RESULT, what="the task to start")
    assert w.shutdown_remotely(timeout=defaults.WARM_STOP_TIMEOUT)
    assert w.returncode() == 0
    assert res.state == states.SUCCESS  # warm: the running task was finished, not abandoned
