"""A private RabbitMQ node (``bench/brokers/rabbitmq.py``) under a real ``celery worker``.

One node for the module: the seed's ``add`` runs over AMQP (result backend: the session's private Redis),
the AMQP floor pushes, and a restart keeps a durable queue's persistent message. A second node is started
and stopped to check that nothing of it is left. Skipped, with the install hint as the reason, when
``rabbitmq-server`` is not on PATH. The machine's shared RabbitMQ is never touched: the test checks it
still answers after the private nodes came and went.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import kombu
import psutil
import pytest

from bench import brokers, defaults
from bench.broker import Broker
from bench.brokers.rabbitmq import RabbitMQ, get_one, private_rabbitmq
from bench.client import client_app
from bench.procs import harness_processes, live_processes, reap_run, wait_for
from bench.worker import PROJECT_ROOT, Worker

RABBITMQ = brokers.support("rabbitmq")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not RABBITMQ.available, reason=RABBITMQ.reason),
]
RESULT = defaults.RESULT_TIMEOUT
NESTED_TIMEOUT = 180.0
"""Seconds a nested harness has to start its private node, and then to exit after a signal."""

_NESTED = """
import sys
from bench.brokers.rabbitmq import private_rabbitmq
from bench.procs import raise_on_sigterm
raise_on_sigterm()
node = private_rabbitmq().start()
print(node.tmpdir, flush=True)
sys.stdin.read()  # until the test signals this process
"""


@pytest.fixture(scope="module")
def rabbit(bench_run_id: str) -> Iterator[RabbitMQ]:
    with private_rabbitmq() as node:
        yield node


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=defaults.AMQP_CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def test_node_is_private(rabbit: RabbitMQ):
    assert rabbit.node.startswith("bench-") and not rabbit.node.startswith("rabbit@")
    assert rabbit.user != "guest" and rabbit.password not in rabbit.redacted
    assert len({rabbit.port, rabbit.dist_port, rabbit.epmd_port}) == 3 and 5672 not in {rabbit.port}
    assert rabbit.start_seconds and rabbit.start_seconds[0] > 0
    # The generated user logs in; guest does not exist on the private node.
    with kombu.Connection(rabbit.url) as conn:
        conn.ensure_connection(max_retries=1)
    guest = rabbit.url.replace(f"{rabbit.user}:{rabbit.password}@", "guest:guest@")
    with pytest.raises(Exception, match="ACCESS_REFUSED|403|Login was refused"):
        with kombu.Connection(guest, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)


def test_seed_add_over_amqp(rabbit: RabbitMQ, bench_backend: Broker):
    app = client_app(rabbit.url, backend_url=bench_backend.url)
    try:
        with Worker(rabbit.url, pool="solo", backend_url=bench_backend.url) as worker:
            result = app.signature("tasks.add").delay(2, 8)
            assert result.get(timeout=RESULT) == 10
            where = app.signature("tasks.behaviour.where").delay().get(timeout=RESULT)
            assert where == worker.node  # the AMQP worker ran it (no Redis-broker worker is involved)
    finally:
        app.close()


def test_floor_push_publishes_raw_messages(rabbit: RabbitMQ):
    queue = f"celery-bench.floor.{uuid.uuid4().hex[:8]}"
    with rabbit.floor_push(queue, size=321) as push:
        for _ in range(3):
            push()
        message = get_one(rabbit.url, queue)
        assert message is not None and len(message.body) == 321
        assert message.properties["delivery_mode"] == 2
        with kombu.Connection(rabbit.url) as conn:
            _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
        assert count == 2
    # The context deleted its scratch queue.
    with kombu.Connection(rabbit.url) as conn, pytest.raises(Exception, match="NOT_FOUND|404"):
        conn.default_channel.queue_declare(queue=queue, passive=True)


def test_restart_keeps_a_durable_queues_persistent_message(rabbit: RabbitMQ):
    """RabbitMQ's documented guarantee: a persistent message in a durable queue survives a restart, a
    transient one in the same queue does not."""
    queue = f"celery-bench.durable.{uuid.uuid4().hex[:8]}"
    with kombu.Connection(rabbit.url) as conn:
        channel = conn.channel()
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        for body, mode in ((b"persistent", 2), (b"transient", 1)):
            message = channel.prepare_message(body, properties={"delivery_mode": mode})
            channel.basic_publish(message, exchange="", routing_key=queue)
        channel.close()
    node_before, port_before = rabbit.node, rabbit.port
    rabbit.restart()
    assert (rabbit.node, rabbit.port) == (node_before, port_before) and len(rabbit.start_seconds) == 2
    first = get_one(rabbit.url, queue)
    assert first is not None and first.body == b"persistent"
    assert get_one(rabbit.url, queue) is None


def test_stop_leaves_no_process_and_no_temp_dir(bench_run_id: str):
    node = private_rabbitmq().start()
    assert node.process is not None and node.epmd is not None and node.tmpdir is not None
    tree = [psutil.Process(node.process.pid), *node.process.descendants(), psutil.Process(node.epmd.pid)]
    assert any(p.name() == "beam.smp" for p in tree)
    tmpdir = node.tmpdir
    node.stop()
    assert node.stop_seconds and node.stop_seconds[0] > 0
    alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert not tmpdir.exists()
    assert not _tcp_open(node.host, node.port) and not _tcp_open(node.host, node.epmd_port)
    names = {f"rabbitmq-server:{node.port}", f"epmd:{node.epmd_port}"}
    assert not [p for p in live_processes() if p.name in names]  # the atexit reaper holds none of it
    # The shared broker on 5672 was not touched by the private nodes.
    assert _tcp_open("127.0.0.1", 5672)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_nothing_left_when_the_harness_is_interrupted_or_killed(tmp_path: Path, sig: str):
    """Ctrl-C and SIGTERM: the harness's atexit reaper stops the node and removes its directory.
    SIGKILL: nothing in the harness runs; the Erlang VM and epmd die with it (their parent-death signal:
    the server script execs the VM), and its directory is left for the next run's stale cleanup."""
    run_id = uuid.uuid4().hex
    env = dict(os.environ, TMPDIR=str(tmp_path), **{defaults.RUN_MARKER_ENV: run_id})
    proc = subprocess.Popen(
        [sys.executable, "-c", _NESTED], cwd=PROJECT_ROOT, env=env, start_new_session=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        tmpdir = Path(proc.stdout.readline().decode().strip())  # the node is up once it is printed
        assert tmpdir.is_dir(), proc.communicate(timeout=NESTED_TIMEOUT)[0].decode()[-2000:]
        running = {p.name() for p in harness_processes(run_id)}
        assert {"beam.smp", "epmd"} <= running
        os.killpg(proc.pid, getattr(signal, sig))
        proc.communicate(timeout=NESTED_TIMEOUT)
        if sig == "SIGKILL":  # nothing of the harness runs: its children die with it (PR_SET_PDEATHSIG)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not harness_processes(run_id), timeout=defaults.PARENT_DEATH_TIMEOUT,
                         what="the node to die with the harness")  # fmt: skip
        survivors = [p.name() for p in harness_processes(run_id)]
        left = tmpdir.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reaped = reap_run(run_id)
    assert survivors == [] and reaped == [], f"outlived the harness: {survivors}"
    # SIGKILL: nothing ran to remove the directory (the next run's stale cleanup does; the test's tmp_path
    # holds it); Ctrl-C and SIGTERM: the harness's atexit reaper removed it.
    assert left == (sig == "SIGKILL")
