"""Worker-side stage stamps for ``e2e_stages.py``: imported by the worker (``--include stage_stamps``).

Each open-loop task (id containing ``-e2e-``) gets ``time.time()`` at Celery's ``task_received`` (the
consumer has the message), ``task_prerun`` and ``task_postrun``, in the Redis hashes ``stages:<kind>`` of
the worker's result backend. One HSET per stage: ~0.1 ms each, on every task alike.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import signals

_conn: redis.Redis | None = None


def _stamp(kind: str, task_id: str | None) -> None:
    global _conn
    if not task_id or "-e2e-" not in task_id:
        return
    if _conn is None:
        _conn = redis.Redis.from_url(os.environ["CELERY_RESULT_BACKEND"])
    _conn.hset(f"stages:{kind}", task_id, repr(time.time()))


@signals.task_received.connect
def _received(request: Any = None, **_: Any) -> None:
    _stamp("recv", getattr(request, "id", None))


@signals.task_prerun.connect
def _prerun(task_id: str | None = None, **_: Any) -> None:
    _stamp("prerun", task_id)


@signals.task_postrun.connect
def _postrun(task_id: str | None = None, **_: Any) -> None:
    _stamp("postrun", task_id)
