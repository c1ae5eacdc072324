"""The tier talks to the Redis containers it started, and refuses any address that does not lead there.

The broker and backend containers are two Redis servers the tier started, so each serves as "another
Redis" for the other: no test here connects to anything the tier did not start.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from pytest_celery import CeleryBackendCluster, CeleryBrokerCluster

from tests.container import reachable

pytestmark = pytest.mark.container

UNROUTABLE = "192.0.2.1"
"""TEST-NET-1 (RFC 5737): never routed, so a connection there fails (by timeout or refusal)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Disguised:
    """A real container whose ``docker inspect`` addresses are replaced (to steer ``resolve``)."""

    real: Any
    attrs: dict[str, Any]

    @property
    def name(self) -> str:
        return self.real.name

    def exec_run(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.exec_run(*args, **kwargs)


def published_at(*addresses: tuple[str, int]) -> dict[str, Any]:
    """``docker inspect`` attributes of a container reachable only through these published addresses."""
    bindings = [{"HostIp": host, "HostPort": str(port)} for host, port in addresses]
    return {"NetworkSettings": {"Ports": {reachable.REDIS_PORT: bindings}, "Networks": {}}}


def test_the_clients_urls_lead_into_the_containers(
    celery_setup_app, celery_broker_cluster: CeleryBrokerCluster, celery_backend_cluster: CeleryBackendCluster
):
    """A marker written inside each container (docker exec) is what the client's URL reads back."""
    for url, cluster in (
        (celery_setup_app.conf.broker_url, celery_broker_cluster),
        (celery_setup_app.conf.result_backend, celery_backend_cluster),
    ):
        marker = uuid.uuid4().hex
        code, out = cluster[0].container.exec_run(["redis-cli", "SET", "bench:reachable", marker])
        assert code == 0, out
        client = redis.Redis.from_url(url, socket_timeout=reachable.CONNECT_TIMEOUT)
        try:
            assert client.get("bench:reachable") == marker.encode(), url
        finally:
            client.close()


def test_a_url_that_reaches_another_redis_is_refused(
    celery_broker_cluster: CeleryBrokerCluster, celery_backend_cluster: CeleryBackendCluster
):
    broker, backend = celery_broker_cluster[0].container, celery_backend_cluster[0].container
    reachable.check_url(broker.host_url, broker)  # the right one passes...
    with pytest.raises(reachable.Unreachable, match=r"reaches another Redis .* not container"):
        reachable.check_url(backend.host_url, broker)  # ...the other container's does not


def test_a_url_where_nothing_answers_is_refused(celery_broker_cluster: CeleryBrokerCluster):
    with pytest.raises(reachable.Unreachable, match="does not answer"):
        reachable.check_url(f"redis://127.0.0.1:{free_port()}/0", celery_broker_cluster[0].container)


def test_resolve_takes_the_first_address_that_is_the_container(
    celery_broker_cluster: CeleryBrokerCluster, celery_backend_cluster: CeleryBackendCluster
):
    broker, backend = celery_broker_cluster[0].container, celery_backend_cluster[0].container
    right, other = broker.reachable, backend.reachable
    dead = free_port()
    disguised = Disguised(
        broker, published_at(("127.0.0.1", dead), (other.host, other.port), (right.host, right.port))
    )
    assert (reachable.resolve(disguised).host, reachable.resolve(disguised).port) == (right.host, right.port)


def test_resolve_fails_in_one_line_naming_every_address_tried(
    celery_broker_cluster: CeleryBrokerCluster, celery_backend_cluster: CeleryBackendCluster
):
    broker, other = celery_broker_cluster[0].container, celery_backend_cluster[0].container.reachable
    dead = free_port()
    disguised = Disguised(broker, published_at(("127.0.0.1", dead), (other.host, other.port)))
    with pytest.raises(reachable.Unreachable) as raised:
        reachable.resolve(disguised)
    message = str(raised.value)
    assert "\n" not in message
    assert f"127.0.0.1:{dead}" in message and f"{other.host}:{other.port}" in message
    assert "another Redis" in message


def test_candidates_cover_published_container_and_gateway_routes(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    attrs = {
        "NetworkSettings": {
            "Ports": {
                reachable.REDIS_PORT: [{"HostIp": reachable.WILDCARD_HOST_IPS[1], "HostPort": "32768"}]
            },
            "Networks": {"net": {"IPAddress": "172.18.0.2", "Gateway": "172.18.0.1"}},
        }
    }
    got = [(a.host, a.port) for a in reachable.candidates(attrs)]
    assert got == [("127.0.0.1", 32768), ("172.18.0.1", 32768), ("172.18.0.2", 6379)]
    monkeypatch.setenv("DOCKER_HOST", "tcp://docker.example:2376")
    assert reachable.candidates(attrs)[0].host == "docker.example"
