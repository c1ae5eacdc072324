"""One real ``celery worker`` process, owned by the harness.

The worker is started as ``python -m celery -A <app> worker`` with a pool, a concurrency, queues and a
unique node name; it is ready when that node answers a control ping. Its log goes to a file the tests
can read. Stopping is warm (SIGTERM / CTRL_BREAK), then cold (SIGQUIT), then the whole tree is killed;
prefork children are reaped with their parent.

This module names the Celery app by module (``-A tasks``) and never imports it, so the same harness
can verify a user's own app.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from kombu.transport.redis import Channel as RedisChannel

from bench import config, defaults, pools, procs
from bench.client import client_app
from bench.procs import ManagedProcess, is_windows, make_tempdir, remove_tempdir, wait_for

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Where ``-A tasks`` is importable from (the repository root)."""


class WorkerError(RuntimeError):
    """A worker did not start or died; the message carries the tail of its log."""


CONTROL_UNACKED_MUTEX_KEY = f"{RedisChannel.unacked_mutex_key}.bench-control"
"""The restore lock of the harness's control apps: never kombu's ``unacked_mutex``, which workers take."""


def control_app(broker_url: str) -> Celery:
    """A minimal client app for control commands (ping, inspect) against ``broker_url``."""
    # A client waiting for replies runs kombu's restore_visible sweep under the ``unacked_mutex`` lock
    # on its first empty poll; a worker whose start-up sweep meets that lock skips it silently (its next
    # is ~100 s away), so the harness's pings take a lock of their own and never block a worker's.
    # Workers reply to control commands in their task_serializer (celery/app/control.py: the Mailbox's
    # serializer), so a worker under --set task_serializer=msgpack replies in msgpack: accept it.
    return client_app(
        broker_url, name="bench-control", backend=False, broker_connection_timeout=2,
        broker_transport_options={"unacked_mutex_key": CONTROL_UNACKED_MUTEX_KEY},
        accept_content=CONTROL_ACCEPT,
    )  # fmt: skip


CONTROL_ACCEPT = ["json", "msgpack"]
"""What the harness's control app reads in a worker's replies (never pickle)."""

NUDGE_TASK = "bench.probes.noop"
"""What :func:`await_consuming` sends (without a result) to wake a worker's event loop."""


def consumed_queues(control: Celery, nodes: Sequence[str]) -> dict[str, set[str]]:
    """Per node that answers ``inspect active_queues``, the names of the queues it consumes now."""
    inspect = control.control.inspect(
        destination=list(nodes), timeout=defaults.CONTROL_TIMEOUT, limit=len(nodes)
    )
    replies = inspect.active_queues() or {}
    return {node: {q["name"] for q in queues or ()} for node, queues in replies.items()}


def await_consuming(
    control: Celery, nodes: Sequence[str], queue: str, *, consuming: bool, nudge: str | None = None
) -> None:
    """Block until every node consumes ``queue`` (``consuming``), or none does any more.

    ``add_consumer`` and ``cancel_consumer`` reply at once and apply the change on the worker's event
    loop's next turn (``call_soon`` in ``celery/worker/control.py``). A gevent or eventlet worker runs
    Celery's ``synloop``, whose turn waits for a message or for its ``drain_events(timeout=2.0)`` (the
    loop celery#10263 found deferring acks): until then a cancelled queue is still consumed. ``nudge``, a
    queue the nodes consume, gets a no-op without a result that ends that wait at once.
    """

    def applied() -> bool:
        found = consumed_queues(control, nodes)
        return all(node in found and (queue in found[node]) == consuming for node in nodes)

    if applied():
        return
    if nudge:
        control.send_task(NUDGE_TASK, queue=nudge, ignore_result=True)
    verb = "consume" if consuming else "stop consuming"
    wait_for(applied, timeout=defaults.QUEUE_SWITCH_TIMEOUT, what=f"{', '.join(nodes)} to {verb} {queue}")


