"""Which worker pools exist on a platform, and why not when they do not."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench import defaults


@dataclass(frozen=True)
class PoolSupport:
    name: str
    available: bool
    reason: str = ""


_WINDOWS_PREFORK = (
    "prefork is not supported on Windows: billiard's fork emulation fails at task time with "
    "'ValueError: not enough values to unpack' (Celery does not support Windows officially); "
    "use --pool solo or --pool threads, or see FORKED_BY_MULTIPROCESSING in the README"
)


_GREEN_MISSING = (
    "the {name} pool needs the {name} package, which is not installed: pip install -e '.[green]' "
    "(or drop --pool {name})"
)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it: importing gevent or eventlet in
    the harness's process would be a start towards monkey-patching it (only their workers patch)."""
    return importlib.util.find_spec(module) is not None


def support(
    name: str, platform: str | None = None, *, has_module: Callable[[str], bool] = installed
) -> PoolSupport:
    """Whether pool ``name`` can run on ``platform`` (default: this one); ``has_module`` says whether a
    green pool's package is installed (default: looked up, never imported)."""
    platform = platform or sys.platform
    if name not in defaults.POOLS_ALL:
        known = ", ".join(defaults.POOLS_ALL)
        raise ValueError(f"unknown pool {name!r}: choose one of {known}")
    if name == "prefork" and platform.startswith("win"):
        return PoolSupport(name, False, _WINDOWS_PREFORK)
    if name in defaults.GREEN_POOLS and not has_module(name):
        return PoolSupport(name, False, _GREEN_MISSING.format(name=name))
    return PoolSupport(name, True)


def default_concurrency(name: str) -> int:
    """The concurrency a worker of pool ``name`` gets when none is given."""
    if name == "solo":
        return 1
    return defaults.GREEN_CONCURRENCY if name in defaults.GREEN_POOLS else defaults.WORKER_CONCURRENCY


def available(platform: str | None = None, *, has_module: Callable[[str], bool] = installed) -> list[str]:
    """The pools this platform supports (and whose packages are installed), in the harness's order."""
    return [p for p in defaults.POOLS_ALL if support(p, platform, has_module=has_module).available]


def select(
    requested: list[str] | None,
    platform: str | None = None,
    *,
    has_module: Callable[[str], bool] = installed,
) -> list[str]:
    """Validate a user's ``--pool`` choices; none means every available pool.

    Raises ``ValueError`` with a one-line message for an unknown or unsupported pool.
    """
    if not requested:
        return available(platform, has_module=has_module)
    chosen: list[str] = []
    for name in requested:
        info = support(name, platform, has_module=has_module)
        if not info.available:
            raise ValueError(f"pool {name!r} is unavailable here: {info.reason}")
        if name not in chosen:
            chosen.append(name)
    return chosen


SYNLOOP_PACED = (
    "celery#10500 (5.7, heartbeat on the event dispatcher's connection, for celery#7250): a gevent or "
    "eventlet worker's synloop waits 0.1 s on that idle connection after every delivery"
)
"""Why a green worker on RabbitMQ with broker heartbeats takes about 10 deliveries a second."""


def synloop_paced(broker: str, pool: str, settings: Mapping[str, Any]) -> bool:
    """Whether a ``pool`` worker on ``broker`` with the Celery ``settings`` takes one delivery per
    ``defaults.SYNLOOP_DRAIN_PACE`` (see :data:`SYNLOOP_PACED`): gevent or eventlet on RabbitMQ, unless
    ``broker_heartbeat=0`` (no heartbeat, no drain of the event connection per delivery)."""
    return broker == "rabbitmq" and pool in defaults.GREEN_POOLS and settings.get("broker_heartbeat") != 0
