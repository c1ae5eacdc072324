"""``config_from_object``: the settings of ``tasks/celery_config.py`` are the ones the worker runs with."""

from __future__ import annotations

import pytest

import tasks.celery_config as config
from bench import defaults
from bench.broker import redact
from tasks.behaviour import config_value

pytestmark = pytest.mark.integration
RESULT = defaults.RESULT_TIMEOUT


def test_worker_runs_with_the_config_module(app, worker):
    replies = app.control.inspect(destination=[worker.node], timeout=2).conf()
    assert replies and worker.node in replies, f"no conf reply from {worker.node}: {replies}"
    conf = replies[worker.node]
    assert conf["task_routes"] == config.task_routes
    assert conf["broker_connection_retry_on_startup"] is config.broker_connection_retry_on_startup is True
    assert conf["task_track_started"] is True
    assert tuple(conf["imports"]) == config.imports
    assert conf["tasks_config_source"] == "tasks.celery_config"


def test_task_sees_the_config_module(app):
    assert config_value.delay("tasks_config_source").get(timeout=RESULT) == "tasks.celery_config"
    assert config_value.delay("accept_content").get(timeout=RESULT) == ["json"]


def test_environment_overrides_the_seed_urls(app, bench_broker, bench_backend):
    # The contract: CELERY_BROKER_URL / CELERY_RESULT_BACKEND (set by the harness) beat the seed's
    # redis://127.0.0.1:6379 -- the worker reports the session's private broker and result backend.
    for setting, expected in (("broker_url", bench_broker), ("result_backend", bench_backend)):
        seen = config_value.delay(setting).get(timeout=RESULT)
        same = seen == expected.url  # compared outside the assert so a failure never prints the password
        assert same, f"the worker's {setting} is {redact(seen)}, not the session's {expected.redacted}"
