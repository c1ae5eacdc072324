"""How much a bare Redis round trip moves between fresh processes on this machine, and with what.

    .venv/bin/python bench/diagnostics/roundtrip_drift.py            # 6 alternations of every variant
    .venv/bin/python bench/diagnostics/roundtrip_drift.py 10 idle spin

A private ``redis-server``; each measurement is a fresh Python process timing ``LPUSH`` of a 960-byte
message (the seed's Celery message size) in 10 rounds x 300 calls, and its value the median of the round
medians: no Celery, no kombu. The variants, alternated so that a drift of the machine hits all alike:

* ``idle``: nothing else running;
* ``spin``: a ``nice 19`` busy loop per core, keeping the cores out of their idle states;
* ``same`` / ``split``: producer and server pinned to one core, or to different cores (Linux).

Prints per variant the median, the CV across processes and the values. Used for docs/benchmarks.md,
"Why the round-trip medians do not repeat on this machine".
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from bench.broker import private_redis

CHILD = r"""
import os, statistics, sys, time, redis
if sys.argv[2] != "-":
    os.sched_setaffinity(0, {int(sys.argv[2])})
r, msg, meds = redis.Redis.from_url(sys.argv[1]), b"x" * 960, []
for _ in range(10):
    ts = []
    for _ in range(300):
        t = time.perf_counter(); r.lpush("k", msg); ts.append(time.perf_counter() - t)
    r.delete("k"); meds.append(statistics.median(ts))
print(statistics.median(meds) * 1e6)
"""
SPIN = "import os, sys\nos.nice(19)\nwhile os.getppid() == int(sys.argv[1]):\n    pass\n"
"""A busy loop at the lowest priority that ends when its parent does (even a SIGKILLed one)."""
PLACEMENT = {"idle": (None, "-"), "spin": (None, "-"), "same": ({0}, "0"), "split": ({1}, "0")}


def measure(url: str, server_pid: int, variant: str) -> float:
    server_cpus, client_cpu = PLACEMENT[variant]
    os.sched_setaffinity(server_pid, server_cpus or set(range(os.cpu_count() or 1)))
    spinners = []
    if variant == "spin":
        spinners = [
            subprocess.Popen([sys.executable, "-c", SPIN, str(os.getpid())])
            for _ in range(os.cpu_count() or 1)
        ]
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, url, client_cpu], capture_output=True, text=True)
        return float(done.stdout)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main(argv: list[str]) -> None:
    times = int(argv[0]) if argv else 6
    variants = argv[1:] or list(PLACEMENT)
    values: dict[str, list[float]] = {v: [] for v in variants}
    with private_redis().start() as server:
        assert server.process is not None and server.process.popen is not None
        for _ in range(times):
            for variant in variants:
                values[variant].append(measure(server.url, server.process.popen.pid, variant))
    for variant, vs in values.items():
        cv = statistics.stdev(vs) / statistics.mean(vs) if len(vs) > 1 else 0.0
        shown = " ".join(f"{v:.0f}" for v in vs)
        print(f"{variant:6s} median {statistics.median(vs):6.1f} us  CV {cv:5.1%}  {shown}")
    print("load average", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main(sys.argv[1:])
