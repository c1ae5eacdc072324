"""The project's compose stack, driven through the ``docker compose`` CLI for the compose smoke test.

Each ``Stack`` is its own compose project and image tag (``BENCH_IMAGE_TAG``), so it never touches a stack
someone else brought up from this file and runs side by side with another checkout's.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

PROFILES = ("rabbitmq", "bench", "fleet")
"""Every profile of the compose file: teardown names them all, or their services could outlive ``down``."""

RABBITMQ_PROFILE = "rabbitmq"
"""The profile of the RabbitMQ broker and its workers."""

BUILD_TIMEOUT = 900.0
"""Seconds ``docker compose build`` may take: a cold build installs the project from PyPI (about 30 s
here; minutes behind a slow mirror). Later builds reuse the layer cache."""

UP_TIMEOUT = 240.0
"""Seconds ``up --wait`` may take: Redis healthy, then every worker's healthcheck (start period 30 s,
then up to 5 tries 10 s apart, so about 80 s before compose itself gives up on a worker)."""

CLIENT_TIMEOUT = 60
"""Seconds the seed's client waits for ``add.delay(2, 8).get()`` in its container."""

DOWN_TIMEOUT = 120.0
"""Seconds ``down`` may take: each worker has a 20 s warm-shutdown grace period (stopped in parallel)."""

QUERY_TIMEOUT = 60.0
"""Seconds one ``docker`` query (ps, inspect, ls, version) may take on a busy engine."""

PULL_TIMEOUT = 300.0
"""Seconds ``docker pull`` of a broker image may take (a registry that does not answer fails sooner)."""


def services() -> dict[str, Any]:
    """The compose file's services, as written (the smoke's expectations follow the file)."""
    loaded: dict[str, Any] = YAML(typ="safe").load(COMPOSE_FILE.read_text())
    return loaded["services"]


def is_worker(service: dict[str, Any]) -> bool:
    return list(service.get("command", []))[:4] == ["celery", "-A", "tasks", "worker"]


def node_of(service: dict[str, Any]) -> str:
    """The worker's node name (its ``--hostname=``)."""
    return next(arg.split("=", 1)[1] for arg in service["command"] if arg.startswith("--hostname="))


def stack(profile: str | None = None) -> tuple[str, ...]:
    """What the smoke brings up: with no profile, every service without one (Redis and the standing worker
    of every pool, not the main job); with one, that profile's services and what they depend on."""
    found = services()
    chosen = {name for name, svc in found.items() if (profile in svc.get("profiles", [None]))}
    chosen |= {dep for name in chosen for dep in found[name].get("depends_on", {})}
    return tuple(name for name in found if name in chosen)


def image_error(image: str) -> str | None:
    """None if ``image`` is on this engine or can be pulled, else why not (one line)."""
    if docker("image", "inspect", image, timeout=QUERY_TIMEOUT).returncode == 0:
        return None
    try:
        pulled = docker("pull", "--quiet", image, timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return (
            f"no image {image} on this engine, and `docker pull` did not finish within {PULL_TIMEOUT:.0f} s"
        )
    if pulled.returncode != 0:
        first = (pulled.stderr.strip().splitlines() or [f"exit {pulled.returncode}"])[0]
        return f"no image {image} on this engine, and `docker pull` failed: {first}"
    return None


def docker(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def compose_error() -> str | None:
    """None if ``docker compose`` (v2) runs here, else why not (one line)."""
    try:
        result = docker("compose", "version", "--short", timeout=QUERY_TIMEOUT)
    except FileNotFoundError:
        return "no `docker` CLI on PATH"
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[0]
        return f"`docker compose` (Compose v2) is not available: {first}"
    return None


@dataclass
class Stack:
    """One compose project from this file, with its own image tag; ``down`` removes all of it."""

    project: str = field(default_factory=lambda: f"celery-bench-smoke-{uuid.uuid4().hex[:8]}")

    @property
    def image(self) -> str:
        return f"celery-bench:{self.project}"

    def compose(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BENCH_IMAGE_TAG": self.project}
        profiles = [arg for p in PROFILES for arg in ("--profile", p)]
        base = ["compose", "--project-name", self.project, "--file", str(COMPOSE_FILE), *profiles]
        return docker(*base, *args, timeout=timeout, env=env)

    def must(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        result = self.compose(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"docker compose {' '.join(args)}: exit {result.returncode}\n"
            + (result.stdout + result.stderr)[-3000:]
        )
        return result

    def labelled(self, kind: str) -> list[str]:
        """Names of the ``kind`` objects (container, volume, network) labelled with this project."""
        verb = ["ps", "--all"] if kind == "container" else [kind, "ls"]
        label = f"label=com.docker.compose.project={self.project}"
        name = "{{.Names}}" if kind == "container" else "{{.Name}}"
        result = docker(*verb, "--filter", label, "--format", name, timeout=QUERY_TIMEOUT)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    def mounted_volumes(self) -> list[str]:
        """Volumes (named or anonymous) mounted by this project's containers."""
        names = self.labelled("container")
        if not names:
            return []
        result = docker("inspect", "--format", "{{json .Mounts}}", *names, timeout=QUERY_TIMEOUT)
        assert result.returncode == 0, result.stderr
        mounts = [mount for line in result.stdout.splitlines() for mount in json.loads(line)]
        return [mount["Name"] for mount in mounts if mount["Type"] == "volume"]

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=DOWN_TIMEOUT)

    def remove_image(self) -> None:
        docker("image", "rm", self.image, timeout=QUERY_TIMEOUT)  # the tag only; layers stay cached
