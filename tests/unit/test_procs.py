"""bench.procs on POSIX: polling with a fake clock, stop plans, and reaping a real process tree."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench import procs

posix_only = pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX process groups")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_returns_the_first_truthy_value():
    clock = FakeClock()
    values = iter([0, None, "ready"])
    assert (
        procs.wait_for(lambda: next(values), timeout=1, what="x", clock=clock, sleep=clock.sleep) == "ready"
    )
    assert clock.sleeps == [procs.defaults.POLL_INTERVAL] * 2


def test_wait_for_names_what_timed_out():
    clock = FakeClock()
    with pytest.raises(TimeoutError, match=r"timed out after 0.5s waiting for the moon"):
        procs.wait_for(
            lambda: False, timeout=0.5, what="the moon", interval=0.1, clock=clock, sleep=clock.sleep
        )
    assert clock.now == pytest.approx(0.5)


def test_posix_stop_plan_escalates_warm_cold_kill():
    plan = procs.stop_plan(warm=3, cold=2, platform="linux")
    assert [(s.action, s.timeout) for s in plan] == [
        ("term", 3),
        ("quit", 2),
        ("kill_tree", procs.defaults.KILL_TIMEOUT),
    ]
    assert [s.action for s in procs.stop_plan(warm=3, cold=None, platform="linux")] == ["term", "kill_tree"]


def test_posix_children_lead_their_own_group():
    assert procs.popen_kwargs("linux") == {"start_new_session": True}


def test_send_stop_signal_maps_actions_to_signals():
    sent: list[tuple[int, int]] = []
    procs.send_stop_signal(42, "term", platform="linux", kill=lambda pid, sig: sent.append((pid, sig)))
    procs.send_stop_signal(42, "quit", platform="linux", kill=lambda pid, sig: sent.append((pid, sig)))
    assert sent == [(42, signal.SIGTERM), (42, signal.SIGQUIT)]
    with pytest.raises(ValueError, match="'ctrl_break' does not exist on POSIX"):
        procs.send_stop_signal(42, "ctrl_break", platform="linux", kill=lambda pid, sig: None)


@posix_only
def test_stop_reaps_a_tree_that_ignores_sigterm(tmp_path: Path):
    # A parent that ignores SIGTERM and a grandchild that does too: only the final kill ends them.
    script = "trap '' TERM QUIT; sh -c \"trap '' TERM QUIT; sleep 300\" & sleep 300; wait"
    proc = procs.ManagedProcess(["sh", "-c", script], name="stubborn", log_path=tmp_path / "log").start()
    procs.wait_for(lambda: len(proc.descendants()) >= 2, timeout=10, what="the tree to start")
    tree = [psutil.Process(proc.pid), *proc.descendants()]
    assert proc in procs.live_processes()
    proc.stop(warm=0.2, cold=0.2)
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    assert proc not in procs.live_processes()
    assert proc.returncode() == -signal.SIGKILL


@posix_only
def test_stop_is_polite_first(tmp_path: Path):
    proc = procs.ManagedProcess(["sleep", "300"], name="sleeper", log_path=tmp_path / "log").start()
    assert proc.stop(warm=5) == -signal.SIGTERM
    proc.stop()  # idempotent


def test_missing_binary_is_a_clear_error(tmp_path: Path):
    proc = procs.ManagedProcess(["no-such-binary-xyz"], name="ghost", log_path=tmp_path / "log")
    with pytest.raises(
        FileNotFoundError, match="'no-such-binary-xyz' not found; install it or put it on PATH"
    ):
        proc.start()


def test_tempdirs_are_tracked_and_removed():
    path = procs.make_tempdir("unit")
    assert path.name.startswith(procs.defaults.TEMP_PREFIX + "unit-") and path.is_dir()
    procs.remove_tempdir(path)
    assert not path.exists()


# -- children die with the harness; who owns a child ------------------------------------------------
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def test_die_with_parent_asks_for_the_signal_and_goes_if_orphaned_already():
    calls: list[tuple[int, ...]] = []
    killed: list[tuple[int, int]] = []

    def prctl(*args: int) -> int:
        calls.append(args)
        return 0

    procs.die_with_parent(100, prctl=prctl, getppid=lambda: 100, kill=lambda *a: killed.append(a))
    assert calls == [(procs.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)] and killed == []
    procs.die_with_parent(100, prctl=prctl, getppid=lambda: 1, kill=lambda *a: killed.append(a))
    assert killed == [(procs.os.getpid(), signal.SIGKILL)]
    with pytest.raises(OSError, match="PR_SET_PDEATHSIG"):
        procs.die_with_parent(100, prctl=lambda *a: -1, getppid=lambda: 100, kill=lambda *a: None)


def test_no_parent_death_hook_off_linux():
    assert procs.parent_death_hook("win32") is None
    assert procs.parent_death_hook("darwin") is None


def test_owner_markers_round_trip_and_reject_garbage():
    owner = procs.Owner(1234, 5678.91)
    assert procs.Owner.parse(owner.marker()) == owner
    for bad in (None, "", "1234", "x:1.0", "12:abc"):
        assert procs.Owner.parse(bad) is None


class FakeProc:
    def __init__(self, started: float, status: str = psutil.STATUS_SLEEPING) -> None:
        self.started, self._status = started, status

    def create_time(self) -> float:
        return self.started

    def status(self) -> str:
        return self._status


def _lookup(entry: FakeProc | Exception | None):  # type: ignore[no-untyped-def]
    def find(pid: int) -> FakeProc:
        if entry is None:
            raise psutil.NoSuchProcess(pid)
        if isinstance(entry, Exception):
            raise entry
        return entry

    return find


def test_an_owner_is_alive_only_as_the_same_running_process():
    owner = procs.Owner(7, 100.0)
    assert procs.owner_alive(owner, lookup=_lookup(FakeProc(100.004)))
    assert not procs.owner_alive(owner, lookup=_lookup(None))  # gone
    assert not procs.owner_alive(owner, lookup=_lookup(FakeProc(250.0)))  # its pid reused since
    assert not procs.owner_alive(owner, lookup=_lookup(FakeProc(100.0, psutil.STATUS_ZOMBIE)))
    assert procs.owner_alive(owner, lookup=_lookup(psutil.AccessDenied(7)))  # cannot tell: spare it


def test_this_process_is_a_live_owner():
    assert procs.owner_alive(procs.this_owner())


def test_children_carry_the_run_id_and_their_owner(tmp_path: Path):
    proc = procs.ManagedProcess(["sleep", "300"], name="marked", log_path=tmp_path / "log").start()
    try:
        env = psutil.Process(proc.pid).environ()
        assert env[procs.defaults.RUN_MARKER_ENV] == procs.run_id()
        assert procs.Owner.parse(env[procs.defaults.OWNER_MARKER_ENV]) == procs.this_owner()
    finally:
        proc.stop()


def test_tempdirs_name_their_run_and_owner():
    path = procs.make_tempdir("unit")
    try:
        owner_file = path / procs.defaults.OWNER_FILE
        doc = procs.json.loads(owner_file.read_text())
        assert doc == {"run": procs.run_id(), "owner": procs.this_owner().marker()}
        assert owner_file.stat().st_mode & 0o777 == 0o600
    finally:
        procs.remove_tempdir(path)


def test_private_files_are_0600_even_when_they_existed(tmp_path: Path):
    path = tmp_path / "secret.conf"
    path.write_text("old")
    path.chmod(0o644)
    procs.write_private_file(path, "requirepass x\n")
    assert path.read_text() == "requirepass x\n" and path.stat().st_mode & 0o777 == 0o600


@linux_only
def test_children_die_with_the_thread_that_forked_unless_handed_to_the_long_lived_one(tmp_path: Path):
    """The parent death signal follows the thread that forked: a control child forked straight from a
    thread dies when that thread ends; a ManagedProcess started from such a thread does not."""
    from concurrent.futures import ThreadPoolExecutor

    def control() -> subprocess.Popen[bytes]:
        return subprocess.Popen(["sleep", "300"], preexec_fn=procs.parent_death_hook())

    managed = procs.ManagedProcess(["sleep", "300"], name="from-a-thread", log_path=tmp_path / "log")
    with ThreadPoolExecutor(max_workers=2) as threads:  # both threads end with the block
        raw = threads.submit(control).result()
        threads.submit(managed.start).result()
    try:
        procs.wait_for(lambda: raw.poll() is not None, timeout=5, what="the control child to die")
        assert raw.returncode == -signal.SIGKILL
        assert managed.alive(), "a ManagedProcess started from a thread died with that thread"
    finally:
        raw.kill()
        raw.wait()
        managed.stop()
