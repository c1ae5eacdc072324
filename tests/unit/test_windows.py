"""The harness's Windows branches, exercised here by passing ``platform="win32"`` (no Windows needed).

Pure decisions (pools, start flags, stop plans, signal mapping) are checked directly. The tree stop runs
real processes on this POSIX machine under a simulated Windows stop: the CTRL_BREAK step is replaced by
what Windows does (the console's default handler ends the main process only, or the event cannot be
delivered at all), and ``os.killpg``, which Windows does not have, must never be called.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from bench import defaults, pools, procs
from bench.procs import ManagedProcess, StopStep, popen_kwargs, send_stop_signal, stop_plan, wait_for
from bench.worker import Worker, WorkerError, child_env

WIN = "win32"
CREATE_NEW_PROCESS_GROUP = 0x00000200  # winbase.h; what subprocess exposes on Windows
CTRL_BREAK_EVENT = 1  # wincon.h; signal.CTRL_BREAK_EVENT on Windows

posix_only = pytest.mark.skipif(sys.platform.startswith("win"), reason="simulates Windows on POSIX")

# -- pools -------------------------------------------------------------------------------------------


def test_windows_offers_every_pool_but_prefork():
    """The green pools are optional extras there as anywhere: offered where their packages are."""
    every = lambda _: True  # noqa: E731
    none = lambda _: False  # noqa: E731
    assert pools.available(WIN, has_module=none) == ["solo", "threads"]
    assert pools.select(None, WIN, has_module=none) == ["solo", "threads"]
    assert pools.available(WIN, has_module=every) == ["solo", "threads", "gevent", "eventlet"]
    assert pools.available("linux", has_module=every) == list(defaults.POOLS_ALL)


def test_prefork_on_windows_is_refused_with_the_reason_and_the_way_out():
    info = pools.support("prefork", WIN)
    assert not info.available
    assert "not enough values to unpack" in info.reason  # the error users meet at task time
    assert "--pool solo" in info.reason and "--pool threads" in info.reason
    assert "FORKED_BY_MULTIPROCESSING" in info.reason
    with pytest.raises(ValueError, match=r"pool 'prefork' is unavailable here: prefork is not supported"):
        pools.select(["solo", "prefork"], WIN)


@pytest.mark.parametrize("platform", ["win32", "win-amd64"])
def test_every_windows_spelling_is_windows(platform):
    assert not pools.support("prefork", platform).available
    assert procs.is_windows(platform)


# -- starting a child ----------------------------------------------------------------------------------


def test_windows_children_get_a_console_process_group_of_their_own():
    assert popen_kwargs(WIN) == {"creationflags": CREATE_NEW_PROCESS_GROUP}
    assert popen_kwargs("linux") == {"start_new_session": True}


def test_start_passes_the_windows_flags_to_popen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seen: dict[str, object] = {}

    class FakePopen:
        pid = 4242

        def __init__(self, argv: list[str], **kwargs: object) -> None:
            seen.update(kwargs, argv=argv)

    monkeypatch.setattr(procs.subprocess, "Popen", FakePopen)
    proc = ManagedProcess(["celery", "worker"], name="w", log_path=tmp_path / "w.log", platform=WIN)
    proc.start()
    try:
        assert seen["creationflags"] == CREATE_NEW_PROCESS_GROUP
        assert "start_new_session" not in seen
        assert seen["stdin"] is subprocess.DEVNULL
    finally:
        with procs._LIVE_LOCK:
            procs._LIVE.discard(proc)  # the fake never ran: nothing to reap


def test_child_env_joins_pythonpath_with_the_platform_separator(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(os, "pathsep", ";")
    monkeypatch.setenv("PYTHONPATH", r"C:\user\lib")
    env = child_env("redis://127.0.0.1:1/0")
    first, second = env["PYTHONPATH"].split(";")
    assert Path(first) == Path(__file__).resolve().parents[2]  # -A tasks importable from the repo root
    assert second == r"C:\user\lib"


# -- stopping -----------------------------------------------------------------------------------------


def test_windows_stop_plan_is_ctrl_break_then_terminate_the_tree():
    assert stop_plan(warm=3.0, cold=2.0, platform=WIN) == [
        StopStep("ctrl_break", 3.0),
        StopStep("kill_tree", defaults.KILL_TIMEOUT),
    ]  # no cold step: Windows has no SIGQUIT
    assert stop_plan(warm=3.0, cold=None, platform=WIN) == stop_plan(warm=3.0, cold=2.0, platform=WIN)


def test_ctrl_break_goes_to_the_process_group():
    sent: list[tuple[int, int]] = []
    send_stop_signal(321, "ctrl_break", platform=WIN, kill=lambda pid, sig: sent.append((pid, sig)))
    assert sent == [(321, getattr(signal, "CTRL_BREAK_EVENT", CTRL_BREAK_EVENT))]


@pytest.mark.parametrize("action", ["term", "quit"])
def test_posix_actions_do_not_exist_on_windows(action):
    expected = f"stop action '{action}' does not exist on Windows; use 'ctrl_break'"
    with pytest.raises(ValueError, match=expected):
        send_stop_signal(321, action, platform=WIN, kill=lambda pid, sig: None)


def test_undeliverable_ctrl_break_is_not_an_error():
    def no_console(pid: int, sig: int) -> None:
        raise OSError(87, "The parameter is incorrect")  # what os.kill raises for a gone process

    send_stop_signal(321, "ctrl_break", platform=WIN, kill=no_console)  # must not raise


def test_worker_refuses_prefork_on_windows_before_starting_anything():
    with pytest.raises(WorkerError, match="prefork is not supported on Windows"):
        Worker("redis://127.0.0.1:1/0", pool="prefork", platform=WIN)
    worker = Worker("redis://127.0.0.1:1/0", pool="threads", platform=WIN)
    assert worker.process is None
    assert "--pool=threads" in worker.argv()


# -- the whole tree, stopped the Windows way -----------------------------------------------------------

_TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""


@pytest.fixture
def windows_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real parent + child, owned by a ManagedProcess that believes it runs on Windows."""

    def forbidden_killpg(pid: int, sig: int) -> None:
        raise AssertionError("os.killpg does not exist on Windows: kill the tree process by process")

    started: list[ManagedProcess] = []

    def start(stop_signal: Callable[[int], None]) -> tuple[ManagedProcess, int]:
        # POSIX cannot take Windows' creationflags; the flags themselves are checked above.
        monkeypatch.setattr(procs, "popen_kwargs", lambda platform=None: {"start_new_session": True})
        monkeypatch.setattr(os, "killpg", forbidden_killpg)

        def simulated(pid: int, action: str, *, platform: str | None = None) -> None:
            assert (action, platform) == ("ctrl_break", WIN)
            send_stop_signal(pid, action, platform=platform, kill=lambda p, s: stop_signal(p))

        monkeypatch.setattr(procs, "send_stop_signal", simulated)
        pidfile = tmp_path / "child.pid"
        argv = [sys.executable, "-c", _TREE, str(pidfile)]
        proc = ManagedProcess(argv, name="tree", log_path=tmp_path / "tree.log", platform=WIN).start()
        started.append(proc)
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=30, what="the child to start")
        return proc, int(pidfile.read_text())

    yield start
    monkeypatch.undo()  # the real killpg again, for the safety net below
    for proc in started:
        proc.kill_tree()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@posix_only
def test_ctrl_break_ends_the_main_process_and_the_orphan_is_terminated(windows_tree):
    # Windows' default console handler ends the process that gets CTRL_BREAK; its child lives on.
    proc, child = windows_tree(lambda pid: os.kill(pid, signal.SIGKILL))
    code = proc.stop(warm=defaults.WARM_STOP_TIMEOUT)
    assert code is not None and not proc.alive()
    wait_for(lambda: _gone(child), timeout=defaults.KILL_TIMEOUT, what=f"orphaned child {child} to be reaped")
    assert proc not in procs.live_processes()


@posix_only
def test_undeliverable_ctrl_break_still_terminates_the_whole_tree(windows_tree):
    def no_console(pid: int) -> None:
        raise OSError(6, "The handle is invalid")  # GenerateConsoleCtrlEvent without a shared console

    proc, child = windows_tree(no_console)
    proc.stop(warm=0.5)  # the bounded warm wait runs out, then the tree is terminated
    assert not proc.alive()
    wait_for(lambda: _gone(child), timeout=defaults.KILL_TIMEOUT, what=f"child {child} to be terminated")
    assert proc not in procs.live_processes()