def child_env(
    broker_url: str,
    backend_url: str | None = None,
    extra: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> dict[str, str]:
    """The environment of a harness child: the broker contract variables and the run marker."""
    env = dict(os.environ)
    env["CELERY_BROKER_URL"] = broker_url
    env["CELERY_RESULT_BACKEND"] = backend_url or broker_url
    env[defaults.RUN_MARKER_ENV] = run_id or procs.run_id()
    # The harness's modules and the user's app (importable from where the harness was started); an
    # ``extra`` PYTHONPATH goes first (e.g. ``bench.isolated``'s directory that hides hiredis).
    extra = dict(extra or {})
    path = (extra.pop("PYTHONPATH", ""), str(PROJECT_ROOT), os.getcwd(), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in path if p))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


LAUNCH = (
    "import json, sys\n"
    "from celery import maybe_patch_concurrency\n"
    "maybe_patch_concurrency(sys.argv)\n"
    "from celery.app.utils import find_app\n"
    "app = find_app(sys.argv[1])\n"
    "app.conf.update(json.loads(sys.argv[2]))\n"
    "sys.exit(app.start(sys.argv[3:]))\n"
)
"""``python -c LAUNCH APP SETTINGS_JSON worker ...``: ``celery -A APP worker ...`` with SETTINGS_JSON in the
app's configuration before Celery parses its command line (``config.before_command_line``). It patches
for gevent/eventlet first and finds the app as ``celery -A`` does; ``app.start`` runs the same command."""


