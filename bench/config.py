"""The configuration under test, as one frozen value: :class:`Config`.

A ``Config`` names the Celery app (``MODULE[:ATTR]``, default the seed's ``tasks``), the pool and its
concurrency, the settings the user set with ``--set NAME=VALUE`` (applied to workers and producers
alike), the app's own producer-side settings (read from the app once, so the harness's producers
publish as the app's own code would), and the modules every worker of the harness includes (the probe
tasks of :mod:`bench.probes`). It is built once from the command line (``bench.cli``) or the pytest
options (``bench.pytest_plugin``) and flows to every worker, producer, scenario and report row.

The app keeps its own settings except the broker and result backend URLs, which the harness points at
its own broker (``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` in the workers' environment, and the
harness's client apps are pinned to that URL).

Bad input raises :class:`ConfigError` with one line naming the input and the fix; the command line
turns it into exit status 2.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.app.defaults import NAMESPACES, Option, flatten

DEFAULT_APP = "tasks"
"""The app under test unless ``--app`` says otherwise: the seed article's app (``tasks/``)."""

PROBES_MODULE = "bench.probes"
"""The harness's probe tasks, registered with ``shared_task``; every harness worker ``--include``s it."""

CELERY_OPTIONS: dict[str, Option] = dict(flatten(NAMESPACES))
"""Every Celery setting name (lower case, as in ``celeryconfig.py``) and its declared type."""

HARNESS_OWNED = ("broker_url", "broker_read_url", "broker_write_url", "result_backend")
"""Settings the harness sets itself (its private broker): ``--set`` refuses them (use ``--broker-url``)."""

NOT_FOR_PRODUCERS = (
    "imports", "include", "task_routes", "task_queues", "task_default_queue", "task_default_exchange",
    "task_default_exchange_type", "task_default_routing_key", "task_annotations", "beat_schedule",
)  # fmt: skip
"""App settings the harness's producers do not copy: the harness routes its probes to its own queue,
and the app's task modules, schedule and annotations belong to its workers."""

NOT_FOR_PRODUCERS_PREFIXES = ("worker_", "beat_")

Settings = tuple[tuple[str, Any], ...]
"""Settings as sorted ``(name, value)`` pairs: immutable, ordered, comparable."""


class ConfigError(ValueError):
    """Bad configuration input; the message is one line naming the input and the fix."""


