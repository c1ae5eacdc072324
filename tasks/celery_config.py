"""The Celery configuration, loaded by ``app.config_from_object('tasks.celery_config')``.

As in the seed article's ``celery_config.py``, with two changes a harness needs: the broker and the
result backend can be overridden by ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` (so that
``celery -A tasks worker`` started by hand talks to the same broker as the harness), and the routed
task is one of its own, so that the seed's ``add`` keeps running on a default worker.
"""

import os
from datetime import timedelta

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379")  # 指定 Broker
result_backend = os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0")  # 指定 Backend
broker_connection_retry_on_startup = True

imports = (  # 指定导入的任务模块
    "tasks",
    "tasks.behaviour",
    "tasks.canvas",
    "tasks.load",
    "tasks.reliability",
)

# Routing (the seed's ``task_routes``): this task goes to its own queue, consumed only by a worker
# started with ``-Q add_queue``.
task_routes = {
    "tasks.routed_add": {"queue": "add_queue"},
}

# JSON only: a pickled message pushed into the queue is refused, never executed.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Report STARTED between PENDING and SUCCESS/FAILURE (the seed lists it among the states).
task_track_started = True

# Results expire after a day; the harness's private Redis is thrown away anyway.
result_expires = 24 * 3600

# The periodic task (seed: "定时任务"). The interval is short when the harness starts beat.
beat_schedule = {
    "heartbeat": {
        "task": "tasks.behaviour.heartbeat",
        "schedule": timedelta(seconds=float(os.environ.get("TASKS_BEAT_INTERVAL", "10"))),
        "args": (os.environ.get("TASKS_BEAT_KEY", "beat:heartbeat"),),
    },
}


def _flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


# Delivery guarantees, overridable per worker so the fault scenarios can compare them.
task_acks_late = _flag("TASKS_ACKS_LATE")
task_reject_on_worker_lost = _flag("TASKS_REJECT_ON_WORKER_LOST")
worker_prefetch_multiplier = int(os.environ.get("TASKS_PREFETCH_MULTIPLIER", "4"))
if os.environ.get("TASKS_VISIBILITY_TIMEOUT"):
    # Redis redelivers an unacknowledged message after this many seconds (default 1 hour).
    broker_transport_options = {"visibility_timeout": float(os.environ["TASKS_VISIBILITY_TIMEOUT"])}
    result_backend_transport_options = dict(broker_transport_options)
if os.environ.get("TASKS_UNACKED_RESTORE_INTERVAL"):
    # A running worker sweeps ``unacked`` for messages past the visibility timeout every this many seconds
    # (kombu's default: 10 s x a throttle of 10). The host-fault scenarios set 1 s.
    broker_transport_options = {
        **globals().get("broker_transport_options", {}),
        "unacked_restore_interval": float(os.environ["TASKS_UNACKED_RESTORE_INTERVAL"]),
        "unacked_restore_throttle": 1,
    }

# Simulated work time of ``add`` / ``multiply`` (the seed sleeps 2 s); off unless asked.
tasks_work_seconds = float(os.environ.get("TASKS_WORK_SECONDS", "0"))

# A marker the tests read back from a running worker to prove this module is the one in effect.
tasks_config_source = "tasks.celery_config"
