"""The periodic task in ``beat_schedule`` runs, on a ``celery beat`` the harness starts."""

from __future__ import annotations

import pytest

from bench import defaults
from bench.procs import wait_for
from tasks import ledger

pytestmark = pytest.mark.integration


def test_periodic_task_runs_at_least_twice(app, worker, make_beat, unique_key):
    key = unique_key("beat")
    client = ledger.client()
    make_beat(env={"TASKS_BEAT_INTERVAL": str(defaults.BEAT_INTERVAL), "TASKS_BEAT_KEY": key})
    wait_for(lambda: client.llen(key) >= 2, timeout=defaults.RESULT_TIMEOUT, what=f"two heartbeats in {key}")
    runs = [entry.decode().split("|") for entry in client.lrange(key, 0, -1)]
    times = [float(t) for t, _ in runs]
    assert times == sorted(times)
    assert {node for _, node in runs} == {worker.node}
