"""The one owner of child processes.

Every process the harness starts (a private ``redis-server``, a ``celery worker``, ``celery beat``)
is a :class:`ManagedProcess`: started in a new process group (POSIX) or a new console process group
(Windows), stopped politely, then firmly, and finally reaped with its whole tree, whatever happened.

Processes still alive when the interpreter exits (an uncaught error, Ctrl-C, SIGTERM) are stopped by an
``atexit`` hook, so no ``celery`` or ``redis-server`` outlives the harness.

A harness killed with SIGKILL runs no hook at all. On Linux every child asks the kernel, between fork and
exec, for SIGKILL when the harness goes (``PR_SET_PDEATHSIG``, :func:`die_with_parent`); prefork's pool
children get the same from Celery itself. Every child also carries the run id and its owner (this
process's pid and start time) in its environment, and every temp dir an owner file, so that the next run
can remove what a killed run left (:mod:`bench.stale`), on any platform.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import psutil

from bench import defaults


@dataclass(frozen=True)
class StopStep:
    """One step of a stop plan: send ``action``, then wait up to ``timeout`` seconds for the exit."""

    action: str  # "term", "quit", "ctrl_break", "kill_tree"
    timeout: float


def is_windows(platform: str | None = None) -> bool:
    return (platform or sys.platform).startswith("win")


def popen_kwargs(platform: str | None = None) -> dict[str, object]:
    """How to start a child so that it and its children can be stopped as one group."""
    if is_windows(platform):
        # CTRL_BREAK_EVENT can only be sent to a console process group of its own.
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    # A new session: the child leads its own process group, so killpg reaches prefork children too,
    # and a Ctrl-C typed at the terminal reaches only the harness, which then stops children in order.
    return {"start_new_session": True}


def stop_plan(*, warm: float, cold: float | None, platform: str | None = None) -> list[StopStep]:
    """The escalation used to stop a process tree on ``platform``.

    POSIX: SIGTERM (warm shutdown), SIGQUIT (cold shutdown, if ``cold`` is given), then SIGKILL to the
    whole tree. Windows has neither SIGTERM nor SIGQUIT for console programs: CTRL_BREAK_EVENT to the
    process group, then terminate the whole tree. Celery installs no SIGBREAK handler, so CTRL_BREAK
    ends a worker through the console's default handler (at once, not a warm shutdown); there is no
    signal that asks a Windows worker for a warm shutdown (a remote-control ``shutdown`` would).
    """
    steps: list[StopStep] = []
    if is_windows(platform):
        steps.append(StopStep("ctrl_break", warm))
    else:
        steps.append(StopStep("term", warm))
        if cold is not None:
            steps.append(StopStep("quit", cold))
    steps.append(StopStep("kill_tree", defaults.KILL_TIMEOUT))
    return steps


_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


def live_processes() -> list[ManagedProcess]:
    """The processes started by this interpreter that have not been reaped yet."""
    with _LIVE_LOCK:
        return list(_LIVE)


_TEMPDIRS: set[Path] = set()


def make_tempdir(kind: str) -> Path:
    """A temporary directory removed by :func:`remove_tempdir`, or at exit at the latest.

    It holds an owner file (the run id and this process), so that the next run removes it if this
    process is killed before it could (:mod:`bench.stale`)."""
    path = Path(tempfile.mkdtemp(prefix=f"{defaults.TEMP_PREFIX}{kind}-"))
    with _LIVE_LOCK:
        _TEMPDIRS.add(path)
    owner = {"run": run_id(), "owner": this_owner().marker()}
    write_private_file(path / defaults.OWNER_FILE, json.dumps(owner))
    return path


def write_private_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by this user only (0600), e.g. a server's password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        if hasattr(os, "fchmod"):  # an existing file keeps its mode through O_CREAT: set it
            os.fchmod(out.fileno(), 0o600)
        out.write(text)
    return path


def remove_tempdir(path: Path | None) -> None:
    if path is None:
        return
    shutil.rmtree(path, ignore_errors=True)
    with _LIVE_LOCK:
        _TEMPDIRS.discard(path)


def _reap_all_at_exit() -> None:
    for proc in live_processes():
        proc.kill_tree()
    for path in list(_TEMPDIRS):
        remove_tempdir(path)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into ``KeyboardInterrupt`` so that every owner cleans up as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread() or is_windows():
        return

    def _handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _handler)


atexit.register(_reap_all_at_exit)


# -- who owns a child ------------------------------------------------------------------------------
OWNER_START_TOLERANCE = 1.0
"""Seconds two readings of one process's start time may differ by (the kernel counts in clock ticks);
a pid reused by another process starts later than that."""


@dataclass(frozen=True)
class Owner:
    """The harness process that started a child: its pid and start time (a reused pid has another)."""

    pid: int
    started: float

    def marker(self) -> str:
        return f"{self.pid}:{self.started:.2f}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        """The owner in a marker, or None for a missing or malformed one (never touched then)."""
        pid, _, started = (text or "").partition(":")
        try:
            return cls(int(pid), float(started))
        except ValueError:
            return None


def this_owner() -> Owner:
    return Owner(os.getpid(), psutil.Process().create_time())


def owner_alive(owner: Owner, *, lookup: Callable[[int], psutil.Process] = psutil.Process) -> bool:
    """True while ``owner`` runs: its pid exists, is not a zombie, and started when the marker says."""
    try:
        proc = lookup(owner.pid)
        same = abs(proc.create_time() - owner.started) < OWNER_START_TOLERANCE
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process by that pid: we cannot tell, so do not touch
        return True


def run_id() -> str:
    """This harness run's id: inherited from the environment (a test names the run it starts) or new.

    The id and this process's owner marker go into ``os.environ``, so every child carries both, whether
    started by :class:`ManagedProcess` or by ``multiprocessing``."""
    value = os.environ.get(defaults.RUN_MARKER_ENV) or uuid.uuid4().hex[:12]
    os.environ[defaults.RUN_MARKER_ENV] = value
    os.environ[defaults.OWNER_MARKER_ENV] = this_owner().marker()
    return value


# -- children die with the harness ------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal the kernel sends this process when its parent thread exits (Linux)."""

