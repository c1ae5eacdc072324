"""Which reply parser redis-py uses in this process: hiredis's C parser, or its pure-Python one.

redis-py picks ``_HiredisParser`` at import when ``import hiredis`` works, else ``_RESP2Parser``; kombu's
Redis transport passes no parser of its own, so every connection of a process uses the same one. The
sweep's "no hiredis" cell (``bench.isolated``) checks it where it matters: in the producers' process and
in each worker process (``bench.probes`` records it in the ledger). Imports nothing of Celery's.
"""

from __future__ import annotations

import redis

NAMES = {"_HiredisParser": "hiredis", "_RESP2Parser": "python", "_RESP3Parser": "python (RESP3)"}
"""redis-py's reply parser classes, as the tables name them."""


def of_client(client: redis.Redis) -> str:
    """The class name of the reply parser of ``client``'s connections, e.g. ``_HiredisParser``."""
    connection = client.connection_pool.get_connection()
    try:
        return type(connection._parser).__name__
    finally:
        client.connection_pool.release(connection)


def of_url(url: str) -> str:
    """:func:`of_client` for a new client of ``url`` (connects once)."""
    client = redis.Redis.from_url(url)
    try:
        return of_client(client)
    finally:
        client.close()
