"""``python -m bench sweep`` end to end: two cells from a matrix file, a private Redis, real workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import isolated, sweep
from bench.procs import reap_run
from tests.integration.jobs import ROOT, job_env, leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform.startswith("win"), reason="needs a private redis-server"),
]

SWEEP_TIMEOUT = 400.0
"""Seconds a two-cell, one-round sweep may take here (about a minute a cell on 2 loaded cores)."""

MATRIX = """
[[cell]]
name = "default"

[[cell]]
name = "prefetch 1"
pool = "prefork"
concurrency = 2
producer_reuse = true
hiredis = false
set = { worker_prefetch_multiplier = 1, task_compression = "zlib" }
"""


def test_a_two_cell_sweep_measures_both_and_advises(tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text(MATRIX)
    out = tmp_path / "out" / "sweep.json"
    env, run_id = job_env(tmp_path, "sweep")
    argv = [sys.executable, "-m", "bench", "sweep", "--quick", "--matrix", str(matrix), "--rounds", "1"]
    argv += ["--pool", "solo", "--json", str(out)]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
        procs, dirs = leftovers(tmp_path, run_id)
    finally:
        reap_run(run_id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert procs == [] and dirs == [], (procs, dirs)

    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["cells"]] == ["default", "prefetch 1"]
    for objective in sweep.OBJECTIVES:
        assert set(doc["scores"]) == {"default", "prefetch 1"}
        assert all(doc["scores"][cell][objective.name] is not None for cell in doc["scores"])
        assert (
            all(doc["scores"][cell][objective.name] > 0 for cell in doc["scores"]) or objective.name == "lost"
        )
        assert objective.title.upper() in done.stdout
    settings = {r["cell"]: r["config"]["settings"] for r in doc["results"]}
    assert settings == {
        "default": {},
        "prefetch 1": {"task_compression": "zlib", "worker_prefetch_multiplier": 1},
    }
    reuse = {r["cell"]: r["config"].get("producer_reuse", False) for r in doc["results"]}
    assert reuse == {"default": False, "prefetch 1": True}
    assert doc["pareto_front"] and len(doc["recommendations"]) == len(sweep.OBJECTIVES)
    assert "PARETO FRONT" in done.stdout and "RECOMMENDATIONS" in done.stdout
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert 'id="objective-lost"' in out.with_suffix(".html").read_text(encoding="utf-8")
    # the worker really ran with the cell's prefetch: every row of the cell measured, none failed
    rows = {(r["cell"], r["scenario"]) for r in doc["results"]}
    assert ("prefetch 1", "drain") in rows and ("prefetch 1", "e2e.start") in rows

    # each cell's delivery probe: a worker of the cell's pool SIGKILLed mid-run, counted from the ledger
    for cell in ("default", "prefetch 1"):
        (probe,) = doc["delivery"][cell]
        assert probe["enqueued"] == 16 and probe["settled"], probe
        assert probe["lost"] <= probe["gone_at_kill"], probe  # only what the broker no longer had is lost
        assert probe["worker_parsers"], probe  # each worker process said which redis-py parser it used
        assert doc["scores"][cell]["lost"] == probe["lost"]
    # solo acknowledges after the body (celery#3430): the task running at the kill comes back, runs again
    assert doc["delivery"]["default"][0]["lost"] == 0 and doc["delivery"]["default"][0]["duplicated"] >= 1
    assert "LOST ON KILL" in done.stdout
    # hiredis: as installed in the default cell, hidden from the other's producers and workers alike
    here = "_HiredisParser" if isolated.hiredis_installed() else "_RESP2Parser"
    assert doc["producer_parsers"] == {"default": [here], "prefetch 1": ["_RESP2Parser"]}
    assert doc["delivery"]["default"][0]["worker_parsers"] == [here]
    assert doc["delivery"]["prefetch 1"][0]["worker_parsers"] == ["_RESP2Parser"]