PARENT_DEATH_SIGNAL = signal.SIGKILL
"""SIGKILL, not SIGTERM: SIGTERM would start a warm shutdown that waits for running tasks and reconnects
to a broker dying at the same moment, with no owner left to escalate. A SIGKILLed prefork worker still
takes its pool with it: Celery sets SIGKILL as the pool children's own parent-death signal."""


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl  # type: ignore[no-any-return]


_PRCTL = _load_prctl()  # resolved before any fork: the child only calls it


def die_with_parent(
    parent_pid: int,
    *,
    sig: int = PARENT_DEATH_SIGNAL,
    prctl: Callable[..., int] | None = None,
    getppid: Callable[[], int] = os.getppid,
    kill: Callable[[int, int], None] = os.kill,
) -> None:
    """In a child (before exec, or first thing in a spawned interpreter): have the kernel send ``sig``
    when the thread that started it exits; if ``parent_pid`` died before that took effect, go now."""
    prctl = prctl or _PRCTL
    if prctl is None:
        return
    if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if getppid() != parent_pid:  # orphaned between fork and prctl: the signal will never come
        kill(os.getpid(), sig)


def parent_death_hook(platform: str | None = None) -> Callable[[], None] | None:
    """The ``preexec_fn`` that makes a child die with this process, or None where Linux's
    ``PR_SET_PDEATHSIG`` does not exist (see README, "Nothing is left behind")."""
    if _PRCTL is None or not (platform or sys.platform).startswith("linux"):
        return None
    return functools.partial(die_with_parent, os.getpid())


_T = TypeVar("_T")
_SPAWN_REQUESTS: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
_SPAWNER: list[threading.Thread] = []


def _serve_spawns() -> None:
    while True:
        fn, future = _SPAWN_REQUESTS.get()
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the thread that asked
            future.set_exception(exc)


def in_long_lived_thread(fn: Callable[[], _T]) -> _T:
    """Run ``fn`` (which forks) in a thread that lives as long as the process.

    The kernel's parent death signal follows the *thread* that forked, not the process: a child started
    from a short-lived thread (a producer, a fixture helper) would be killed when that thread ends. The
    main thread forks itself; any other thread hands the fork to one daemon thread that never returns."""
    if threading.current_thread() is threading.main_thread():
        return fn()
    with _LIVE_LOCK:
        if not _SPAWNER:
            _SPAWNER.append(threading.Thread(target=_serve_spawns, name="bench-spawner", daemon=True))
            _SPAWNER[0].start()
    future: Future[_T] = Future()
    _SPAWN_REQUESTS.put((fn, future))
    return future.result()