@dataclass(frozen=True)
class Config:
    """One configuration under test (see the module docstring). Build it with :func:`build`."""

    app: str = DEFAULT_APP
    pool: str | None = None
    concurrency: int | None = None
    settings: Settings = ()
    """``--set`` settings: passed to every worker (on its command line) and every producer app."""
    app_settings: Settings = ()
    """The app's own producer-side settings (serializer, compression, ...), read from the app."""
    include: tuple[str, ...] = (PROBES_MODULE,)
    producer_reuse: bool = False
    """The harness's producers publish through one held producer per thread (``apply_async(producer=)``)
    instead of one from the app's pool per call: a call option, not a Celery setting (``bench sweep``)."""
    hiredis: bool | None = None
    """redis-py's hiredis reply parser: ``None`` as installed; ``False``: the harness's workers and
    producers run where ``hiredis`` cannot be imported; ``True``: it must be (``bench sweep``)."""

    @property
    def worker_settings(self) -> dict[str, Any]:
        """What a worker gets on top of its app's own configuration."""
        return dict(self.settings)

    @property
    def producer_settings(self) -> dict[str, Any]:
        """What a harness producer app gets: the app's own producer settings, then ``--set``."""
        return dict(self.app_settings) | dict(self.settings)

    def on(self, pool: str | None, concurrency: int | None) -> Config:
        """This configuration on ``pool`` x ``concurrency`` (``None``: the producer side)."""
        return dataclasses.replace(self, pool=pool, concurrency=concurrency)

    def worker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`bench.worker.Worker` for this configuration."""
        kwargs: dict[str, Any] = {"app": self.app, "settings": self.worker_settings, "include": self.include}
        if self.pool is not None:
            kwargs["pool"] = self.pool
        if self.concurrency is not None:
            kwargs["concurrency"] = self.concurrency
        return kwargs

    def to_json(self) -> dict[str, Any]:
        """The configuration as plain data (every report row carries it)."""
        return (
            {
                "app": self.app,
                "pool": self.pool,
                "concurrency": self.concurrency,
                "settings": dict(self.settings),
                "producer_settings": self.producer_settings,
            }
            | ({"producer_reuse": True} if self.producer_reuse else {})
            | ({} if self.hiredis is None else {"hiredis": self.hiredis})
        )

    @property
    def is_default(self) -> bool:
        """The seed app with no ``--set``: what the harness measured before configurations existed."""
        seed = self.app in (DEFAULT_APP, f"{DEFAULT_APP}:app")
        return seed and not self.settings and not self.producer_reuse and self.hiredis is None


def build(app: str | None = None, sets: Iterable[str] = ()) -> Config:
    """The configuration from ``--app`` and ``--set`` options; raises :class:`ConfigError`."""
    spec = app or DEFAULT_APP
    settings = parse_sets(sets)
    celery_app = load_app(spec)
    return Config(app=spec, settings=settings, app_settings=producer_side(celery_app))


# -- --set NAME=VALUE ---------------------------------------------------------------------------------
def parse_sets(items: Iterable[str]) -> Settings:
    """``NAME=VALUE`` items to settings (a later item wins); raises :class:`ConfigError`."""
    out: dict[str, Any] = {}
    for item in items:
        name, value = parse_set(item)
        out[name] = value
    return tuple(sorted(out.items()))


def parse_set(item: str) -> tuple[str, Any]:
    """One ``NAME=VALUE``: a known Celery setting name, a value in JSON or as a Python literal."""
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"--set {item!r}: give NAME=VALUE, e.g. --set worker_prefetch_multiplier=1")
    option = CELERY_OPTIONS.get(name)
    if option is None:
        raise ConfigError(
            f"--set {name}: not a Celery setting name; use the lower-case names of Celery's "
            "configuration reference, e.g. task_acks_late"
        )
    if name in HARNESS_OWNED:
        raise ConfigError(f"--set {name}: the harness sets it to its own broker; use --broker-url instead")
    if name in PER_CELL:
        raise ConfigError(f"--set {name}: the harness sets it per run cell; use {PER_CELL[name]} instead")
    if "_" not in name:
        raise ConfigError(f"--set {name}: cannot be passed to a worker's command line; set it in the app")
    value = parse_value(name, text)
    check_type(name, option, value)
    return name, value


def parse_value(name: str, text: str) -> Any:
    """``text`` as JSON, else as a Python literal, else (for a string setting) as the bare text.

    A value that is none of these raises :class:`ConfigError`.
    """
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            if CELERY_OPTIONS[name].type in ("string", "str") and text.strip():
                return text.strip()
            raise ConfigError(
                f"--set {name}={text}: the value is neither JSON nor a Python literal; "
                'give e.g. 1, true, 2.5, "text", [1, 2] or {"key": 1}'
            ) from None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--set {name}={text}: {type(value).__name__} values cannot reach a worker; give a JSON value"
        ) from None
    return value


_EXPECTED: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "string": (str,),
    "str": (str,),
    "dict": (dict,),
    "list": (list, tuple),
    "tuple": (list, tuple),
}


def check_type(name: str, option: Option, value: Any) -> None:
    """Refuse a value whose type the setting cannot take (``None`` is always allowed: "unset")."""
    expected = _EXPECTED.get(option.type) if isinstance(option.type, str) else (option.type,)
    if value is None or expected is None:
        return
    if isinstance(value, bool) and bool not in expected:
        ok = False
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(
            f"--set {name}={json.dumps(value)}: expected a value of type {option.type}, "
            f"got {type(value).__name__}"
        )


# -- --app MODULE[:ATTR] ------------------------------------------------------------------------------
def load_app(spec: str) -> Celery:
    """Import the Celery instance named by ``MODULE[:ATTR]``; raises :class:`ConfigError`."""
    module_name, _, attr = spec.partition(":")
    if not module_name or (":" in spec and not attr):
        raise ConfigError(f"--app {spec!r}: give MODULE or MODULE:ATTR, e.g. --app examples.shop")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--app {spec}: cannot import {exc.name!r}; give an importable module (run from the "
            "directory that contains it, or add it to PYTHONPATH)"
        ) from None
    except Exception as exc:  # the user's module raised on import: name it, one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"--app {spec}: importing {module_name} raised {type(exc).__name__}: {first}"
        ) from None
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Celery):
            raise ConfigError(f"--app {spec}: {module_name}.{attr} is not a Celery instance; name the app")
        return found
    return _find_app(module, spec)


def _find_app(module: Any, spec: str) -> Celery:
    for attr in ("app", "celery"):
        found = getattr(module, attr, None)
        if isinstance(found, Celery):
            return found
    candidates = [value for value in vars(module).values() if isinstance(value, Celery)]
    if len(candidates) == 1:
        return candidates[0]
    raise ConfigError(
        f"--app {spec}: {'no' if not candidates else 'more than one'} Celery instance in {module.__name__}; "
        "name it as MODULE:ATTR"
    )


def producer_side(app: Celery) -> Settings:
    """The app's own settings that shape what a producer publishes (JSON values only)."""
    out = {}
    for name, value in app.conf.table(with_defaults=False).items():
        name = name.lower()
        if name not in CELERY_OPTIONS or name in HARNESS_OWNED or name in NOT_FOR_PRODUCERS:
            continue
        if name.startswith(NOT_FOR_PRODUCERS_PREFIXES) or name.startswith("result_backend"):
            continue
        if _is_json(value):
            out[name] = value
    return tuple(sorted(out.items()))


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def worker_argv(settings: Mapping[str, Any]) -> list[str]:
    """``settings`` on a ``celery worker`` command line: options, then ``-- name=(json)value ...``.

    Celery applies the configuration after ``--`` to the app before the worker starts, but the
    options listed in ``WORKER_OPTIONS`` take their defaults from the app's configuration *before*
    that, so a value after ``--`` would show in ``inspect conf`` and not be used (recorded by
    ``tests/integration/test_app_config.py``): those go as the options themselves.
    """
    argv: list[str] = []
    rest = []
    first = before_command_line(settings)
    for name, value in sorted(settings.items()):
        option = WORKER_OPTIONS.get(name)
        if name in first:
            continue
        if option is None:
            rest.append(f"{name}=(json){json.dumps(value)}")
        elif isinstance(value, bool):
            argv += [option] if value else []
        elif value is not None:
            argv.append(f"{option}={value}")
    return argv + (["--", *rest] if rest else [])


WORKER_OPTIONS = {
    "worker_prefetch_multiplier": "--prefetch-multiplier",
    "worker_disable_prefetch": "--disable-prefetch",
    "worker_state_db": "--statedb",
}
"""Settings whose ``celery worker`` option reads the app's value before ``--`` settings apply."""


def before_command_line(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings no ``celery worker`` command line can carry: a ``WORKER_OPTIONS`` setting whose value
    the option's callback takes for "not given". ``--prefetch-multiplier=0`` (unlimited prefetch, per
    Celery's docs) becomes the app's own value (celery/bin/worker.py: ``value or
    app.conf.worker_prefetch_multiplier``), and after ``--`` it comes too late (see ``worker_argv``).
    ``bench.worker`` puts these in the app's configuration before Celery parses its command line
    (``tests/integration/test_app_config.py`` records the deviation and checks the route)."""
    return {
        name: value
        for name, value in settings.items()
        if name in WORKER_OPTIONS and not isinstance(value, bool) and value is not None and not value
    }


PER_CELL = {"worker_pool": "--pool", "worker_concurrency": "the plan's concurrency per pool"}
"""Settings the harness varies itself: ``--set`` refuses them and names what sets them."""
