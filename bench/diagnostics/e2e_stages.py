"""Open-loop rounds as the main job runs them, every task stamped at each stage; the slowest explained.

    .venv/bin/python bench/diagnostics/e2e_stages.py rabbitmq solo 1 5            # 100/s x 2 s, 5 rounds
    .venv/bin/python bench/diagnostics/e2e_stages.py rabbitmq solo 1 5 2000 0.1   # bursts: 200 at 2,000/s
    STAGES_SET='{"worker_prefetch_multiplier": 64}' .venv/bin/python bench/diagnostics/e2e_stages.py ...

A private Redis (results) and, for ``rabbitmq``, a private node; one worker of the pool, switched onto the
queue per round as ``bench.scenarios`` does (after one 200-task drain). Stages per task: intended, sent,
publish returned (producer), received / prerun (worker signals, ``stage_stamps.py``), body start (the
``stamp`` probe's result), result seen (the harness's collector). Prints p50/p99, the worker's receive
gaps over 0.3 s within a round, and the slowest tasks stage by stage; writes every row to a JSON file.
Used for docs/benchmarks.md, "The open-loop tail on RabbitMQ with a solo worker".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import broker as redis_broker
from bench import loadgen, procs, stats
from bench.brokers import rabbitmq
from bench.config import PROBES_MODULE
from bench.scenarios import _Cell
from bench.worker import Worker, control_app

HERE = Path(__file__).resolve().parent
STAGES = ("intended", "actual", "returned", "recv", "prerun", "start", "seen")
STEPS = list(zip(STAGES, STAGES[1:], strict=False))


def one_round(cell: _Cell, producer: loadgen.Client, prefix: str, rate: float, count: int) -> list[dict]:
    """One open-loop round; a row of stage times per task."""
    returned: dict[str, float] = {}

    def send(task_id: str) -> None:
        producer.send(loadgen.STAMP, task_id)
        returned[task_id] = time.time()

    generator = loadgen.OpenLoop(send, rate=rate, count=count)
    with loadgen.ResultCollector(cell.conn, prefix) as collector, cell.consuming():
        sent = generator.run(loadgen.task_ids(prefix, count))
        procs.wait_for(lambda: collector.finished(count), timeout=60, what=f"results of {prefix}")
    outcomes = collector.outcomes()
    worker = {
        kind: {k.decode(): float(v) for k, v in cell.conn.hgetall(f"stages:{kind}").items()}
        for kind in ("recv", "prerun", "postrun")
    }
    rows = []
    for s in sent:
        outcome = outcomes.get(s.task_id)
        row: dict[str, Any] = {"i": s.index, "intended": s.intended, "actual": s.actual}
        row |= {"returned": returned[s.task_id], "seen": outcome.seen if outcome else None}
        row |= {"start": float(outcome.result) if outcome else None}
        row |= {kind: worker[kind].get(s.task_id) for kind in worker}
        rows.append(row)
    return rows


def run(kind: str, pool: str, concurrency: int, rounds: int, rate: float, seconds: float) -> list[dict]:
    settings = json.loads(os.environ.get("STAGES_SET", "{}"))
    out: list[dict] = []
    with redis_broker.private_redis() as backend:
        node = rabbitmq.private_rabbitmq().start() if kind == "rabbitmq" else None
        try:
            url = node.url if node else backend.url
            queue = f"stages.{int(time.time())}"
            worker = Worker(
                url, pool=pool, concurrency=concurrency, queues=(f"{queue}.idle",), backend_url=backend.url,
                include=(PROBES_MODULE, "stage_stamps"), env={"PYTHONPATH": str(HERE)},
                loglevel="WARNING", name=f"stages-{pool}", settings=settings,
            )  # fmt: skip
            control = control_app(url)
            cell = _Cell(backend.client(), queue, f"stages-{pool}", pool, control, worker)
            with worker, loadgen.Client(url, queue, backend=False) as producer:
                cell.drain_round(producer, 200)
                for r in range(rounds):
                    rows = one_round(cell, producer, f"stages-{pool}-e2e-{r}-", rate, round(rate * seconds))
                    out += [{"round": r, **row} for row in rows]
            control.close()
        finally:
            if node is not None:
                node.stop()
    return out


def report(rows: list[dict], top: int = 12) -> None:
    lat = [(r["start"] - r["intended"]) * 1e3 for r in rows if r["start"]]
    gaps = []
    for r in sorted({row["round"] for row in rows}):
        recv = sorted(x["recv"] for x in rows if x["round"] == r and x["recv"])
        gaps += [round(b - a, 2) for a, b in zip(recv, recv[1:], strict=False) if b - a > 0.3]
    p50, p99 = stats.quantile(lat, 0.5), stats.quantile(lat, 0.99)
    print(f"n {len(lat)} p50 {p50:.2f} p99 {p99:.2f} max {max(lat):.1f} ms; receive gaps > 0.3 s: {gaps}")
    print("round     i" + "".join(f"{a[:6]:>7}->{b[:6]:<6}" for a, b in STEPS) + "  (ms)")
    for r in sorted(rows, key=lambda r: -(r["start"] or 1e12) + r["intended"])[:top]:
        cells = [(r[b] - r[a]) * 1e3 if r[a] and r[b] else float("nan") for a, b in STEPS]
        print(f"{r['round']:5d} {r['i']:5d}" + "".join(f"{c:15.2f}" for c in cells))


def main(argv: list[str]) -> None:
    kind, pool, concurrency, rounds = argv[0], argv[1], int(argv[2]), int(argv[3])
    rate = float(argv[4]) if len(argv) > 4 else 100.0
    seconds = float(argv[5]) if len(argv) > 5 else 2.0
    rows = run(kind, pool, concurrency, rounds, rate, seconds)
    path = Path(f"stages-{kind}-{pool}{concurrency}-{int(time.time())}.json")
    path.write_text(json.dumps(rows))
    print(f"wrote {path}")
    report(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
