"""The harness's own Celery client apps: producers and remote control, bound to one broker URL.

Celery prefers ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` from the environment over any app's
configured URLs (``celery/app/utils.py``); an app the harness builds for a broker must talk to that
broker whatever the environment says, so every one of them is built here and pinned to its URL.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

JSON_ONLY: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
}
"""The serializer settings of ``tasks/celery_config.py`` (the harness never imports it)."""


def client_app(
    broker_url: str,
    *,
    name: str = "bench-client",
    backend: bool = True,
    backend_url: str | None = None,
    **settings: Any,
) -> Celery:
    """A Celery app for ``broker_url`` (and, with ``backend``, the Redis result backend at ``backend_url``,
    by default on the broker itself: a RabbitMQ broker needs a Redis of its own for results).

    ``settings`` are further configuration (queue, timeouts, transport options, the configuration
    under test's producer settings; they win over the JSON defaults). The broker's read and
    write URLs and the backend class are set explicitly: they come before the environment variables.
    """
    results = backend_url or broker_url
    app = Celery(name, broker=broker_url, backend=results if backend else None, set_as_current=False)
    app.conf.update({**JSON_ONLY, "broker_connection_retry_on_startup": True, **settings})
    app.conf.broker_read_url = app.conf.broker_write_url = broker_url
    if backend:
        app.backend_cls = results
    return app
