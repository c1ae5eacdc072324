"""The compose stack for real: Redis and one worker per pool healthy, the seed's client gets 10, and
``down --volumes`` leaves no container, network or volume behind.

Runs wherever a Docker engine and Compose v2 answer (``tox -e compose``, and the README's
``python -m pytest``); skipped with the reason otherwise (``BENCH_REQUIRE_DOCKER=1`` makes that a failure).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.container.compose import (
    BUILD_TIMEOUT,
    CLIENT_TIMEOUT,
    QUERY_TIMEOUT,
    STACK,
    UP_TIMEOUT,
    Stack,
    docker,
)


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack()
    try:
        yield stack
    finally:  # failure, timeout or Ctrl-C in the test: the project goes all the same
        stack.down()
        stack.remove_image()


def test_the_stack_serves_the_seed_client_and_leaves_nothing(stack: Stack):
    stack.must("build", timeout=BUILD_TIMEOUT)

    stack.must("up", "--detach", "--wait", *STACK, timeout=UP_TIMEOUT)
    states = stack.must("ps", "--format", "{{.Service}} {{.Health}}", timeout=QUERY_TIMEOUT).stdout
    assert sorted(states.splitlines()) == sorted(f"{service} healthy" for service in STACK), states

    # The seed article's client, in a container of the same image, through the env contract only.
    client = (
        "from tasks import add; "
        f"print('result', add.delay(2, 8).get(timeout={CLIENT_TIMEOUT}))"
    )  # fmt: skip
    ran = stack.must("run", "--rm", "--no-deps", "bench", "python", "-c", client, timeout=CLIENT_TIMEOUT + 60)
    assert "result 10" in ran.stdout.splitlines(), ran.stdout + ran.stderr

    volumes = stack.mounted_volumes()
    down = stack.down()
    assert down.returncode == 0, down.stdout + down.stderr
    assert stack.labelled("container") == []
    assert stack.labelled("network") == []
    assert stack.labelled("volume") == []
    listed = docker("volume", "ls", "--format", "{{.Name}}", timeout=QUERY_TIMEOUT).stdout.split()
    assert not set(volumes) & set(listed), f"volumes left behind: {sorted(set(volumes) & set(listed))}"
