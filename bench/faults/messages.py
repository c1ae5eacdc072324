"""Raw task messages built by hand, as kombu's Redis transport stores them (the security scenarios
push them past Celery's producer)."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.broker import Broker


def protocol2_message(
    task: str,
    task_id: str,
    args: Sequence[Any],
    *,
    queue: str,
    body: bytes,
    content_type: str,
    content_encoding: str,
) -> bytes:
    """A kombu Redis-transport envelope of a Celery protocol-2 task message, with ``body`` as given."""
    headers = {
        "lang": "py", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
        "group": None, "shadow": None, "eta": None, "expires": None, "retries": 0,
        "timelimit": [None, None], "argsrepr": repr(tuple(args)), "kwargsrepr": "{}",
        "origin": "bench.faults", "ignore_result": False,
    }  # fmt: skip
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid.uuid4().hex,
        },
    }
    return json.dumps(envelope).encode()


def json_task_message(task: str, task_id: str, args: Sequence[Any], *, queue: str) -> bytes:
    """A JSON task message built by hand (the control for :func:`pickle_task_message`)."""
    body = json.dumps([list(args), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return protocol2_message(
        task, task_id, args, queue=queue, body=body.encode(),
        content_type="application/json", content_encoding="utf-8",
    )  # fmt: skip


class _Touch:
    """Unpickling this creates ``path``: proof of whether a worker deserialised the message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def pickle_task_message(
    task: str, task_id: str, args: Sequence[Any], *, queue: str, canary: Path | None = None
) -> bytes:
    """A pickled task message (``application/x-python-serialize``), as a JSON-only worker must refuse.

    With ``canary``, the pickle also carries an object whose unpickling creates that file.
    """
    embed: dict[str, Any] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    kwargs: dict[str, Any] = {"canary": _Touch(canary)} if canary is not None else {}
    body = pickle.dumps((tuple(args), kwargs, embed), protocol=2)
    return protocol2_message(
        task, task_id, args, queue=queue, body=body,
        content_type="application/x-python-serialize", content_encoding="binary",
    )  # fmt: skip


def push_raw(broker: Broker, queue: str, message: bytes) -> None:
    """LPUSH a raw message into ``queue`` as the Redis transport does, bypassing Celery's producer."""
    client = broker.client()
    try:
        client.lpush(queue, message)
    finally:
        client.close()
