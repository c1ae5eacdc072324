"""The compose stack for real, on each broker: the broker (and Redis, the result backend) and one worker
per pool healthy, the seed's client gets 10, every worker runs a task of its own, and
``down --volumes`` leaves no container, network or volume behind.

The stacks follow ``docker-compose.yml``: Redis is every service without a profile, RabbitMQ is the
``rabbitmq`` profile. Runs wherever a Docker engine and Compose v2 answer (``tox -e compose``, and the
README's ``python -m pytest``); skipped with the reason otherwise (``BENCH_REQUIRE_DOCKER=1`` makes that a
failure). The RabbitMQ stack is also skipped, in one line, when its image is neither on the engine nor
pullable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.container.compose import (
    BUILD_TIMEOUT,
    CLIENT_TIMEOUT,
    QUERY_TIMEOUT,
    RABBITMQ_PROFILE,
    UP_TIMEOUT,
    Stack,
    docker,
    image_error,
    is_worker,
    node_of,
    services,
    stack,
)

CLIENT_SCRIPT = """
from tasks import add, app
print("result", add.delay(2, 8).get(timeout={timeout}))
for node in {nodes!r}:
    queue = "smoke." + node
    replies = app.control.add_consumer(queue, destination=[node], reply=True, timeout={timeout})
    assert replies, f"{{node}} did not confirm add_consumer"
    print("ran", node, add.apply_async((2, 8), queue=queue).get(timeout={timeout}))
"""
"""The seed article's client (``add.delay(2, 8).get()``), then one task per worker node on a queue only
that node consumes (``add_consumer``), so every pool's worker must run one."""


@pytest.fixture
def project() -> Iterator[Stack]:
    project = Stack()
    try:
        yield project
    finally:  # failure, timeout or Ctrl-C in the test: the project goes all the same
        project.down()
        project.remove_image()


def broker_env(names: tuple[str, ...]) -> list[str]:
    """``-e`` options giving the client the env contract the stack's workers have (one broker, one
    backend)."""
    found = services()
    envs = {
        (found[name]["environment"]["CELERY_BROKER_URL"], found[name]["environment"]["CELERY_RESULT_BACKEND"])
        for name in names
        if is_worker(found[name])
    }
    assert len(envs) == 1, f"the stack's workers disagree on broker/backend: {sorted(envs)}"
    broker, backend = envs.pop()
    return ["-e", f"CELERY_BROKER_URL={broker}", "-e", f"CELERY_RESULT_BACKEND={backend}"]


@pytest.mark.parametrize("profile", [None, RABBITMQ_PROFILE], ids=["redis", "rabbitmq"])
def test_the_stack_serves_the_seed_client_on_every_worker_and_leaves_nothing(
    project: Stack, profile: str | None
):
    names = stack(profile)
    if profile == RABBITMQ_PROFILE:
        missing = image_error(services()["rabbitmq"]["image"])
        if missing and os.environ.get("BENCH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"BENCH_REQUIRE_DOCKER=1 but {missing}")
        if missing:
            pytest.skip(f"RabbitMQ stack: {missing}")
    nodes = [node_of(services()[name]) for name in names if is_worker(services()[name])]
    assert nodes, f"no worker in the stack {names}"

    project.must("build", timeout=BUILD_TIMEOUT)
    project.must("up", "--detach", "--wait", *names, timeout=UP_TIMEOUT)
    states = project.must("ps", "--format", "{{.Service}} {{.Health}}", timeout=QUERY_TIMEOUT).stdout
    assert sorted(states.splitlines()) == sorted(f"{service} healthy" for service in names), states

    # In a container of the same image, through the env contract only.
    client = CLIENT_SCRIPT.format(timeout=CLIENT_TIMEOUT, nodes=nodes)
    run_timeout = CLIENT_TIMEOUT * (2 * len(nodes) + 1) + 60
    ran = project.must(
        "run", "--rm", "--no-deps", *broker_env(names), "bench", "python", "-c", client, timeout=run_timeout
    )
    lines = ran.stdout.splitlines()
    assert "result 10" in lines, ran.stdout + ran.stderr
    missed = [node for node in nodes if f"ran {node} 10" not in lines]
    assert not missed, f"workers that did not run their task: {missed}\n" + ran.stdout + ran.stderr

    volumes = project.mounted_volumes()
    down = project.down()
    assert down.returncode == 0, down.stdout + down.stderr
    assert project.labelled("container") == []
    assert project.labelled("network") == []
    assert project.labelled("volume") == []
    listed = docker("volume", "ls", "--format", "{{.Name}}", timeout=QUERY_TIMEOUT).stdout.split()
    assert not set(volumes) & set(listed), f"volumes left behind: {sorted(set(volumes) & set(listed))}"
