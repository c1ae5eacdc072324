"""A private RabbitMQ node the harness starts and owns, like the private Redis of ``bench/broker.py``.

The node is ``rabbitmq-server`` from PATH, run as the harness's own user with everything of its own:

- a node name ``bench-<id>@localhost`` (never the shared node's ``rabbit@...``);
- free loopback ports for AMQP, for Erlang distribution and for a private ``epmd`` (the Erlang port
  mapper), so that it neither registers with nor depends on the machine's shared ``epmd`` on 4369;
- a temporary directory holding its data (``mnesia``), its log, its config file, an empty plugins file,
  an empty ``rabbitmq-env.conf`` (so ``/etc/rabbitmq/rabbitmq-env.conf`` is not read) and, as ``HOME``,
  a private ``.erlang.cookie`` (``rabbitmqctl`` with :meth:`RabbitMQ.ctl_env` reaches it with it);
- a generated user and password in the config file (mode 0600, never on a command line); the default
  ``guest`` user is not created.

It is ready when an AMQP login with those credentials succeeds. :meth:`RabbitMQ.stop` sends SIGTERM (the
server script turns it into a graceful stop), kills what is left of the tree, stops the private
``epmd`` and removes the directory. Both processes are :class:`~bench.procs.ManagedProcess` es, so the
``atexit`` reaper stops them on Ctrl-C or an uncaught error, and they carry the run marker so that
:func:`bench.procs.reap_run` finds them after a harness that was killed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import amqp
import kombu

from bench import defaults
from bench.broker import BrokerError, PrivateServer, free_port, redact
from bench.procs import ManagedProcess, make_tempdir, wait_for

INSTALL_HINT = (
    "no rabbitmq-server found on PATH: install it (apt-get install rabbitmq-server, brew install "
    "rabbitmq) or pass --broker-url amqp://USER:PASSWORD@HOST:5672//"
)

WINDOWS_REASON = (
    "a private RabbitMQ node is POSIX-only here (its scripts are .bat files and it stops by signal): "
    "pass --broker-url amqp://USER:PASSWORD@HOST:5672//"
)

DEBIAN_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
"""Where Debian and Ubuntu keep RabbitMQ's own scripts; their ``/usr/sbin/rabbitmq-server`` is a wrapper
(a link to ``rabbitmq-script-wrapper``) that switches to the ``rabbitmq`` user (``su``, which resets
``HOME`` and cannot write the harness's temporary directory) and logs to ``/var/log/rabbitmq``."""

_INHERITED_PREFIXES = ("RABBITMQ_", "ERL_")
"""Variables of the harness's environment not passed to the node: they could name another node,
config file or port mapper (e.g. ``RABBITMQ_NODENAME`` or ``ERL_EPMD_PORT`` set in a user's shell)."""


def find_rabbitmq_server(
    which: Callable[[str], str | None] = shutil.which, debian: Path = DEBIAN_SCRIPTS
) -> Path:
    """The ``rabbitmq-server`` script to run: PATH's, or the one its distribution's wrapper calls."""
    found = which("rabbitmq-server")
    if not found:
        raise BrokerError(INSTALL_HINT)
    path = Path(found)
    real = path.resolve()
    if real.name == "rabbitmq-server" and (real.parent / "rabbitmq-env").is_file():
        return path  # RabbitMQ's own script (generic-unix tarball, Homebrew, RabbitMQ's packages)
    wrapped = debian / "rabbitmq-server"
    return wrapped if wrapped.is_file() else path


def find_epmd(which: Callable[[str], str | None] = shutil.which) -> str:
    found = which("epmd")
    if not found:
        raise BrokerError(
            "no epmd found on PATH: it ships with Erlang (apt-get install erlang-base); "
            "or pass --broker-url amqp://USER:PASSWORD@HOST:5672//"
        )
    return found


def amqp_url(user: str, password: str, host: str, port: int) -> str:
    """The URL of the default virtual host ``/`` (the trailing ``//`` is kombu's spelling of it)."""
    return f"amqp://{user}:{password}@{host}:{port}//"


@dataclass(frozen=True)
class NodeLayout:
    """Where a private node keeps everything, and on which ports it listens (pure data)."""

    root: Path
    node: str
    host: str
    amqp_port: int
    dist_port: int
    epmd_port: int

    @property
    def config_file(self) -> Path:
        return self.root / "rabbitmq.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"


def render_config(layout: NodeLayout, *, user: str, password: str) -> str:
    """The node's ``rabbitmq.conf`` (new-style format): loopback listener, generated user, no guest."""
    return "\n".join(
        [
            f"listeners.tcp.1 = {layout.host}:{layout.amqp_port}",
            f"default_user = {user}",
            f"default_pass = {password}",
            "default_vhost = /",
            "default_permissions.configure = .*",
            "default_permissions.read = .*",
            "default_permissions.write = .*",
            "",
        ]
    )


def node_env(layout: NodeLayout, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of the node, its ``epmd`` and ``rabbitmqctl``: ``base`` without any inherited
    ``RABBITMQ_*``/``ERL_*`` variable, plus the node's own paths, name and ports."""
    env = {k: v for k, v in base.items() if not k.startswith(_INHERITED_PREFIXES)}
    root = layout.root
    env.update(
        HOME=str(root),  # the private .erlang.cookie
        RABBITMQ_NODENAME=layout.node,
        RABBITMQ_NODE_IP_ADDRESS=layout.host,
        RABBITMQ_NODE_PORT=str(layout.amqp_port),
        RABBITMQ_DIST_PORT=str(layout.dist_port),
        ERL_EPMD_PORT=str(layout.epmd_port),
        ERL_EPMD_ADDRESS=layout.host,
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        RABBITMQ_CONF_ENV_FILE=str(root / "rabbitmq-env.conf"),
        RABBITMQ_CONFIG_FILE=str(layout.config_file),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(root / "advanced.config"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(root / "enabled_plugins"),
        RABBITMQ_MNESIA_BASE=str(root / "mnesia"),
        RABBITMQ_LOG_BASE=str(layout.log_dir),
        RABBITMQ_LOGS="-",  # to stdout, which ManagedProcess writes to log/server.log
        RABBITMQ_PID_FILE=str(root / "rabbitmq.pid"),
        # The server script then `exec`s the Erlang VM instead of running it in the background and waiting:
        # the VM is the harness's direct child and keeps its parent-death signal (bench.procs), so a
        # SIGKILLed harness takes it along. Nothing else of the script reads it (only whether to exec).
        RUNNING_UNDER_SYSTEMD="true",
    )
    return env


def write_node_files(layout: NodeLayout, *, user: str, password: str) -> None:
    """The config (0600: it holds the password), an empty env file and plugin list, a private cookie."""
    private = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for path, text, mode in (
        (layout.config_file, render_config(layout, user=user, password=password), 0o600),
        (layout.root / ".erlang.cookie", secrets.token_hex(20), 0o400),
    ):
        fd = os.open(path, private, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    (layout.root / "rabbitmq-env.conf").write_text("# empty: the node's settings are in its environment\n")
    (layout.root / "enabled_plugins").write_text("[].\n")
    layout.log_dir.mkdir(exist_ok=True)
    (layout.root / "mnesia").mkdir(exist_ok=True)  # the node creates its feature-flags file in it


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=defaults.AMQP_CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


@dataclass
class RabbitMQ(PrivateServer):
    """A RabbitMQ broker. ``owned`` is True only for a private node the harness started."""

    url: str = field(repr=False)  # carries the password; see ``redacted``
    owned: bool
    host: str = "127.0.0.1"
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    node: str = ""
    dist_port: int = 0
    epmd_port: int = 0
    tmpdir: Path | None = None
    process: ManagedProcess | None = field(default=None, repr=False)
    epmd: ManagedProcess | None = field(default=None, repr=False)
    start_seconds: list[float] = field(default_factory=list)
    stop_seconds: list[float] = field(default_factory=list)

    kind = "rabbitmq"

    @property
    def redacted(self) -> str:
        return redact(self.url)

    @property
    def layout(self) -> NodeLayout:
        if self.tmpdir is None:
            raise BrokerError(f"RabbitMQ node {self.node} has no directory: start it first")
        return NodeLayout(self.tmpdir, self.node, self.host, self.port, self.dist_port, self.epmd_port)

    def ctl_env(self) -> dict[str, str]:
        """The environment under which ``rabbitmqctl`` reaches this node (its cookie, name and epmd)."""
        return node_env(self.layout, os.environ)

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl -n NODE ARGS`` against this private node (bounded by ``RABBITMQCTL_TIMEOUT``);
        its output, or :class:`BrokerError` with it if the command failed."""
        if not self.owned or self.process is None:
            raise BrokerError("rabbitmqctl only on a running private node the harness started")
        ctl = find_rabbitmq_server().parent / "rabbitmqctl"
        done = subprocess.run(  # noqa: S603 - our own node's CLI, arguments from the harness
            [str(ctl), "-n", self.node, *args], env=self.ctl_env(), capture_output=True, text=True,
            timeout=defaults.RABBITMQCTL_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BrokerError(
                f"rabbitmqctl {args[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
            )
        return done.stdout

    def set_env(self, settings: Mapping[str, int]) -> None:
        """Set ``rabbit`` application settings on the running node (``application:set_env``): channels
        opened afterwards read them (e.g. ``consumer_timeout``, ``channel_tick_interval``)."""
        calls = ", ".join(f"application:set_env(rabbit, {k}, {int(v)})" for k, v in settings.items())
        self.ctl("eval", f"{calls}, ok.")

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> RabbitMQ:
        if not self.owned:
            check_url(self.url)
            return self
        server = find_rabbitmq_server()
        epmd = find_epmd()
        fresh = self.tmpdir is None
        if self.tmpdir is None:
            self.tmpdir = make_tempdir("rabbitmq")
        started = time.perf_counter()
        try:
            if fresh:
                write_node_files(self.layout, user=self.user, password=self.password)
            self._start_epmd(epmd)
            self.process = ManagedProcess(
                [str(server)], name=f"rabbitmq-server:{self.port}", log_path=self.layout.server_log,
                env=self._env(), cwd=self.tmpdir,
            ).start()  # fmt: skip
            wait_for(self._answers, timeout=defaults.RABBITMQ_START_TIMEOUT, what=f"RabbitMQ {self.node}")
        except TimeoutError as exc:
            log = self.log_tail()
            self.stop()
            raise BrokerError(f"private RabbitMQ node did not accept a login: {exc}\n{log}") from exc
        except BaseException:  # it exited at once (BrokerError from _answers), or Ctrl-C: leave nothing
            self.stop()
            raise
        self.start_seconds.append(time.perf_counter() - started)
        return self

    def _env(self) -> dict[str, str]:
        env = node_env(self.layout, os.environ)
        if defaults.RUN_MARKER_ENV in os.environ:  # leak checks and reap_run find the node by it
            env[defaults.RUN_MARKER_ENV] = os.environ[defaults.RUN_MARKER_ENV]
        return env

    def _start_epmd(self, binary: str) -> None:
        """A private ``epmd`` in the foreground, owned like the node (erl would otherwise daemonise one
        that outlives the harness, or register with the shared one)."""
        argv = [binary, "-port", str(self.epmd_port), "-address", self.host]
        self.epmd = ManagedProcess(
            argv, name=f"epmd:{self.epmd_port}", log_path=self.layout.log_dir / "epmd.log", env=self._env()
        ).start()
        wait_for(
            lambda: self._epmd_up(),
            timeout=defaults.EPMD_START_TIMEOUT,
            what=f"epmd on port {self.epmd_port}",
        )

    def _epmd_up(self) -> bool:
        if self.epmd is not None and not self.epmd.alive():
            raise BrokerError(f"private epmd exited with {self.epmd.returncode()}: {self.epmd.log_text()}")
        return _port_open(self.host, self.epmd_port)

    def _answers(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise BrokerError(
                f"private rabbitmq-server exited with {self.process.returncode()}: {self.log_tail()}"
            )
        return can_login(self.host, self.port, self.user, self.password)

    def log_tail(self) -> str:
        return self.process.log_text()[-2000:] if self.process is not None else ""

    def stop_server(self) -> None:
        """Stop the node and its epmd but keep the directory (durable queues and messages survive)."""
        started = time.perf_counter()
        stopped = False
        if self.process is not None:
            self.process.stop(warm=defaults.RABBITMQ_STOP_TIMEOUT)
            self.process = None
            stopped = True
        if self.epmd is not None:
            self.epmd.stop(warm=defaults.BROKER_STOP_TIMEOUT)
            self.epmd = None
        if stopped:
            self.stop_seconds.append(time.perf_counter() - started)

    # -- the floor -----------------------------------------------------------------------------------
    @contextmanager
    def floor_push(
        self, queue: str, *, size: int, headers: Mapping[str, object] | None = None
    ) -> Iterator[Callable[[], object]]:
        """A raw py-amqp ``basic_publish`` (through kombu's connection) of a ``size``-byte persistent
        message to ``queue`` on the default exchange: the floor under an AMQP enqueue. ``headers`` lets
        the caller send Celery's own message headers. The queue is declared and deleted here."""
        with kombu.Connection(self.url, connect_timeout=defaults.AMQP_CONNECT_TIMEOUT) as conn:
            channel = conn.channel()
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            message = channel.prepare_message(
                b"x" * size,
                content_type="application/json",
                content_encoding="utf-8",
                headers=dict(headers or {}),
                properties={"delivery_mode": 2},  # persistent, as Celery sends tasks
            )
            try:
                yield lambda: channel.basic_publish(message, exchange="", routing_key=queue)
            finally:
                channel.queue_delete(queue=queue)
                channel.close()


def get_one(url: str, queue: str) -> amqp.basic_message.Message | None:
    """Take one message off ``queue`` (``basic_get``, acknowledged), or None if it is empty."""
    with kombu.Connection(url, connect_timeout=defaults.AMQP_CONNECT_TIMEOUT) as conn:
        channel = conn.channel()
        try:
            message: amqp.basic_message.Message | None = channel.basic_get(queue=queue, no_ack=True)
            return message
        finally:
            channel.close()


def can_login(host: str, port: int, user: str, password: str) -> bool:
    """Whether an AMQP login to ``host:port`` with these credentials succeeds now."""
    conn = amqp.Connection(
        host=f"{host}:{port}",
        userid=user,
        password=password,
        connect_timeout=defaults.AMQP_CONNECT_TIMEOUT,
    )
    try:
        conn.connect()
        return True
    except (OSError, amqp.exceptions.AMQPError):
        return False
    finally:
        try:
            conn.close()
        except (OSError, amqp.exceptions.AMQPError):
            pass


def check_url(url: str) -> None:
    """Fail with a one-line error if ``url`` is not an AMQP URL that accepts a login."""
    if not url.startswith(("amqp://", "amqps://", "pyamqp://")):
        raise BrokerError(f"unsupported RabbitMQ URL {redact(url)!r}: use amqp://USER:PASSWORD@HOST:PORT//")
    try:
        with kombu.Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # kombu wraps socket and AMQP errors in several types
        raise BrokerError(
            f"cannot reach broker {redact(url)}: {exc}; start it or pass another --broker-url"
        ) from exc


def private_rabbitmq() -> RabbitMQ:
    """A private RabbitMQ node on free loopback ports with a generated user (not yet started)."""
    host = "127.0.0.1"
    port, dist_port, epmd_port = _distinct_free_ports(3)
    user = f"bench-{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    return RabbitMQ(
        url=amqp_url(user, password, host, port),
        owned=True,
        host=host,
        port=port,
        user=user,
        password=password,
        node=f"bench-{uuid.uuid4().hex[:10]}@localhost",
        dist_port=dist_port,
        epmd_port=epmd_port,
    )


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def external(url: str) -> RabbitMQ:
    """Wrap a RabbitMQ the user runs; the harness checks it answers and never stops it."""
    return RabbitMQ(url=url, owned=False)
