"""kombu's Redis transport internals the scenarios read: key names and separators from kombu's own
constants, and the parsing of its ``unacked`` hash and queue envelopes."""

from __future__ import annotations

import json
from collections.abc import Mapping

from kombu.transport.redis import Channel as RedisChannel

UNACKED_KEY: str = RedisChannel.unacked_key
"""kombu's hash of delivered, unacknowledged messages (delivery tag -> ``[envelope, exchange, key]``)."""
UNACKED_INDEX_KEY: str = RedisChannel.unacked_index_key
"""kombu's sorted set of the same delivery tags, scored by delivery time."""
REDIS_PRIORITY_SEP: str = RedisChannel.sep
"""kombu's Redis separator (of priority queue names, and of a binding's routing key/pattern/queue)."""
REDIS_PRIORITY_STEPS: tuple[int, ...] = tuple(RedisChannel.priority_steps)
"""kombu's Redis transport keeps priority ``p`` of queue ``q`` in key ``q + SEP + p`` (``p`` > 0)."""


def envelope_id(raw: bytes | str) -> str | None:
    """The task id of a kombu Redis envelope (None if it is not a task message)."""
    try:
        task_id = json.loads(raw)["headers"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return task_id if isinstance(task_id, str) else None


def unacked_ids(unacked: Mapping[bytes, bytes], queue: str) -> dict[str, str]:
    """Delivery tag -> task id of ``queue``'s messages in a read of kombu's ``unacked`` hash
    (each value is ``[envelope, exchange, routing_key]``; anything else is skipped)."""
    held: dict[str, str] = {}
    for tag, raw in unacked.items():
        try:
            message, _exchange, routing_key = json.loads(raw)
            task_id = message["headers"]["id"] if routing_key == queue else None
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(task_id, str):
            held[tag.decode()] = task_id
    return held