@dataclass
class Worker:
    """A ``celery worker`` process: configure, :meth:`start`, use, :meth:`stop` (or ``with``)."""

    broker_url: str = field(repr=False)  # may carry a password
    pool: str = "solo"
    concurrency: int | None = None
    queues: Sequence[str] = ()
    app: str = "tasks"
    backend_url: str | None = field(default=None, repr=False)
    loglevel: str = "INFO"
    env: Mapping[str, str] = field(default_factory=dict)
    extra_args: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Celery settings on top of the app's own (``--set``), on the worker's command line."""
    include: Sequence[str] = (config.PROBES_MODULE,)
    """Modules the worker imports besides the app's own: the harness's probe tasks."""
    log_dir: Path | None = None
    name: str = ""
    ready_timeout: float = defaults.WORKER_READY_TIMEOUT
    platform: str = sys.platform
    process: ManagedProcess | None = field(default=None, init=False, repr=False)
    _own_log_dir: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        info = pools.support(self.pool, self.platform)
        if not info.available:
            raise WorkerError(info.reason)
        if self.concurrency is None:
            self.concurrency = pools.default_concurrency(self.pool)
        if not self.name:
            self.name = f"{self.pool}-{uuid.uuid4().hex[:8]}"

    @property
    def node(self) -> str:
        """The node name the worker answers to (``name@host``)."""
        return f"{self.name}@{socket.gethostname()}"

    def argv(self) -> list[str]:
        first = config.before_command_line(self.settings)
        celery = (
            [sys.executable, "-c", LAUNCH, self.app, json.dumps(first)]
            if first
            else [sys.executable, "-m", "celery", "-A", self.app]
        )
        argv = [
            *celery, "worker",
            f"--pool={self.pool}",
            f"--concurrency={self.concurrency}",
            f"--hostname={self.node}",
            f"--loglevel={self.loglevel}",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        if self.queues:
            argv.append("--queues=" + ",".join(self.queues))
        if self.include:
            argv.append("--include=" + ",".join(self.include))
        argv.extend(self.extra_args)
        argv += config.worker_argv(self.settings)
        return argv

    @property
    def log_path(self) -> Path:
        assert self.log_dir is not None, "worker not started"
        return self.log_dir / f"{self.name}.log"

    def start(self, *, wait: bool = True) -> Worker:
        if self.log_dir is None:
            self.log_dir = make_tempdir("worker")
            self._own_log_dir = True
        env = child_env(self.broker_url, self.backend_url, self.env)
        process = ManagedProcess(
            self.argv(),
            name=f"worker:{self.node}",
            log_path=self.log_path,
            env=env,
            cwd=PROJECT_ROOT,
            platform=self.platform,
        )
        try:
            self.process = process.start()
        except BaseException:
            self._cleanup()
            raise
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def ping(self, timeout: float = defaults.PING_TIMEOUT) -> bool:
        """True if the node answers a control ping; False if not, or if the broker is unreachable now
        (e.g. the first ping after a broker restart meets a stale pooled connection)."""
        app = control_app(self.broker_url)
        try:
            replies = app.control.ping(destination=[self.node], timeout=timeout)
        except (OSError, OperationalError):
            return False
        finally:
            app.close()
        return any(self.node in reply for reply in replies)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the node answers a control ping (bounded by ``ready_timeout``)."""

        def ready() -> bool:
            if not self.alive():
                raise WorkerError(
                    f"worker {self.node} ({self.pool}) exited with {self.returncode()} before it was "
                    f"ready; last log lines:\n{self.log_tail()}"
                )
            return self.ping()

        try:
            wait_for(ready, timeout=timeout or self.ready_timeout, what=f"worker {self.node} to answer ping")
        except TimeoutError as exc:
            raise WorkerError(f"{exc}; last log lines:\n{self.log_tail()}") from exc

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise WorkerError("worker not started")
        return self.process.pid

    def child_pids(self) -> list[int]:
        """PIDs of the pool's child processes (prefork); empty for solo and threads."""
        return [] if self.process is None else [p.pid for p in self.process.descendants()]

    def log(self) -> str:
        return "" if self.process is None else self.process.log_text()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(
        self, *, warm: float = defaults.WARM_STOP_TIMEOUT, cold: float | None = defaults.COLD_STOP_TIMEOUT
    ) -> int | None:
        """Warm stop, then cold, then kill the tree; removes the log dir the worker created.

        On Windows there is no signal that asks a console program for a warm shutdown (Celery installs no
        CTRL_BREAK handler), so the warm step is a remote-control ``shutdown`` over the broker.
        """
        code = None
        try:
            if self.process is not None and self.alive() and is_windows(self.platform):
                self.shutdown_remotely(timeout=warm)
            if self.process is not None:
                code = self.process.stop(warm=warm, cold=cold)
        finally:
            self._cleanup()
        return code

    def shutdown_remotely(self, *, timeout: float = defaults.WARM_STOP_TIMEOUT) -> bool:
        """Ask the node for a warm shutdown via remote control; True if it exited within ``timeout``."""
        if not self.alive():
            return True
        app = control_app(self.broker_url)
        try:
            app.control.shutdown(destination=[self.node])
        finally:
            app.close()
        try:
            wait_for(lambda: not self.alive(), timeout=timeout, what=f"{self.node} to shut down")
        except TimeoutError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the whole tree at once (a crash, for fault injection)."""
        if self.process is not None:
            self.process.kill_tree()

    def _cleanup(self) -> None:
        if self._own_log_dir:
            remove_tempdir(self.log_dir)

    def __enter__(self) -> Worker:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Beat:
    """A ``celery beat`` process with its schedule file in a temporary directory."""

    broker_url: str = field(repr=False)  # may carry a password
    app: str = "tasks"
    env: Mapping[str, str] = field(default_factory=dict)
    backend_url: str | None = field(default=None, repr=False)
    process: ManagedProcess | None = field(default=None, init=False, repr=False)
    tmpdir: Path | None = field(default=None, init=False)

    def start(self) -> Beat:
        self.tmpdir = make_tempdir("beat")
        argv = [
            sys.executable, "-m", "celery", "-A", self.app, "beat",
            f"--schedule={self.tmpdir / 'schedule'}",
            f"--pidfile={self.tmpdir / 'beat.pid'}",
            "--loglevel=INFO",
        ]  # fmt: skip
        self.process = ManagedProcess(
            argv,
            name="beat",
            log_path=self.tmpdir / "beat.log",
            env=child_env(self.broker_url, self.backend_url, self.env),
            cwd=PROJECT_ROOT,
        ).start()
        return self

    def log(self) -> str:
        return "" if self.process is None else self.process.log_text()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(warm=defaults.WARM_STOP_TIMEOUT)
        remove_tempdir(self.tmpdir)
        self.tmpdir = None

    def __enter__(self) -> Beat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
