"""Side effects the tests can count: a Redis client for tasks, keyed by process.

Tasks record their executions in Redis (the result backend's server) under keys the test chooses, so
a test can tell how many times and when a task ran, independently of the result it returned.
"""

import os
import threading

import redis

_clients: dict[tuple[int, int], redis.Redis] = {}
_lock = threading.Lock()


def client() -> redis.Redis:
    """A Redis client to the result backend's server, one per process and thread (fork-safe)."""
    from tasks import app

    key = (os.getpid(), threading.get_ident())
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = redis.Redis.from_url(app.conf.result_backend)
            _clients[key] = found
        return found


def record(key: str, value: object = 1) -> int:
    """Append ``value`` to the list ``key``; returns the list's new length (the execution count)."""
    return int(client().rpush(key, str(value)))
