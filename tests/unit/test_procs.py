"""bench.procs on POSIX: polling with a fake clock, stop plans, and reaping a real process tree."""

from __future__ import annotations

import signal
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
