"""What a killed run left behind, found and removed by the next run.

A harness killed with SIGKILL runs none of its own cleanup. On Linux its children die with it
(``PR_SET_PDEATHSIG``, :mod:`bench.procs`), but its ``celery-bench-*`` temp dirs stay; on other platforms
its children stay too. Every child carries the run id and its owner (pid and start time of the harness
process that started it) in its environment, and every temp dir an owner file. The next
``python -m bench run`` or pytest session calls :func:`clean`: it removes what belongs to an owner that
no longer runs and reports it in one line (:func:`summary`). Whatever belongs to an owner that still runs
(another harness on this machine), or carries no marker (started by something else, or by an older
harness), is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import defaults
from bench.procs import Owner, owner_alive


@dataclass(frozen=True)
class Marked:
    """A process (``pid``) or a temp dir (``path``) carrying a run id and the owner that made it."""

    run: str
    owner: Owner
    pid: int | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Leftovers:
    """What killed runs left: processes, temp dirs, and the ids of those runs."""

    pids: tuple[int, ...] = ()
    dirs: tuple[Path, ...] = ()
    runs: tuple[str, ...] = ()


def stale(found: Iterable[Marked], *, alive: Callable[[Owner], bool]) -> Leftovers:
    """The part of ``found`` whose owner is gone (``alive`` is asked once per owner)."""
    verdicts: dict[Owner, bool] = {}
    dead = []
    for item in found:
        if item.owner not in verdicts:
            verdicts[item.owner] = alive(item.owner)
        if not verdicts[item.owner]:
            dead.append(item)
    return Leftovers(
        pids=tuple(sorted({m.pid for m in dead if m.pid is not None})),
        dirs=tuple(sorted({m.path for m in dead if m.path is not None})),
        runs=tuple(sorted({m.run for m in dead})),
    )


def summary(left: Leftovers) -> str | None:
    """One line for stderr, or None when nothing was left."""
    if not (left.pids or left.dirs):
        return None
    procs = f"{len(left.pids)} process{'es' if len(left.pids) != 1 else ''}"
    dirs = f"{len(left.dirs)} temp dir{'s' if len(left.dirs) != 1 else ''}"
    return f"removed {procs} and {dirs} left by killed run(s) {', '.join(left.runs)}"


def marked_in(environ: dict[str, str]) -> tuple[str, Owner] | None:
    """The run id and owner in a process environment, or None if it lacks either marker."""
    run = environ.get(defaults.RUN_MARKER_ENV)
    owner = Owner.parse(environ.get(defaults.OWNER_MARKER_ENV))
    return (run, owner) if run and owner else None


def _pid_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def marked_processes() -> list[tuple[Marked, psutil.Process]]:
    """Live processes carrying both markers, in this pid namespace (a container's pids mean other
    processes), never this process or its ancestors (a harness started by a killed one)."""
    ours = _pid_namespace("self")
    spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in spared or (ours is not None and _pid_namespace(proc.pid) != ours):
            continue
        try:
            marks = marked_in(proc.environ())
            if marks and proc.status() != psutil.STATUS_ZOMBIE:
                found.append((Marked(run=marks[0], owner=marks[1], pid=proc.pid), proc))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def marked_dirs(tmp: Path) -> list[Marked]:
    """``celery-bench-*`` dirs in ``tmp`` with a readable owner file (one still being made has none yet)."""
    found = []
    for path in tmp.glob(f"{defaults.TEMP_PREFIX}*"):
        try:
            doc = json.loads((path / defaults.OWNER_FILE).read_text())
            owner = Owner.parse(doc.get("owner"))
            run = str(doc.get("run") or "")
        except (OSError, ValueError, AttributeError):
            continue
        if owner is not None and run:
            found.append(Marked(run=run, owner=owner, path=path))
    return found


def clean(tmp: Path | None = None) -> Leftovers:
    """Kill the processes and remove the temp dirs that killed runs left (processes first: a stale
    ``redis-server`` writes in its dir)."""
    tmp = tmp if tmp is not None else Path(tempfile.gettempdir())
    processes = marked_processes()
    handles = {marked.pid: proc for marked, proc in processes}
    left = stale([*(marked for marked, _ in processes), *marked_dirs(tmp)], alive=owner_alive)
    doomed = [handles[pid] for pid in left.pids]
    for proc in doomed:
        try:
            proc.kill()  # psutil checks the pid still names the process it found (no reuse)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(doomed, timeout=defaults.KILL_TIMEOUT)
    for path in left.dirs:
        shutil.rmtree(path, ignore_errors=True)
    return left
