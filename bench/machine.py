"""The machine's own drift: two fixed workloads, timed at the start and at the end of each run.

A run's figures move with the machine (a neighbour's load, the CPU's clock, the scheduler's placement)
as well as with Celery, and two runs of the same commit can differ by more than a real change. These
controls measure only the machine, with nothing of Celery, kombu or a broker in them:

* ``cpu_us``: a fixed pure-Python loop (no I/O, no allocation after the first pass), the median of
  ``defaults.CONTROL_REPEATS`` timings;
* ``ipc_us``: a one-byte round trip to a child process over two pipes, the median of
  ``defaults.CONTROL_ROUND_TRIPS``: two wake-ups of a sleeping process, the skeleton of every broker call.

``bench run`` records both in the report's ``context.machine_control`` (the start and the end values);
``bench repeat`` tabulates their CV across runs beside the figures', so a figure that varied no more than
the controls is known to have varied with the machine; ``bench compare`` says when the two reports'
controls differ. pyperf answers the same question by asking for a tuned, quiet machine (``pyperf system
tune``); on a shared CI runner that is not on offer, so the harness measures the drift instead.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench import defaults

ECHO = "import os\nwhile True:\n    b = os.read(0, 1)\n    if not b:\n        break\n    os.write(1, b)\n"
"""The child of :func:`ipc_us`: echoes each byte until its stdin closes (a dead harness closes it too)."""


def _loop() -> int:
    total = 0
    for i in range(defaults.CONTROL_LOOP_ITERATIONS):
        total += i * i % 7
    return total


def cpu_us(repeats: int = defaults.CONTROL_REPEATS, clock: Callable[[], float] = time.perf_counter) -> float:
    """The median time of the fixed loop, in microseconds."""
    _loop()  # warm
    times = []
    for _ in range(repeats):
        start = clock()
        _loop()
        times.append(clock() - start)
    return statistics.median(times) * 1e6


def ipc_us(
    trips: int = defaults.CONTROL_ROUND_TRIPS, clock: Callable[[], float] = time.perf_counter
) -> float:
    """The median one-byte round trip to a child process over pipes, in microseconds."""
    child = subprocess.Popen(
        [sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    assert child.stdin is not None and child.stdout is not None
    w, r = child.stdin.fileno(), child.stdout.fileno()
    try:
        times = []
        for n in range(trips + defaults.CONTROL_WARMUP_TRIPS):
            start = clock()
            os.write(w, b"x")
            if os.read(r, 1) != b"x":
                raise RuntimeError("the machine control's echo child stopped answering")
            if n >= defaults.CONTROL_WARMUP_TRIPS:
                times.append(clock() - start)
        return statistics.median(times) * 1e6
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=defaults.CONTROL_CHILD_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def measure() -> dict[str, float]:
    """Both controls, once: ``{"cpu_us": ..., "ipc_us": ...}``."""
    return {"cpu_us": cpu_us(), "ipc_us": ipc_us()}


def merge(start: Mapping[str, float], end: Mapping[str, float]) -> dict[str, list[float]]:
    """The report's ``machine_control``: per control, ``[at the start, at the end]`` of the run."""
    return {name: [start[name], end[name]] for name in start if name in end}


def figures(context: Mapping[str, Any]) -> dict[str, float]:
    """Per control of a report, the mean of its start and end values (none for a report without them)."""
    found = context.get("machine_control") or {}
    return {f"control.{name[: -len('_us')]}": statistics.fmean(v) for name, v in found.items() if v}


def drift(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, float]:
    """Per control present in both contexts: B's value over A's (above 1: B's machine was slower)."""
    fa, fb = figures(a), figures(b)
    return {name: fb[name] / fa[name] for name in fa if name in fb and fa[name] > 0}


def text(control: Mapping[str, Sequence[float]]) -> str:
    """``machine control: cpu loop 512 / 520 us, pipe round trip 41 / 39 us (start / end of the run)``."""
    labels = {"cpu_us": "cpu loop", "ipc_us": "pipe round trip"}
    parts = [
        f"{labels.get(name, name)} {' / '.join(f'{v:.0f}' for v in values)} us"
        for name, values in control.items()
    ]
    return f"machine control: {', '.join(parts)} (start / end of the run)"
