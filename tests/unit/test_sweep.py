"""``bench sweep``: the matrix file, axes, the Pareto front, the advice, JSON and tables (no server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli, compare, isolated, sweep, tables
from bench.config import Config
from bench.faults.delivery import Delivery
from bench.sweep import Cell, Row

GOOD = """
rounds = 2

[[cell]]
name = "default"

[[cell]]
name = "prefetch 16"
set = { worker_prefetch_multiplier = 16 }

[[cell]]
name = "prefork x2"
pool = "prefork"
concurrency = 2
producer_reuse = true
set = { task_acks_late = true, task_serializer = "msgpack" }
"""


def test_a_matrix_file_gives_checked_cells():
    cells, rounds = sweep.parse_matrix(GOOD)
    assert rounds == 2
    assert [c.name for c in cells] == ["default", "prefetch 16", "prefork x2"]
    assert cells[1].settings == (("worker_prefetch_multiplier", 16),)
    assert cells[2] == Cell(
        "prefork x2", (("task_acks_late", True), ("task_serializer", "msgpack")), "prefork", 2, True
    )
    assert not cells[1].producer_reuse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[cell]\nname = 1", "not valid TOML"),
        ("speed = 1\n[[cell]]\nname = 'a'", "unknown key 'speed'"),
        ("rounds = 2", "no [[cell]] table"),
        ("[[cell]]\nset = {}", "give it a name"),
        ("[[cell]]\nname = 'a'\ncolour = 'red'", "unknown key 'colour'"),
        ("[[cell]]\nname = 'a'\nset = { worker_prefetch = 1 }", "worker_prefetch: not a Celery setting"),
        (
            "[[cell]]\nname = 'a'\nset = { worker_prefetch_multiplier = 'many' }",
            "expected a value of type int",
        ),
        ("[[cell]]\nname = 'a'\nset = { broker_url = 'redis://x' }", "--broker-url"),
        ("[[cell]]\nname = 'a'\n[[cell]]\nname = 'a'", "two cells are named 'a'"),
        ("[[cell]]\nname = 'a'\npool = 'gevent-ish'", "pool 'gevent-ish' is not available"),
        ("[[cell]]\nname = 'a'\nconcurrency = 0", "concurrency must be a positive integer"),
        ("rounds = 0\n[[cell]]\nname = 'a'", "rounds must be a positive integer"),
        ("[[cell]]\nname = 'a'\nset = 3", "set must be a table"),
        ("[[cell]]\nname = 'a'\nproducer_reuse = 'yes'", "producer_reuse must be true or false"),
    ],
)
def test_a_bad_matrix_names_the_problem_in_one_line(text, expected):
    with pytest.raises(sweep.SweepError) as raised:
        sweep.parse_matrix(text, path="m.toml")
    message = str(raised.value)
    assert expected in message and message.startswith("m.toml") and "\n" not in message


def test_axes_give_the_product_of_their_values():
    cells = sweep.axes_cells(["worker_prefetch_multiplier=1,16", "task_acks_late=true,false"])
    assert len(cells) == 4
    assert cells[0].settings == (("task_acks_late", True), ("worker_prefetch_multiplier", 1))
    assert cells[0].name == "worker_prefetch_multiplier=1 task_acks_late=true"


@pytest.mark.parametrize(("axis", "expected"), [("nope=1,2", "not a Celery setting"), ("x", "NAME=V1,V2")])
def test_a_bad_axis_is_refused(axis, expected):
    with pytest.raises(sweep.SweepError, match=expected):
        sweep.axes_cells([axis])


def test_the_builtin_matrix_is_made_of_valid_settings():
    for cell in sweep.BUILTIN:
        sweep.cell_settings(dict(cell.settings), where=cell.name)  # raises on an unknown name or type
    assert set(sweep.QUICK_CELLS) <= {c.name for c in sweep.BUILTIN}
    assert sweep.BUILTIN[0].name == sweep.BASELINE


def test_a_cell_adds_its_settings_to_the_base_configuration():
    base = Config(settings=(("result_expires", 60), ("task_acks_late", False)))
    got = sweep.cell_config(base, Cell("x", (("task_acks_late", True),), "prefork", 2), "solo")
    assert got.settings == (("result_expires", 60), ("task_acks_late", True))
    assert (got.pool, got.concurrency) == ("prefork", 2)
    assert sweep.cell_config(base, Cell("y"), "threads").pool == "threads"
    reused = sweep.cell_config(base, Cell("z", producer_reuse=True), "solo")
    assert reused.producer_reuse and reused.to_json()["producer_reuse"] is True
    assert "producer_reuse" not in got.to_json() and not reused.is_default


def test_a_reused_producer_is_another_configuration_for_compare():
    plain, reused = Config().to_json(), Config(producer_reuse=True).to_json()
    assert compare.config_key(plain) != compare.config_key(reused)
    assert tables.settings_label(compare.config_key(reused)) == "tasks; producer reused"


# -- conclusions over synthetic rows ------------------------------------------------------------------
FIGURES = {  # cell: enqueue us, producer tasks/s, drain tasks/s, e2e p99 ms, lost on kill
    "default": (500.0, 2000.0, 1000.0, 5.0, 0),
    "fast drain": (510.0, 1980.0, 2000.0, 9.0, 4),
    "fast enqueue": (300.0, 3000.0, 990.0, 5.1, 0),
    "worse": (520.0, 1900.0, 900.0, 6.0, 1),
}
MEASURED = [o for o in sweep.OBJECTIVES if o.scenario != sweep.DELIVERY]


def _deliveries(figures=FIGURES) -> dict[str, tuple[Delivery, ...]]:
    return {
        name: (Delivery(16, int(values[-1]), 1, 1, 2, 4, True, 1.5, ("_RESP2Parser",)),)
        for name, values in figures.items()
    }


def _rows(figures=FIGURES, spread=0.01) -> tuple[tuple[Cell, ...], tuple[Row, ...]]:
    cells = tuple(Cell(name) for name in figures)
    rows = []
    for name, values in figures.items():
        config = Config().on("solo", 1)
        for objective, value in zip(MEASURED, values[: len(MEASURED)], strict=True):
            rounds = (value * (1 - spread), value, value * (1 + spread))
            is_latency = objective.unit in ("us", "ms")
            rows.append(
                Row(
                    cell=name,
                    config=config if objective.scenario in ("drain", "e2e.start") else config.on(None, None),
                    scenario=objective.scenario,
                    title=objective.title,
                    kind="latency" if is_latency else "throughput",
                    unit=objective.unit,
                    round_values=rounds if objective.field == "median" else (1.0, 1.0, 1.0),
                    p99_rounds=rounds if objective.field == "p99" else None,
                    floor_ratios=(value / 100, value / 100, value / 100)
                    if objective.name == "enqueue"
                    else None,
                )
            )
    return cells, tuple(rows)


def _sweep(figures=FIGURES, spread=0.01) -> sweep.Sweep:
    cells, rows = _rows(figures, spread)
    return sweep.conclude(
        cells, rows, context={"config": Config().to_json()}, duration_s=1.0, deliveries=_deliveries(figures)
    )


def test_the_pareto_front_leaves_out_dominated_cells():
    result = _sweep()
    assert set(result.front) == {
        "default",
        "fast drain",
        "fast enqueue",
    }  # "worse" loses to default everywhere


def test_each_objective_names_its_best_cell_and_its_costs():
    recs = {r.objective.name: r for r in _sweep().recommendations}
    drain = recs["drain"]
    assert drain.cell == "fast drain" and drain.gain == pytest.approx(1.0) and drain.significant
    assert dict(drain.costs)["e2e_p99"] == pytest.approx(0.8)
    assert recs["enqueue"].cell == recs["producer"].cell == "fast enqueue"
    assert recs["e2e_p99"].cell == "default" and recs["e2e_p99"].gain is None


def test_a_gain_within_the_rounds_noise_says_so():
    recs = {r.objective.name: r for r in _sweep(spread=0.6).recommendations}
    assert recs["enqueue"].significant is False
    assert "within the rounds' noise" in tables.recommendation_line(recs["enqueue"], "default")


def test_the_text_has_a_table_per_objective_the_front_and_the_advice():
    out = tables.sweep_text(_sweep())
    for objective in sweep.OBJECTIVES:
        assert objective.title.upper() in out
    assert "PARETO FRONT" in out and "RECOMMENDATIONS" in out
    assert (
        "drain: fast drain [(the app's own)]: drain +100% (better: 2,000 vs 1,000 tasks/s) vs default "
        "(significant)"
    ) in out
    assert "e2e_p99 +80% (worse: 9 vs 5 ms)" in out
    assert "e2e_p99: keep default" in out


def test_the_json_rows_carry_their_config_and_compare_reads_them(tmp_path):
    doc = sweep.to_json(_sweep())
    json.dumps(doc, allow_nan=False)
    assert doc["kind"] == sweep.SWEEP_KIND and doc["pareto_front"] and doc["recommendations"]
    assert all(row["config"]["app"] == "tasks" for row in doc["results"])
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(doc))
    comparison = compare.compare_files(path, path)
    assert not comparison.regressions and comparison.matched_on_config


def test_the_plot_is_a_png(tmp_path):
    path = tables.sweep_plot(_sweep(), tmp_path / "sweep.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


# -- the command line: bad input exits 2 before anything starts ---------------------------------------
@pytest.fixture
def no_sweep(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the sweep must not start on bad input")

    monkeypatch.setattr(sweep, "run", refuse)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--matrix", "MISSING"], "no such file"),
        (["--matrix", "BAD"], "not valid TOML"),
        (["--set-axis", "worker_prefetch=1,2"], "not a Celery setting"),
        (["--set", "task_acks_late=maybe"], "task_acks_late"),
        (["--pool", "nope"], "--pool"),
        (["--matrix", "BAD", "--set-axis", "task_acks_late=true"], "not both"),
    ],
)
def test_bad_sweep_input_exits_2_with_one_line(no_sweep, capsys, tmp_path, argv, expected):
    (tmp_path / "BAD").write_text("[[cell]\n")
    argv = [str(tmp_path / a) if a in ("MISSING", "BAD") else a for a in argv]
    assert cli.main(["sweep", *argv, "--json", str(tmp_path / "s.json")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_the_control_app_reads_a_msgpack_workers_replies():
    # workers reply to control commands in their task_serializer (the msgpack cell's add_consumer)
    from bench.worker import control_app

    app = control_app("redis://127.0.0.1:1/0")
    try:
        assert set(app.conf.accept_content) == {"json", "msgpack"}
    finally:
        app.close()


def test_lost_on_kill_is_an_objective_counted_not_as_a_percentage():
    figures = dict(FIGURES) | {
        "default": (500.0, 2000.0, 1000.0, 5.0, 4),
        "late acks": (505.0, 1990.0, 995.0, 5.2, 0),
    }
    result = _sweep(figures)
    assert result.scores["late acks"]["lost"] == 0 and result.scores["default"]["lost"] == 4
    assert "late acks" in result.front  # nobody loses fewer
    lost = next(r for r in result.recommendations if r.objective.name == "lost")
    assert lost.cell in ("late acks", "fast enqueue") and lost.significant is None
    line = tables.recommendation_line(lost, "default")
    assert (
        "lost on kill 0, duplicated 1 (default: 4 and 1)" in line and "untested: one probe per cell" in line
    )
    drain = next(r for r in result.recommendations if r.objective.name == "drain")
    assert "lost on kill 4, duplicated 1 (default: 4 and 1)" in tables.recommendation_line(drain, "default")


def test_the_json_carries_each_cells_delivery_probes():
    doc = sweep.to_json(_sweep())
    assert doc["delivery"]["fast drain"][0]["lost"] == 4
    assert doc["delivery"]["default"][0]["worker_parsers"] == ["_RESP2Parser"]
    assert doc["scores"]["worse"]["lost"] == 1
    drain = next(r for r in doc["recommendations"] if r["objective"] == "drain")
    assert drain["figures"]["lost"] == 4 and drain["baseline_figures"]["lost"] == 0


def test_a_sweep_without_probes_still_has_a_front():
    cells, rows = _rows()
    result = sweep.conclude(cells, rows, context={}, duration_s=1.0)
    assert set(result.front) == {"default", "fast drain", "fast enqueue"}
    assert all(r.objective.name != "lost" for r in result.recommendations)


def test_a_cell_may_hide_or_require_hiredis():
    cells, _ = sweep.parse_matrix(
        "[[cell]]\nname = 'a'\nhiredis = false\n[[cell]]\nname = 'b'\nhiredis = true"
    )
    assert [c.hiredis for c in cells] == [False, True]
    assert sweep.cell_config(Config(), cells[0], "solo").to_json()["hiredis"] is False
    assert "hiredis" not in sweep.cell_config(Config(), Cell("c"), "solo").to_json()
    with pytest.raises(sweep.SweepError, match="hiredis must be true or false"):
        sweep.parse_matrix("[[cell]]\nname = 'a'\nhiredis = 'off'", path="m.toml")


def test_a_cell_that_needs_hiredis_where_it_is_missing_exits_2(monkeypatch, no_sweep, capsys, tmp_path):
    monkeypatch.setattr(isolated, "hiredis_installed", lambda: False)
    matrix = tmp_path / "m.toml"
    matrix.write_text("[[cell]]\nname = 'fast parser'\nhiredis = true\n")
    assert cli.main(["sweep", "--matrix", str(matrix), "--json", str(tmp_path / "s.json")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'fast parser' asks for hiredis" in err and ".[hiredis]" in err


@pytest.mark.skipif(
    not isolated.hiredis_installed(), reason="hiredis is not installed (pip install -e '.[hiredis]')"
)
def test_a_hidden_hiredis_cannot_be_imported_by_a_child(tmp_path):
    from bench.worker import child_env

    with isolated.without_hiredis() as extra:
        env = child_env("redis://127.0.0.1:1/0", extra=extra)
        assert env["PYTHONPATH"].split(os.pathsep)[0] == extra["PYTHONPATH"]  # before the project root
        code = "import redis.utils as u, redis.connection as c; "
        code += "print(u.HIREDIS_AVAILABLE, c.DefaultParser.__name__)"
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "_RESP2Parser"]
    assert not Path(extra["PYTHONPATH"]).exists()  # removed afterwards
