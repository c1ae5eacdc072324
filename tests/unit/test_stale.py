"""bench.stale's pure parts: which markers are stale, the one-line summary, reading owner files."""

from __future__ import annotations

import json
from pathlib import Path

from bench import defaults, stale
from bench.procs import Owner

DEAD, LIVE = Owner(10, 1.0), Owner(20, 2.0)


def test_only_what_a_dead_owner_left_is_stale_and_each_owner_is_asked_once():
    asked: list[Owner] = []

    def alive(owner: Owner) -> bool:
        asked.append(owner)
        return owner == LIVE

    found = [
        stale.Marked(run="r-dead", owner=DEAD, pid=101),
        stale.Marked(run="r-dead", owner=DEAD, pid=102),
        stale.Marked(run="r-dead", owner=DEAD, path=Path("/tmp/celery-bench-redis-x")),
        stale.Marked(run="r-live", owner=LIVE, pid=201),
        stale.Marked(run="r-live", owner=LIVE, path=Path("/tmp/celery-bench-worker-y")),
    ]
    left = stale.stale(found, alive=alive)
    assert left == stale.Leftovers(
        pids=(101, 102), dirs=(Path("/tmp/celery-bench-redis-x"),), runs=("r-dead",)
    )
    assert sorted(asked, key=lambda o: o.pid) == [DEAD, LIVE]


def test_a_run_id_with_another_live_owner_is_spared():
    # Two harness processes share a run id (a test passes it to a job it starts): key on the owner.
    found = [stale.Marked(run="r", owner=DEAD, pid=1), stale.Marked(run="r", owner=LIVE, pid=2)]
    assert stale.stale(found, alive=lambda o: o == LIVE).pids == (1,)


def test_summary_is_one_line_or_nothing():
    assert stale.summary(stale.Leftovers()) is None
    assert stale.summary(stale.Leftovers(runs=("r",))) is None
    line = stale.summary(
        stale.Leftovers(pids=(1, 2), dirs=(Path("a"), Path("b"), Path("c")), runs=("x", "y"))
    )
    assert line == "removed 2 processes and 3 temp dirs left by killed run(s) x, y"
    one = stale.summary(stale.Leftovers(pids=(1,), dirs=(Path("a"),), runs=("x",)))
    assert one == "removed 1 process and 1 temp dir left by killed run(s) x"


def test_a_process_needs_both_markers():
    marker = DEAD.marker()
    assert stale.marked_in({defaults.RUN_MARKER_ENV: "r", defaults.OWNER_MARKER_ENV: marker}) == ("r", DEAD)
    assert stale.marked_in({defaults.RUN_MARKER_ENV: "r"}) is None  # an older harness: never touched
    assert stale.marked_in({defaults.OWNER_MARKER_ENV: marker}) is None
    assert stale.marked_in({defaults.RUN_MARKER_ENV: "r", defaults.OWNER_MARKER_ENV: "garbage"}) is None


def test_dirs_are_read_by_their_owner_file_and_unreadable_ones_skipped(tmp_path: Path):
    def make(name: str, owner_file: str | None) -> Path:
        path = tmp_path / f"{defaults.TEMP_PREFIX}{name}"
        path.mkdir()
        if owner_file is not None:
            (path / defaults.OWNER_FILE).write_text(owner_file)
        return path

    good = make("redis-a", json.dumps({"run": "r1", "owner": DEAD.marker()}))
    make("worker-b", None)  # being made, or made by an older harness
    make("beat-c", "{not json")
    make("redis-d", json.dumps({"run": "r2", "owner": "nonsense"}))
    make("redis-e", json.dumps(["a", "list"]))
    (tmp_path / "unrelated").mkdir()
    assert stale.marked_dirs(tmp_path) == [stale.Marked(run="r1", owner=DEAD, path=good)]
