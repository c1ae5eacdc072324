"""The harness's client apps: pinned to their URL whatever the environment says (no server needed)."""

from __future__ import annotations

from kombu.transport.redis import Channel

from bench.client import client_app
from bench.loadgen import Client
from bench.worker import CONTROL_UNACKED_MUTEX_KEY, control_app

MINE = "redis://127.0.0.1:1/0"
OTHER = "redis://127.0.0.1:2/0"


def test_client_app_ignores_the_environment_urls(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", OTHER)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", OTHER)
    app = client_app(MINE)
    assert app.connection_for_write().as_uri(include_password=True) == MINE
    assert app.connection_for_read().as_uri(include_password=True) == MINE
    assert app.backend.url == MINE


def test_load_generator_client_is_pinned(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", OTHER)
    client = Client(MINE, queue="bench.test")
    assert client.app is not None
    assert client.app.connection_for_write().as_uri(include_password=True) == MINE


def test_control_apps_never_take_the_workers_restore_lock(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", OTHER)
    app = control_app(MINE)
    assert app.connection_for_read().as_uri(include_password=True) == MINE
    options = app.conf.broker_transport_options
    assert options["unacked_mutex_key"] == CONTROL_UNACKED_MUTEX_KEY != Channel.unacked_mutex_key


def test_an_amqp_client_keeps_its_results_in_the_redis_it_is_given(monkeypatch):
    monkeypatch.setenv("CELERY_RESULT_BACKEND", OTHER)
    amqp = "amqp://bench-u:pw@127.0.0.1:3//"
    client = Client(amqp, queue="bench.test", backend_url=MINE)
    assert client.app is not None
    assert client.app.connection_for_write().as_uri(include_password=True) == amqp
    assert client.app.backend.url == MINE and type(client.app.backend).__name__ == "RedisBackend"