def _tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every descendant still alive."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class ManagedProcess:
    """A child process and its descendants, owned by the harness until :meth:`stop` returns."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        platform: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = cwd
        self.platform = platform or sys.platform
        self.popen: subprocess.Popen[bytes] | None = None
        self._known: dict[int, psutil.Process] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> ManagedProcess:
        if self.popen is not None:
            raise RuntimeError(f"{self.name} is already started (pid {self.popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        env.setdefault(defaults.RUN_MARKER_ENV, run_id())
        env[defaults.OWNER_MARKER_ENV] = this_owner().marker()
        env.setdefault("SPT_NOENV", "1")  # a title set with `setproctitle` must not overwrite the markers
        log: IO[bytes] = open(self.log_path, "ab")

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(  # noqa: S603 - argv built by the harness
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                preexec_fn=parent_death_hook(self.platform),  # prctl only: see die_with_parent
                **popen_kwargs(self.platform),  # type: ignore[call-overload]
            )

        try:
            self.popen = in_long_lived_thread(popen)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"cannot start {self.name}: {self.argv[0]!r} not found; install it or put it on PATH"
            ) from exc
        finally:
            log.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def descendants(self) -> list[psutil.Process]:
        """Children (recursively) still alive; remembered so that orphans are reaped too."""
        if self.popen is None:
            return []
        for proc in _tree(self.popen.pid):
            self._known.setdefault(proc.pid, proc)
        return [p for p in self._known.values() if p.pid != self.popen.pid and _running(p)]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, *, warm: float = defaults.WARM_STOP_TIMEOUT, cold: float | None = None) -> int | None:
        """Stop politely, then firmly; always reap the tree. Returns the main process's exit code."""
        if self.popen is None:
            return None
        try:
            self.descendants()  # remember the tree before the parent goes away
            for step in stop_plan(warm=warm, cold=cold, platform=self.platform):
                if step.action == "kill_tree":
                    break
                if not self.alive():
                    break
                self._send(step.action)
                if self._wait_main(step.timeout):
                    break
        finally:
            self.kill_tree()
        return self.popen.returncode

    def kill_tree(self) -> None:
        """Kill the process and every descendant it ever had, and wait for them (idempotent)."""
        if self.popen is None:
            return
        procs = self.descendants()
        if not is_windows(self.platform):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.alive():
            self.popen.kill()
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        # The main process is waited for through Popen (psutil would reap it and lose its status);
        # the descendants through psutil.
        psutil.wait_procs(procs, timeout=defaults.KILL_TIMEOUT)
        try:
            self.popen.wait(timeout=defaults.KILL_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
            pass
        with _LIVE_LOCK:
            _LIVE.discard(self)

    # -- internals ---------------------------------------------------------------------------------
    def _send(self, action: str) -> None:
        send_stop_signal(self.pid, action, platform=self.platform)

    def _wait_main(self, timeout: float) -> bool:
        assert self.popen is not None
        try:
            self.popen.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def __enter__(self) -> ManagedProcess:
        return self.start() if self.popen is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        pid = self.popen.pid if self.popen else None
        return f"<ManagedProcess {self.name} pid={pid}>"


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def send_stop_signal(
    pid: int,
    action: str,
    *,
    platform: str | None = None,
    kill: Callable[[int, int], None] = os.kill,
) -> None:
    """Deliver one stop action to ``pid`` the way ``platform`` supports it."""
    if is_windows(platform):
        if action != "ctrl_break":
            raise ValueError(f"stop action {action!r} does not exist on Windows; use 'ctrl_break'")
        try:
            kill(pid, getattr(signal, "CTRL_BREAK_EVENT", 1))
        except OSError:
            # The process is gone (WinError 87), or it shares no console with us so the event cannot be
            # generated: either way the next step of the plan terminates the whole tree.
            pass
        return
    sig = {"term": signal.SIGTERM, "quit": getattr(signal, "SIGQUIT", signal.SIGTERM)}.get(action)
    if sig is None:
        raise ValueError(f"stop action {action!r} does not exist on POSIX; use 'term' or 'quit'")
    try:
        kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    what: str,
    interval: float = defaults.POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> object:
    """Poll ``condition`` until it returns a truthy value; raise ``TimeoutError`` naming ``what``."""
    deadline = clock() + timeout
    while True:
        value = condition()
        if value:
            return value
        if clock() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        sleep(interval)


def belongs_to_run(marker: str | None, run_id: str) -> bool:
    """Whether a process's run marker is ``run_id`` or a part of it: a run split over pytest-xdist
    workers gives each worker the run id ``<run_id>.<worker>`` (``bench.pytest_plugin.bench_run_id``)."""
    return marker is not None and (marker == run_id or marker.startswith(f"{run_id}."))


def harness_processes(run_id: str) -> list[psutil.Process]:
    """Processes on this machine that carry ``run_id`` (or a part of it) in their environment (leak
    checks)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if belongs_to_run(proc.environ().get(defaults.RUN_MARKER_ENV), run_id) and _running(proc):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def reap_run(run_id: str) -> list[int]:
    """Kill every process carrying ``run_id`` and wait for it: the last resort after a harness run that
    was itself killed (its own cleanup never ran). Returns the pids it found."""
    found = harness_processes(run_id)
    for proc in found:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(found, timeout=defaults.KILL_TIMEOUT)
    return [p.pid for p in found]
