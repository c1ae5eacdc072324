"""The main job, ``python -m bench run``, as a user runs it: a real private Redis and real workers.

One ``--quick`` run over the session's pools (``--pool``; default all) on Redis checks the report end to
end (every figure for every pool, the JSON schema, plots) and that nothing is left behind; one small run
on a private RabbitMQ node (``--broker rabbitmq``; skipped, with the reason, where ``rabbitmq-server`` is
absent) checks its rows, their AMQP floor and the broker's context; Ctrl-C in the middle of a pool's
benchmark exits 130 with every process reaped; bad input exits 2 with one line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import amqp
import jsonschema
import kombu
import pytest

from bench import brokers, defaults, lanes, report, stats
from bench.brokers.rabbitmq import private_rabbitmq
from bench.procs import harness_processes, reap_run, wait_for
from bench.pytest_plugin import selected_pools
from tests.integration.jobs import ROOT, interruptible, job_env, leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals; needs a private redis-server"),
]

QUICK_TIMEOUT = 480.0
"""Seconds the --quick run may take here: its adaptive steps are bounded by ``defaults.QUICK_BUDGET_S``
(~3 min for five pools on a quiet 2-core machine), but each step's minimum rounds run even when a busy
machine makes them overrun the budget."""

EXIT_TIMEOUT = 60.0
"""Seconds the job has to exit after Ctrl-C."""


def test_quick_run_reports_every_figure_for_every_pool(request, tmp_path):
    pools = selected_pools(request.config)
    out = tmp_path / "out" / "bench.json"
    env, run_id = job_env(tmp_path)
    argv = [sys.executable, "-m", "bench", "run", "--quick", "--no-reliability", "--broker", "redis"]
    argv += ["--json", str(out)]
    for pool in pools:
        argv += ["--pool", pool]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=QUICK_TIMEOUT)
        procs, dirs = leftovers(tmp_path, run_id)  # looked at before the last-resort reaping below
    finally:
        reap_run(run_id)  # a timed-out job is SIGKILLed by subprocess.run: its children would survive
    assert done.returncode == 0, done.stderr[-3000:]

    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)
    assert doc["context"]["pools"].keys() == set(pools) and doc["context"]["quick"] is True
    assert doc["reliability"] is None
    assert {r["broker"] for r in doc["results"]} == {"redis"}
    rows = {(r["scenario"], r["pool"]): r for r in doc["results"]}
    producer = {"enqueue.floor", "enqueue.apply_async", "enqueue.delay"}
    assert producer <= {s for s, p in rows if p is None}
    assert {s for s, p in rows if s.startswith("producer.")} >= {"producer.1-thread"}
    assert len([s for s, p in rows if s.startswith("producer.")]) == 3
    for pool in pools:
        assert {s for s, p in rows if p == pool} == {"drain", "drain.io", "e2e.start", "e2e.result"}, pool
        io = rows[("drain.io", pool)]
        # No pool can beat its slots waiting side by side (io_wait sleeps IO_WAIT_S): the rate of every
        # round stays under concurrency / IO_WAIT_S, so a task that did not wait would show here.
        assert io["max"] <= io["concurrency"] / defaults.IO_WAIT_S, io
        assert io["rounds"] >= doc["context"]["plan"]["io_rounds"]
        if pool in defaults.GREEN_POOLS:  # what green threads are for: the waits overlap
            assert io["median"] > 1 / defaults.IO_WAIT_S, io
        start, result = rows[("e2e.start", pool)], rows[("e2e.result", pool)]
        # Several open-loop rounds, each of rate x seconds arrivals; at least the plan's minimum of them.
        per_round = doc["context"]["plan"]["e2e_rate"] * doc["context"]["plan"]["e2e_seconds"]
        assert start["samples"] == result["samples"] == start["rounds"] * per_round
        assert start["rounds"] >= doc["context"]["plan"]["e2e_rounds"]
        assert [p["statistic"] for p in start["precision"]] == ["p50", "p99"]
        assert all(p["rounds"] == start["rounds"] for p in start["precision"])
        # Per task the result is published after the task started, so the distributions are ordered.
        assert result["median"] >= start["median"] and result["max"] >= start["max"]
    # The floor is measured in the same run, on the same Redis, with a message of the same size:
    # a Celery enqueue does strictly more work than one LPUSH.
    assert rows[("enqueue.delay", None)]["floor_ratio"] > 1
    assert rows[("enqueue.apply_async", None)]["floor_ratio"] > 1
    assert rows[("enqueue.floor", None)]["floor_ratio"] == 1
    # Every headline says how precisely its rounds pinned it, and a missed target is a warning.
    for row in doc["results"]:
        for p in row["precision"]:
            assert p["low"] <= p["estimate"] <= p["high"] and p["reached"] == (p["half_width"] <= p["target"])
            if not p["reached"]:
                assert any(w.startswith(row["scenario"]) and "target" in w for w in doc["warnings"])
    assert doc["context"]["message_bytes"] > 100
    assert doc["context"]["broker_server"].split(".")[0].isdigit()  # INFO redis_version of the real broker
    assert [b["kind"] for b in doc["context"]["brokers"]] == ["redis"]
    control = doc["context"]["machine_control"]  # bench.machine, at the start and the end of the run
    assert control.keys() == {"cpu_us", "ipc_us"}
    assert all(len(v) == 2 and min(v) > 0 for v in control.values())
    assert (
        doc["context"]["result_backend"]["url"] == doc["context"]["broker"]
    )  # one Redis: broker and results
    assert doc["fidelity"]["capacity_ratio"] is not None

    table = done.stdout
    for scenario, pool in rows:
        assert any(
            line.startswith(scenario) and (pool is None or pool in line) for line in table.splitlines()
        )
    assert "per-call timing vs a bare loop, median of" in table and "open-loop generator capacity" in table
    assert "machine control: cpu loop" in table
    assert doc["fidelity"]["producer_mode"] == "producer.1-thread"  # what the open-loop generator is
    low, high = doc["fidelity"]["timing_overhead_interval"]
    assert low <= doc["fidelity"]["timing_overhead"] <= high
    # 200 open-loop samples per round (--quick), 3-8 rounds: below 1,000, p99.9 would be the max, so it is
    # not given; from 1,000 pooled samples (5 rounds and more) it is.
    for key in ((s, pool) for s in ("e2e.start", "e2e.result") for pool in pools):
        assert (rows[key]["p999"] is None) == (rows[key]["samples"] < stats.P999_MIN_SAMPLES), rows[key]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in out.with_suffix(".html").read_text()
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert progress and progress[-1].startswith(f"[{len(progress):>2}/{len(progress)}]")
    assert procs == [] and dirs == [], (procs, dirs)


RABBITMQ = brokers.support("rabbitmq")


@pytest.mark.skipif(not RABBITMQ.available, reason=RABBITMQ.reason)
def test_a_run_on_rabbitmq_reports_its_rows_against_the_amqp_floor(tmp_path):
    out = tmp_path / "out" / "bench.json"
    env, run_id = job_env(tmp_path)
    argv = [sys.executable, "-m", "bench", "run", "--broker", "rabbitmq", "--pool", "solo", "--quick",
            "--no-reliability", "--no-plots", "--json", str(out)]  # fmt: skip
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=QUICK_TIMEOUT)
        procs, dirs = leftovers(tmp_path, run_id)  # looked at before the last-resort reaping below
    finally:
        reap_run(run_id)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)
    assert {r["broker"] for r in doc["results"]} == {"rabbitmq"}
    rows = {(r["scenario"], r["pool"]): r for r in doc["results"]}
    assert {s for s, p in rows if p == "solo"} == {"drain", "drain.io", "e2e.start", "e2e.result"}
    assert rows[("enqueue.floor", None)]["title"].startswith("py-amqp basic_publish")
    assert rows[("enqueue.floor", None)]["floor_ratio"] == 1
    # Same run, same message (Celery's body and headers): Celery's enqueue does more than one publish.
    assert rows[("enqueue.apply_async", None)]["floor_ratio"] > 1
    assert rows[("enqueue.delay", None)]["floor_ratio"] > 1
    [rabbit] = doc["context"]["brokers"]
    assert rabbit["kind"] == "rabbitmq" and rabbit["private"] is True
    assert rabbit["server_version"].split(".")[0].isdigit()  # from the AMQP connection's server_properties
    assert rabbit["url"].startswith("amqp://bench-") and ":***@127.0.0.1:" in rabbit["url"]
    assert len(rabbit["start_seconds"]) == len(rabbit["stop_seconds"]) == 1
    assert (
        rabbit["message_bytes"] > 0
        and f" {rabbit['message_bytes']} B " in rows[("enqueue.floor", None)]["title"]
    )
    backend = doc["context"]["result_backend"]
    assert backend["kind"] == "redis" and backend["private"] is True and backend["url"].startswith("redis://")
    assert "rabbitmq" in done.stdout and "result backend: Redis" in done.stdout
    assert "enqueue on rabbitmq vs its own floor" in done.stdout
    assert procs == [] and dirs == [], (procs, dirs)


def _exists(url: str, name: str, *, exchange: bool = False) -> bool:
    """Whether queue (or exchange) ``name`` exists on the AMQP broker at ``url`` (a passive declare)."""
    with kombu.Connection(url) as conn, conn.channel() as channel:
        try:
            if exchange:
                channel.exchange_declare(exchange=name, type="direct", passive=True)
            else:
                channel.queue_declare(queue=name, passive=True)
        except amqp.exceptions.NotFound:
            return False
    return True


@pytest.mark.skipif(not RABBITMQ.available, reason=RABBITMQ.reason)
def test_a_run_on_the_users_rabbitmq_leaves_it_as_it_was(tmp_path):
    """``--broker-url amqp://...``: the user's broker is measured, never stopped, and what the run created
    on it (queues, and the exchanges Celery declared for them) is removed; the results went to a Redis."""
    out = tmp_path / "users.json"
    env, run_id = job_env(tmp_path)
    with private_rabbitmq() as users:
        argv = [sys.executable, "-m", "bench", "run", "--broker-url", users.url, "--pool", "solo", "--quick",
                "--no-reliability", "--no-plots", "--samples", "50", "--rounds", "2", "--drain-tasks", "50",
                "--rate", "20", "--duration", "1", "--json", str(out)]  # fmt: skip
        try:
            done = subprocess.run(
                argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=QUICK_TIMEOUT
            )
            procs, dirs = leftovers(tmp_path, run_id)
        finally:
            reap_run(run_id)
        assert done.returncode == 0, done.stderr[-3000:]
        assert users.process is not None and users.process.alive()  # never stopped
        doc = json.loads(out.read_text())
        queue = doc["context"]["queue"]
        assert [(q, _exists(users.url, q)) for q in lanes.created_names(queue)] == [
            (q, False) for q in lanes.created_names(queue)
        ]
        assert not any(_exists(users.url, q, exchange=True) for q in lanes.created_names(queue))
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)
    assert {r["broker"] for r in doc["results"]} == {"rabbitmq"}
    [broker] = doc["context"]["brokers"]
    assert (
        broker["private"] is False and broker["start_seconds"] == [] and users.password not in out.read_text()
    )
    assert doc["context"]["result_backend"]["private"] is True  # a private Redis took the results
    assert users.password not in done.stdout + done.stderr
    assert procs == [] and dirs == [], (procs, dirs)


def test_ctrl_c_mid_run_reaps_everything_and_exits_130(tmp_path):
    env, run_id = job_env(tmp_path)
    argv = [sys.executable, "-m", "bench", "run", "--quick", "--no-reliability", "--pool", "solo",
            "--no-plots", "--json", str(tmp_path / "r.json")]  # fmt: skip
    proc = subprocess.Popen(  # noqa: PLW1509 - preexec_fn only resets SIGINT (no locks, no threads)
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=interruptible,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: any("solo x1: drain" in line for line in lines) or proc.poll() is not None,
            timeout=QUICK_TIMEOUT,
            what="the job to reach the solo drain",
        )
        assert proc.poll() is None, "".join(lines)
        assert harness_processes(run_id), "the worker and the broker should be running now"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=EXIT_TIMEOUT) == 130, "".join(lines)
        procs, dirs = leftovers(tmp_path, run_id)  # looked at before the last-resort reaping below
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reap_run(run_id)
        reader.join(5)
        proc.stderr.close()
    assert "interrupted" in lines[-1]
    assert not (tmp_path / "r.json").exists()
    assert procs == [] and dirs == [], (procs, dirs)


def test_bad_input_exits_2_with_one_line(tmp_path):
    env, run_id = job_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--pool", "greenlet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "unknown pool 'greenlet'" in done.stderr
    assert leftovers(tmp_path, run_id) == ([], [])
