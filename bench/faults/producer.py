"""The scenarios' producer side: tasks by name, the client app, worker settings, publishing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from bench import client as bench_client
from bench import defaults
from bench.config import Config

# -- tasks (by name) ----------------------------------------------------------------------------------
TASK_MARK = "bench.probes.mark"  # the ledger probes (bench/probes.py), in every harness worker
TASK_MARK_RESULT = "bench.probes.mark_with_result"
TASK_WORK = "bench.probes.work"
TASK_WORK_LATE = "bench.probes.work_late"


# -- the client side ------------------------------------------------------------------------------------
def client_app(
    broker_url: str,
    *,
    backend_url: str | None = None,
    visibility_timeout: float | None = None,
    config: Config | None = None,
) -> Celery:
    """A producer app for ``broker_url`` (JSON only, or ``config``'s producer settings), with the
    workers' ``visibility_timeout``; its result backend is ``backend_url`` (a Redis), by default the
    broker itself."""
    settings: dict[str, Any] = {} if config is None else dict(config.producer_settings)
    if visibility_timeout is not None:
        settings["broker_transport_options"] = transport_options(settings, visibility_timeout)
        settings["result_backend_transport_options"] = {"visibility_timeout": visibility_timeout}
    app = bench_client.client_app(broker_url, name="bench-reliability", **settings)
    if backend_url is not None and backend_url != broker_url:
        app.conf.result_backend = app.backend_cls = backend_url  # pinned, as bench.client pins the broker's
    return app


def transport_options(settings: Mapping[str, Any], visibility_timeout: float) -> dict[str, Any]:
    """``settings``' own ``broker_transport_options`` with the scenario's ``visibility_timeout``."""
    return dict(settings.get("broker_transport_options") or {}) | {"visibility_timeout": visibility_timeout}


def configured_worker(config: Config, visibility_timeout: float | None) -> dict[str, Any]:
    """:class:`bench.worker.Worker` keyword arguments for ``config`` (its app, its settings on the
    command line), with ``visibility_timeout`` merged into the app's own transport options."""
    kwargs = config.worker_kwargs()
    if visibility_timeout is not None:
        merged = dict(config.producer_settings) | dict(config.settings)
        kwargs["settings"] = dict(kwargs["settings"]) | {
            "broker_transport_options": transport_options(merged, visibility_timeout)
        }
    return kwargs


def worker_env(
    *,
    acks_late: bool = False,
    reject_on_worker_lost: bool = False,
    visibility_timeout: float | None = None,
    prefetch_multiplier: int = defaults.PREFETCH_MULTIPLIER,
) -> dict[str, str]:
    """The ``tasks/celery_config.py`` overrides of a scenario's worker."""
    env = {
        "TASKS_ACKS_LATE": "1" if acks_late else "0",
        "TASKS_REJECT_ON_WORKER_LOST": "1" if reject_on_worker_lost else "0",
        "TASKS_PREFETCH_MULTIPLIER": str(prefetch_multiplier),
    }
    if visibility_timeout is not None:
        env["TASKS_VISIBILITY_TIMEOUT"] = str(visibility_timeout)
    return env


@dataclass(frozen=True)
class Published:
    """What a producer sent: ids whose publish returned, ids whose publish raised, and its time."""

    ids: tuple[str, ...]
    failed: tuple[str, ...]
    seconds: float
    errors: tuple[str, ...] = ()


def enqueue(
    app: Celery,
    task: str,
    args: Sequence[Any],
    *,
    queue: str,
    count: int,
    retry: bool | None = None,
    countdown: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Published:
    """Publish ``count`` tasks at the producer's full speed, one connection, ids chosen up front."""
    ids = [uuid.uuid4().hex for _ in range(count)]
    sent: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    started = clock()
    with app.producer_or_acquire() as producer:
        for task_id in ids:
            try:
                app.send_task(
                    task, tuple(args), task_id=task_id, queue=queue, producer=producer,
                    retry=retry, countdown=countdown, ignore_result=task == TASK_MARK,
                )  # fmt: skip
            except OperationalError as exc:
                failed.append(task_id)
                errors.append(str(exc))
                continue
            sent.append(task_id)
    return Published(tuple(sent), tuple(failed), clock() - started, tuple(errors[:3]))
