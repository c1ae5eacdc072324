"""Raw task messages built by hand, as kombu's Redis transport stores them (the security scenarios
push them past Celery's producer, on Redis as they are, on RabbitMQ as one raw AMQP publish)."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kombu

from bench import defaults
from bench.broker import Broker
from bench.faults.kombu_amqp import AmqpQueues
from bench.faults.run import Target, as_target


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


def push_raw(broker: Broker | Target, queue: str, message: bytes) -> None:
    """Put a raw message (a kombu Redis envelope, as built here) into ``queue``, bypassing Celery's
    producer: on Redis an LPUSH as the transport does; on RabbitMQ the envelope's body, headers and
    content type in one raw ``basic_publish`` (py-amqp) to the default exchange."""
    target = as_target(broker)
    if target.kind == "rabbitmq":
        _publish_amqp(target.url, queue, json.loads(message))
        return
    client = target.broker.client()  # type: ignore[attr-defined]
    try:
        client.lpush(queue, message)
    finally:
        client.close()


def _publish_amqp(url: str, queue: str, envelope: dict[str, Any]) -> None:
    with kombu.Connection(url, connect_timeout=defaults.AMQP_CONNECT_TIMEOUT) as conn:
        channel = conn.channel()
        try:
            message = channel.prepare_message(
                base64.b64decode(envelope["body"]),
                content_type=envelope["content-type"],
                content_encoding=envelope["content-encoding"],
                headers=envelope["headers"],
                properties={"delivery_mode": 2, "correlation_id": envelope["headers"]["id"]},
            )
            channel.basic_publish(message, exchange="", routing_key=queue)
        finally:
            channel.close()


def queue_length(broker: Broker | Target, queue: str) -> int:
    """Messages waiting in ``queue`` (Redis: LLEN; RabbitMQ: the ready count of a passive declare)."""
    target = as_target(broker)
    if target.kind == "rabbitmq":
        queues = AmqpQueues(target.url)
        try:
            return queues.state(queue).ready
        finally:
            queues.close()
    client = target.broker.client()  # type: ignore[attr-defined]
    try:
        return int(client.llen(queue))
    finally:
        client.close()
