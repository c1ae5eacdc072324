"""Which address of a Redis container this test process can reach, proven by the server's ``run_id``.

pytest-docker-tools answers "where is the container?" with the container's own network address and its
internal port when the tests run inside a container (``/.dockerenv``), and with the published host port
otherwise; pytest-celery's Redis client then writes ``localhost:<that port>``, so in a container the
client URL becomes ``redis://localhost:6379/0`` - whatever Redis that machine runs, not the container.

Here every address that can lead to the container is tried (the published port on the engine's host;
the published port through each network's gateway, which is how a container using the host's engine
gets there; the container's own address on each of its networks, last because from another network
it is usually dropped, not refused, and costs the whole connect timeout), and the first one whose
server reports the same ``run_id`` as ``redis-cli INFO server`` run inside the container
(``docker exec``) wins. A Redis that merely answers at an address is never taken for the
container's: the tier only ever talks to a broker it started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT = 2.0
"""Seconds one candidate address has to accept a connection and answer INFO before the next is tried
(a route that leads nowhere must not stall the tier; a live Redis on a reachable address answers in ms)."""

REDIS_PORT = "6379/tcp"
"""The container port Redis listens on (pytest-celery's ``REDIS_PORTS`` publishes it on a free host port)."""

WILDCARD_HOST_IPS = ("", "0.0.0.0", "::")  # noqa: S104 - names the wildcard, binds nothing
"""A published port bound to these listens on every address of the engine's host."""


class Unreachable(Exception):
    """No address tried leads to the container's own server (the message is one line)."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    route: str
    """How this address leads to the container (for the error message)."""

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.route})"


def engine_host(docker_host: str | None = None) -> str:
    """The host whose ports the engine publishes on: DOCKER_HOST's for a remote engine, else loopback."""
    docker_host = os.environ.get("DOCKER_HOST", "") if docker_host is None else docker_host
    parsed = urlsplit(docker_host)
    if parsed.scheme in ("tcp", "http", "https", "ssh") and parsed.hostname:
        return parsed.hostname
    return "127.0.0.1"


def candidates(attrs: dict[str, Any], port: str = REDIS_PORT) -> list[Address]:
    """Every address that may lead to ``port`` of the container described by ``attrs`` (docker inspect)."""
    settings = attrs["NetworkSettings"]
    internal = int(port.split("/")[0])
    bindings = settings["Ports"].get(port) or []
    networks: dict[str, dict[str, Any]] = settings["Networks"]
    found: list[Address] = []
    for binding in bindings:
        host_ip = binding.get("HostIp", "")
        host = engine_host() if host_ip in WILDCARD_HOST_IPS else host_ip
        found.append(Address(host, int(binding["HostPort"]), "published port on the engine's host"))
    for name, network in networks.items():
        if network.get("Gateway"):
            for binding in bindings:
                route = f"published port through the gateway of {name}"
                found.append(Address(network["Gateway"], int(binding["HostPort"]), route))
    for name, network in networks.items():
        if network.get("IPAddress"):
            found.append(Address(network["IPAddress"], internal, f"container address on network {name}"))
    unique: dict[tuple[str, int], Address] = {}
    for address in found:
        unique.setdefault((address.host, address.port), address)
    return list(unique.values())


def run_id_inside(container: Any) -> str:
    """The ``run_id`` of the Redis server in ``container``, asked from inside it (``docker exec``)."""
    code, output = container.exec_run(["redis-cli", "INFO", "server"])
    text = output.decode(errors="replace")
    if code != 0:
        raise Unreachable(f"`redis-cli INFO server` in {container.name} exited {code}: {text.strip()[:200]}")
    return parse_run_id(text, where=f"`redis-cli INFO server` in {container.name}")


def parse_run_id(info: str, *, where: str) -> str:
    for line in info.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "run_id" and value:
            return value
    raise Unreachable(f"{where} reported no run_id")


def run_id_at(client: redis.Redis) -> str:
    """The ``run_id`` of the server ``client`` reaches (one connection, bounded by its timeouts)."""
    try:
        return str(client.info("server")["run_id"])
    finally:
        client.close()


def one_try() -> dict[str, Any]:
    """Client options for one bounded attempt: redis-py retries a failed connect 3 times by default
    (with backoff), which turns each address that leads nowhere into some 13 s instead of 2."""
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": CONNECT_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }


def run_id_at_url(url: str) -> str:
    return run_id_at(redis.Redis.from_url(url, **one_try()))


def run_id_at_address(address: Address) -> str:
    return run_id_at(redis.Redis(host=address.host, port=address.port, **one_try()))


def resolve(container: Any, port: str = REDIS_PORT) -> Address:
    """The first candidate address whose server is the container's own; Unreachable if there is none."""
    expected = run_id_inside(container)
    tried = []
    for address in candidates(container.attrs, port):
        try:
            seen = run_id_at_address(address)
        except (redis.RedisError, OSError) as exc:
            tried.append(f"{address}: {first_line(exc)}")
            continue
        if seen == expected:
            return address
        tried.append(f"{address}: another Redis (run_id {seen[:8]}, the container's is {expected[:8]})")
    raise Unreachable(
        f"no address of container {container.name} reaches its own Redis from this process; tried "
        + ("; ".join(tried) or "nothing (the container has no network address and no published port)")
    )


def check_url(url: str, container: Any) -> None:
    """Unreachable unless ``url`` reaches the Redis server running in ``container`` (same ``run_id``)."""
    expected = run_id_inside(container)
    try:
        seen = run_id_at_url(url)
    except (redis.RedisError, OSError) as exc:
        raise Unreachable(f"{url} does not answer: {first_line(exc)}") from None
    if seen != expected:
        raise Unreachable(
            f"{url} reaches another Redis (run_id {seen[:8]}), not container {container.name}'s "
            f"(run_id {expected[:8]})"
        )


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
