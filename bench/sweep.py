"""``python -m bench sweep``: a matrix of configurations, measured alike, with a Pareto front and advice.

A sweep is a list of cells (:class:`Cell`: a name, ``--set``-style settings, optionally a pool and a
concurrency), from a small TOML file (``--matrix``), from ``--set-axis NAME=V1,V2`` (the product of the
axes), or the built-in matrix (``BUILTIN``, ``QUICK_CELLS`` with ``--quick``). Each cell is measured by
:func:`bench.scenarios.run` itself (enqueue latency and floor ratio, producer throughput, drain,
open-loop end-to-end), with a smaller plan per call, on one private Redis for the whole sweep. Cells are
interleaved: round 1 runs every cell once, then round 2 ..., so machine drift hits every cell alike; a
cell's figure is the median of its rounds' figures. A cell without hiredis (``hiredis = false``) runs
its rounds in a child interpreter that cannot import it (``bench.isolated``), and every cell reports
the redis-py parser its producers and workers actually used (``bench.parsers``).

The five objectives (``OBJECTIVES``): enqueue latency (``apply_async`` median), producer throughput
(one thread), drain rate, end-to-end p99 (enqueue -> task start), and tasks lost when a worker is
SIGKILLed mid-run: each cell's delivery probe (``bench.faults.delivery``, in the first
``PROBE_ROUNDS`` rounds) runs ledger tasks under the cell's settings, kills the worker, lets a
replacement restore what it held, and counts lost and duplicated tasks. :func:`pareto` finds the cells
no other cell beats on every objective; :func:`recommend` names, per objective, the best cell and its
cost in the others against the baseline (the cell named ``default``, else the first). Nothing here
prints (``bench.tables`` renders); bad input raises :class:`SweepError` (one line; the command line
exits 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import statistics
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import compare, config, isolated, parsers, pools, scenarios, stats
from bench.broker import Broker, from_option
from bench.config import Config, ConfigError, Settings
from bench.faults import delivery
from bench.faults.delivery import Delivery

SWEEP_KIND = "celery-bench-sweep"

BASELINE = "default"
"""The cell the recommendations measure costs against (else the matrix's first cell)."""


class SweepError(ValueError):
    """Bad sweep input (matrix file, axis, setting); the message is one line naming it and the fix."""


@dataclass(frozen=True)
class Cell:
    """One configuration of the matrix: ``settings`` on top of the run's ``--app`` / ``--set``."""

    name: str
    settings: Settings = ()
    pool: str | None = None
    """``None``: the sweep's ``--pool``."""
    concurrency: int | None = None
    """``None``: the pool's default (``bench.pools.default_concurrency``)."""
    producer_reuse: bool = False
    """The harness's producers hold one producer per thread (``apply_async(producer=...)``)."""
    hiredis: bool | None = None
    """``False``: the cell's producers and workers run where hiredis cannot be imported
    (``bench.isolated``); ``True``: it must be installed; ``None``: as installed."""


DELIVERY = "delivery.kill"
"""The delivery probe's figures (``bench.faults.delivery``): not a ``bench.scenarios`` row."""


@dataclass(frozen=True)
class Objective:
    """A figure the sweep ranks cells by: ``scenario``'s ``field`` (``median`` or ``p99``; for the
    delivery probe, :data:`DELIVERY`, the ``lost`` count)."""

    name: str
    title: str
    scenario: str
    field: str
    unit: str
    lower_is_better: bool


OBJECTIVES = (
    Objective("enqueue", "enqueue latency, apply_async median", "enqueue.apply_async", "median", "us", True),
    Objective("producer", "producer throughput, 1 thread", "producer.1-thread", "median", "tasks/s", False),
    Objective("drain", "drain rate (pre-filled queue)", "drain", "median", "tasks/s", False),
    Objective("e2e_p99", "end-to-end p99, enqueue -> task start", "e2e.start", "p99", "ms", True),
    Objective("lost", "lost on kill (a worker SIGKILLed mid-run)", DELIVERY, "lost", "tasks", True),
)

CELERY_BENCH_SETTINGS: Settings = (
    ("task_default_delivery_mode", "transient"),
    ("task_ignore_result", True),
    ("worker_prefetch_multiplier", 0),
)
"""What a cell can express of Celery's own worker benchmark (``t/benchmarks/bench_worker.py``):
prefetch 0 (unlimited), transient messages, no result stored (its ``result_backend=None``; here
``task_ignore_result``: the probes then announce their completion instead, ``bench.probes._announce``),
and its cell reuses one producer, as its ``bench_apply`` does. It also sets ``broker_pool_limit=10``
(Celery's default already) and a ``no_ack`` queue, which the harness's own queue does not have."""

BUILTIN = (
    Cell("default"),
    Cell("producer reuse", producer_reuse=True),
    Cell("msgpack", (("accept_content", ["json", "msgpack"]), ("task_serializer", "msgpack"))),
    Cell("zlib", (("task_compression", "zlib"),)),
    Cell("ignore_result", (("task_ignore_result", True),)),
    Cell("prefetch 1", (("worker_prefetch_multiplier", 1),)),
    Cell("prefetch 16", (("worker_prefetch_multiplier", 16),)),
    Cell("acks_late", (("task_acks_late", True),)),
    Cell("events", (("task_send_sent_event", True), ("worker_send_task_events", True))),
    Cell("no hiredis", hiredis=False),
    Cell("prefork x2", pool="prefork", concurrency=2),
    Cell("prefork x4", pool="prefork", concurrency=4),
    Cell("celery bench", CELERY_BENCH_SETTINGS, producer_reuse=True),
)
"""The default matrix (``python -m bench sweep``). Every harness worker already runs without gossip and
mingle (``bench.worker``), so those are not a cell."""

QUICK_CELLS = ("default", "producer reuse", "prefetch 16", "no hiredis", "celery bench")
"""The cells of ``--quick`` (names in ``BUILTIN``)."""

QUICK_PLAN = dataclasses.replace(
    scenarios.QUICK,
    enqueue_rounds=2, enqueue_per_round=150, overhead_blocks=5, overhead_per_block=20,
    producer_rounds=1, producer_per_thread=300, drain_rounds=1, drain_tasks=400,
    e2e_rate=100.0, e2e_seconds=2.0, e2e_rounds=1, max_rounds={}, budget_s={},
)  # fmt: skip
"""One cell-round of ``--quick`` (the sweep repeats it ``QUICK_ROUNDS`` times, interleaved). Every
step runs its minimum rounds (no adaptive rounds: the sweep's own rounds are the repetitions)."""

FULL_PLAN = dataclasses.replace(
    scenarios.QUICK,
    enqueue_rounds=3, enqueue_per_round=400, overhead_blocks=10, overhead_per_block=20,
    producer_rounds=1, producer_per_thread=600, drain_rounds=1, drain_tasks=1000,
    e2e_rate=100.0, e2e_seconds=3.0, e2e_rounds=1, max_rounds={}, budget_s={},
)  # fmt: skip
"""One cell-round of the default sweep (fixed rounds too): about 20 s here, so that 13 cells x 3 rounds
and a delivery probe per cell stay under 15 minutes on 2 loaded cores."""

QUICK_ROUNDS = 2
FULL_ROUNDS = 3

PROBE_ROUNDS = 1
"""Delivery probes per cell (in the first rounds, right after the cell's measurements)."""

MATRIX_KEYS = {"rounds", "cell"}
CELL_KEYS = {"name", "set", "pool", "concurrency", "producer_reuse", "hiredis"}


# -- the matrix ---------------------------------------------------------------------------------------
def cell_settings(values: Mapping[str, Any], *, where: str) -> Settings:
    """Settings checked as ``--set`` checks them (a known name, a value of its type)."""
    try:
        return config.parse_sets(f"{name}={json.dumps(value)}" for name, value in values.items())
    except ConfigError as exc:
        raise SweepError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise SweepError(
            f"{where}: a value is not JSON ({exc}); give numbers, strings, booleans, lists"
        ) from None


def _cell(raw: Any, index: int, path: str) -> Cell:
    where = f"{path}: cell {index + 1}"
    if not isinstance(raw, dict):
        raise SweepError(f'{where}: not a table; write [[cell]] then name = "..."')
    unknown = set(raw) - CELL_KEYS
    if unknown:
        raise SweepError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; a cell has {', '.join(sorted(CELL_KEYS))}"
        )
    name, sets = raw.get("name"), raw.get("set", {})
    if not isinstance(name, str) or not name.strip():
        raise SweepError(f'{where}: give it a name, e.g. name = "prefetch 16"')
    if not isinstance(sets, dict):
        raise SweepError(f"{where} ({name}): set must be a table, e.g. set = {{ task_acks_late = true }}")
    pool, concurrency = raw.get("pool"), raw.get("concurrency")
    if pool is not None and pool not in pools.available():
        raise SweepError(
            f"{where} ({name}): pool {pool!r} is not available here; one of {', '.join(pools.available())}"
        )
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise SweepError(f"{where} ({name}): concurrency must be a positive integer, got {concurrency!r}")
    reuse, hiredis = raw.get("producer_reuse", False), raw.get("hiredis")
    if not isinstance(reuse, bool):
        raise SweepError(f"{where} ({name}): producer_reuse must be true or false, got {reuse!r}")
    if hiredis is not None and not isinstance(hiredis, bool):
        raise SweepError(f"{where} ({name}): hiredis must be true or false, got {hiredis!r}")
    sets_checked = cell_settings(sets, where=f"{where} ({name})")
    return Cell(name.strip(), sets_checked, pool, concurrency, reuse, hiredis)


def parse_matrix(text: str, *, path: str = "matrix") -> tuple[tuple[Cell, ...], int | None]:
    """The cells (and the optional ``rounds``) of a TOML matrix file; raises :class:`SweepError`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML ({exc}); see docs/benchmarks.md for the format") from None
    unknown = set(doc) - MATRIX_KEYS
    if unknown:
        raise SweepError(
            f"{path}: unknown key {sorted(unknown)[0]!r}; a matrix has rounds and [[cell]] tables"
        )
    raw_cells = doc.get("cell")
    if not isinstance(raw_cells, list) or not raw_cells:
        raise SweepError(f"{path}: no [[cell]] table; give at least one cell")
    cells = tuple(_cell(raw, i, path) for i, raw in enumerate(raw_cells))
    _unique(cells, path)
    rounds = doc.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
        raise SweepError(f"{path}: rounds must be a positive integer, got {rounds!r}")
    return cells, rounds


def load_matrix(path: Path) -> tuple[tuple[Cell, ...], int | None]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SweepError(f"--matrix {path}: no such file; give a TOML matrix file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"--matrix {path}: cannot read it ({exc})") from None
    return parse_matrix(text, path=f"--matrix {path}")


def _unique(cells: Sequence[Cell], where: str) -> None:
    seen: set[str] = set()
    for cell in cells:
        if cell.name in seen:
            raise SweepError(f"{where}: two cells are named {cell.name!r}; give each cell its own name")
        seen.add(cell.name)


def axes_cells(axes: Iterable[str]) -> tuple[Cell, ...]:
    """``NAME=V1,V2`` axes to cells: their product, each checked as ``--set NAME=V`` is."""
    parsed: list[list[tuple[str, Any]]] = []
    for axis in axes:
        name, sep, values = axis.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise SweepError(
                f"--set-axis {axis!r}: give NAME=V1,V2, e.g. --set-axis worker_prefetch_multiplier=1,4,16"
            )
        try:
            parsed.append([config.parse_set(f"{name.strip()}={v}") for v in values.split(",")])
        except ConfigError as exc:
            raise SweepError(f"--set-axis: {exc}") from None
    cells = []
    for combo in itertools.product(*parsed):
        label = " ".join(f"{n}={json.dumps(v)}" for n, v in combo)
        cells.append(Cell(label, tuple(sorted(combo))))
    _unique(cells, "--set-axis")
    return tuple(cells)


def builtin(*, quick: bool) -> tuple[Cell, ...]:
    return tuple(c for c in BUILTIN if c.name in QUICK_CELLS) if quick else BUILTIN


# -- records ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One figure of one cell, over the sweep's rounds (the median of the rounds' figures)."""

    cell: str
    config: Config
    scenario: str
    title: str
    kind: str
    unit: str
    round_values: tuple[float, ...]
    """The figure of each round: a latency row's median (or p99 for ``p99_rounds``), a rate."""
    p99_rounds: tuple[float, ...] | None
    floor_ratios: tuple[float, ...] | None

    @property
    def median(self) -> float:
        return statistics.median(self.round_values)

    @property
    def p99(self) -> float | None:
        return None if not self.p99_rounds else statistics.median(self.p99_rounds)

    @property
    def floor_ratio(self) -> float | None:
        return None if not self.floor_ratios else statistics.median(self.floor_ratios)

    def value(self, field: str) -> float | None:
        return self.median if field == "median" else self.p99


@dataclass(frozen=True)
class Recommendation:
    """The best cell for one objective, and what it costs in every objective against the baseline."""

    objective: Objective
    cell: str
    settings: Settings
    gain: float | None
    """Relative change of the objective's figure against the baseline (``None``: it is the baseline)."""
    significant: bool | None
    """Whether the cell's rounds differ from the baseline's (Welch, ``bench.compare``)."""
    costs: tuple[tuple[str, float | None], ...]
    """Per other objective: relative change of its figure against the baseline."""
    producer_reuse: bool = False
    figures: tuple[tuple[str, float | None], ...] = ()
    """Per objective: the cell's own figure (the lost count is shown as is, not as a change)."""
    baseline_figures: tuple[tuple[str, float | None], ...] = ()
    duplicated: tuple[float | None, float | None] = (None, None)
    """Duplicated on kill: the cell's and the baseline's (median of their probes)."""
    hiredis: bool | None = None


@dataclass(frozen=True)
class Sweep:
    """Everything a sweep measured and concluded."""

    context: Mapping[str, Any]
    cells: tuple[Cell, ...]
    rows: tuple[Row, ...]
    scores: Mapping[str, Mapping[str, float | None]]
    """Per cell name, per objective name: the cell's figure."""
    front: tuple[str, ...]
    baseline: str
    recommendations: tuple[Recommendation, ...]
    duration_s: float
    warnings: tuple[str, ...]
    deliveries: Mapping[str, tuple[Delivery, ...]] = dataclasses.field(default_factory=dict)
    """Per cell name: its delivery probes (``bench.faults.delivery``)."""
    parsers: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Per cell name: the redis-py reply parser class(es) of its producers' process."""


# -- running ------------------------------------------------------------------------------------------
def cell_config(base: Config, cell: Cell, pool: str) -> Config:
    """``base`` (``--app`` / ``--set``) with the cell's settings on top, on the cell's pool."""
    settings = tuple(sorted((dict(base.settings) | dict(cell.settings)).items()))
    return dataclasses.replace(
        base,
        settings=settings,
        pool=cell.pool or pool,
        concurrency=cell.concurrency,
        producer_reuse=base.producer_reuse or cell.producer_reuse,
        hiredis=base.hiredis if cell.hiredis is None else cell.hiredis,
    )


def _options(base: Config, cell: Cell, pool: str, plan: scenarios.Plan, broker_url: str) -> scenarios.Options:
    configured = cell_config(base, cell, pool)
    assert configured.pool is not None
    concurrency = configured.concurrency or pools.default_concurrency(configured.pool)
    return scenarios.Options(
        pools=(configured.pool,),
        broker_url=broker_url,
        reliability=False,
        plan=dataclasses.replace(plan, concurrency={configured.pool: (concurrency,)}),
        config=dataclasses.replace(configured, pool=None, concurrency=None),
    )


@dataclass
class Measured:
    """What :func:`measure` collected: per cell name, its runs and its delivery probes."""

    runs: dict[str, list[scenarios.Run]]
    deliveries: dict[str, list[Delivery]]
    parsers: dict[str, set[str]]
    """Per cell: the redis-py reply parser(s) its producers' process used (``hiredis`` or not)."""


def measure(
    cells: Sequence[Cell],
    *,
    base: Config,
    pool: str,
    plan: scenarios.Plan,
    rounds: int,
    broker: Broker,
    probes: int = PROBE_ROUNDS,
    no_hiredis: Mapping[str, str] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Measured:
    """Each cell's runs, interleaved: round 1 runs every cell once, then round 2, ...; in the first
    ``probes`` rounds, each cell's delivery probe right after its run. ``no_hiredis``: the extra
    environment of the cells without hiredis (``bench.isolated.without_hiredis``)."""
    names = [cell.name for cell in cells]
    out = Measured({n: [] for n in names}, {n: [] for n in names}, {n: set() for n in names})
    for r in range(rounds):
        for i, cell in enumerate(cells):
            where = f"[round {r + 1}/{rounds}, cell {i + 1}/{len(cells)}] {cell.name}"
            env = no_hiredis if cell_config(base, cell, pool).hiredis is False else None
            say(where + (" (in a child without hiredis)" if env is not None else ""))
            options = _options(base, cell, pool, plan, broker.url)
            if env is None:
                out.runs[cell.name].append(scenarios.run(options))
                out.parsers[cell.name].add(parsers.of_url(broker.url))
            else:
                found, parser = isolated.run(options, env=env)
                out.runs[cell.name].append(found)
                out.parsers[cell.name].add(parser)
            if r < probes:
                say(f"{where}: delivery probe")
                out.deliveries[cell.name].append(probe(base, cell, pool, broker, env))
    return out


def probe(
    base: Config, cell: Cell, pool: str, broker: Broker, env: Mapping[str, str] | None = None
) -> Delivery:
    """The cell's delivery probe: its worker SIGKILLed mid-run (``bench.faults.delivery``)."""
    configured = cell_config(base, cell, pool)
    assert configured.pool is not None
    return delivery.probe(broker, configured, configured.pool, worker_env=env)


def rows_of(cell: Cell, runs: Sequence[scenarios.Run]) -> tuple[Row, ...]:
    """A cell's figures over its runs (one :class:`Row` per scenario and pool)."""
    by_key: dict[tuple[str, str | None], list[scenarios.Result]] = {}
    for run in runs:
        for result in run.results:
            by_key.setdefault((result.scenario, result.pool), []).append(result)
    out = []
    for results in by_key.values():
        first = results[0]
        latencies = [r.latency for r in results if r.latency is not None]
        throughputs = [r.throughput for r in results if r.throughput is not None]
        ratios = tuple(r.floor_ratio for r in results if r.floor_ratio is not None)
        out.append(
            Row(
                cell=cell.name,
                config=first.config,
                scenario=first.scenario,
                title=first.title,
                kind="latency" if latencies else "throughput",
                unit=(latencies or throughputs)[0].unit,
                round_values=tuple(s.median for s in (latencies or throughputs)),
                p99_rounds=tuple(s.p99 for s in latencies) or None,
                floor_ratios=ratios or None,
            )
        )
    return tuple(out)


def run(
    cells: Sequence[Cell],
    *,
    base: Config,
    pool: str,
    quick: bool,
    rounds: int | None = None,
    broker_url: str | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Sweep:
    """Measure every cell (one private Redis for the whole sweep unless ``broker_url``) and conclude."""
    check_hiredis(cells, base)
    started = time.monotonic()
    plan = QUICK_PLAN if quick else FULL_PLAN
    rounds = rounds or (QUICK_ROUNDS if quick else FULL_ROUNDS)
    broker = from_option(broker_url)
    say(
        f"sweep: {len(cells)} cells x {rounds} rounds, interleaved; "
        + ("starting a private Redis" if broker.owned else "on the given broker")
    )
    with broker, contextlib.ExitStack() as stack:
        no_hiredis = stack.enter_context(isolated.without_hiredis()) if _needs_blocker(cells, base) else None
        measured = measure(
            cells,
            base=base,
            pool=pool,
            plan=plan,
            rounds=rounds,
            broker=broker,
            no_hiredis=no_hiredis,
            say=say,
        )
    runs = measured.runs
    rows = tuple(row for cell in cells for row in rows_of(cell, runs[cell.name]))
    context = dict(next(iter(runs.values()))[0].context, pool=pool, quick=quick, rounds=rounds)
    context |= {"config": base.to_json(), "plan": dataclasses.asdict(plan) | {"concurrency": {}}}
    context.pop("queue", None)
    warnings = [f"{name}: {w}" for name, cell_runs in runs.items() for r in cell_runs for w in r.warnings]
    if _needs_blocker(cells, base) and not isolated.hiredis_installed():
        warnings.append(HIREDIS_MISSING)
    deliveries = {name: tuple(probes) for name, probes in measured.deliveries.items()}
    producers = {name: tuple(sorted(found)) for name, found in measured.parsers.items()}
    return conclude(
        cells, rows, context=context, duration_s=time.monotonic() - started, warnings=warnings,
        deliveries=deliveries, parsers=producers,
    )  # fmt: skip


HIREDIS_MISSING = (
    "hiredis is not installed here (pip install -e '.[hiredis]'): the cells without hiredis measured "
    "the same parser as the others"
)


def _needs_blocker(cells: Iterable[Cell], base: Config) -> bool:
    return any(cell_config(base, cell, "solo").hiredis is False for cell in cells)


def check_hiredis(cells: Iterable[Cell], base: Config) -> None:
    """A cell that asks for hiredis where it is not installed: :class:`SweepError` (exit 2)."""
    wanting = [c.name for c in cells if cell_config(base, c, "solo").hiredis is True]
    if wanting and not isolated.hiredis_installed():
        raise SweepError(
            f"cell {wanting[0]!r} asks for hiredis, which is not installed here; "
            "pip install -e '.[hiredis]' (or hiredis>=3.2)"
        )


# -- conclusions --------------------------------------------------------------------------------------
def _row(rows: Iterable[Row], cell: str, scenario: str) -> Row | None:
    return next((r for r in rows if r.cell == cell and r.scenario == scenario), None)


Deliveries = Mapping[str, Sequence[Delivery]]


def _rounds(
    rows: Iterable[Row], deliveries: Deliveries, cell: str, objective: Objective
) -> tuple[float, ...]:
    """The cell's per-round (per-probe) values of ``objective`` (what significance is tested on)."""
    if objective.scenario == DELIVERY:
        return tuple(float(getattr(d, objective.field)) for d in deliveries.get(cell, ()))
    row = _row(rows, cell, objective.scenario)
    if row is None:
        return ()
    return (row.p99_rounds or ()) if objective.field == "p99" else row.round_values


def score_table(
    cells: Sequence[Cell], rows: Sequence[Row], deliveries: Deliveries | None = None
) -> dict[str, dict[str, float | None]]:
    """Per cell, per objective: the cell's figure (``None`` when the cell did not measure it)."""
    out: dict[str, dict[str, float | None]] = {}
    for cell in cells:
        out[cell.name] = {}
        for objective in OBJECTIVES:
            if objective.scenario == DELIVERY:
                values = _rounds(rows, deliveries or {}, cell.name, objective)
                out[cell.name][objective.name] = statistics.median(values) if values else None
                continue
            row = _row(rows, cell.name, objective.scenario)
            out[cell.name][objective.name] = None if row is None else row.value(objective.field)
    return out


def duplicated(deliveries: Deliveries, cell: str) -> float | None:
    """The median of the cell's duplicated counts on kill (``None``: no probe)."""
    values = [d.duplicated for d in deliveries.get(cell, ())]
    return statistics.median(values) if values else None


def better(objective: Objective, x: float, y: float) -> bool:
    """``x`` is strictly better than ``y`` on ``objective``."""
    return x < y if objective.lower_is_better else x > y


def pareto(scores: Mapping[str, Mapping[str, float | None]]) -> tuple[str, ...]:
    """The cells no other cell matches or beats on every objective and beats on one (complete cells only:
    those that measured every objective some cell measured)."""
    present = [o for o in OBJECTIVES if any(s.get(o.name) is not None for s in scores.values())]
    complete = {c: s for c, s in scores.items() if all(s.get(o.name) is not None for o in present)}

    def dominates(x: Mapping[str, float | None], y: Mapping[str, float | None]) -> bool:
        pairs = [(o, x[o.name], y[o.name]) for o in present]
        no_worse = all(not better(o, b, a) for o, a, b in pairs if a is not None and b is not None)
        return no_worse and any(better(o, a, b) for o, a, b in pairs if a is not None and b is not None)

    return tuple(
        c for c, s in complete.items() if not any(dominates(t, s) for d, t in complete.items() if d != c)
    )


def relative(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference - 1


def _best(
    objective: Objective, scores: Mapping[str, Mapping[str, float | None]], baseline: str
) -> str | None:
    """The cell with the best figure on ``objective`` (the baseline wins a tie)."""
    measured = [(c, v) for c, s in scores.items() if (v := s[objective.name]) is not None]
    if not measured:
        return None
    best, value = next(((c, v) for c, v in measured if c == baseline), measured[0])
    for name, candidate in measured:
        if better(objective, candidate, value):
            best, value = name, candidate
    return best


def recommend(
    cells: Sequence[Cell],
    rows: Sequence[Row],
    scores: Mapping[str, Mapping[str, float | None]],
    baseline: str,
    deliveries: Deliveries | None = None,
) -> tuple[Recommendation, ...]:
    """Per objective: the best cell, its gain over the baseline (and whether significant), its costs."""
    out = []
    by_name = {cell.name: cell for cell in cells}
    base, probes = scores[baseline], deliveries or {}
    for objective in OBJECTIVES:
        best = _best(objective, scores, baseline)
        if best is None:
            continue
        is_significant, _ = compare.significant(
            _rounds(rows, probes, baseline, objective), _rounds(rows, probes, best, objective)
        )
        costs = tuple(
            (other.name, relative(scores[best][other.name], base[other.name]))
            for other in OBJECTIVES
            if other is not objective
        )
        gain = None if best == baseline else relative(scores[best][objective.name], base[objective.name])
        chosen = by_name[best]
        out.append(
            Recommendation(
                objective,
                best,
                chosen.settings,
                gain,
                is_significant,
                costs,
                chosen.producer_reuse,
                figures=tuple(scores[best].items()),
                baseline_figures=tuple(base.items()),
                duplicated=(duplicated(probes, best), duplicated(probes, baseline)),
                hiredis=chosen.hiredis,
            )  # fmt: skip
        )
    return tuple(out)


def conclude(
    cells: Sequence[Cell],
    rows: Sequence[Row],
    *,
    context: Mapping[str, Any],
    duration_s: float,
    warnings: Sequence[str] = (),
    deliveries: Deliveries | None = None,
    parsers: Mapping[str, tuple[str, ...]] | None = None,
) -> Sweep:
    """Scores, the Pareto front and the recommendations of measured rows and delivery probes."""
    names = [cell.name for cell in cells]
    baseline = BASELINE if BASELINE in names else names[0]
    probes = {name: tuple(found) for name, found in (deliveries or {}).items()}
    scores = score_table(cells, rows, probes)
    return Sweep(
        context=context,
        cells=tuple(cells),
        rows=tuple(rows),
        scores=scores,
        front=pareto(scores),
        baseline=baseline,
        recommendations=recommend(cells, rows, scores, baseline, probes),
        duration_s=duration_s,
        warnings=tuple(dict.fromkeys(warnings)),
        deliveries=probes,
        parsers=dict(parsers or {}),
    )


# -- JSON ---------------------------------------------------------------------------------------------
def _row_json(row: Row) -> dict[str, Any]:
    """A row in the shape of a report's ``results[]`` object (so ``bench compare`` reads sweeps too)."""
    values = list(row.round_values)
    return {
        "cell": row.cell,
        "scenario": row.scenario,
        "title": row.title,
        "kind": row.kind,
        "pool": row.config.pool,
        "concurrency": row.config.concurrency,
        "unit": row.unit,
        "samples": len(values),
        "rounds": len(values),
        "median": row.median,
        "min": min(values),
        "max": max(values),
        "round_values": values,
        "p99": row.p99,
        "p99_rounds": None if row.p99_rounds is None else list(row.p99_rounds),
        "floor_ratio": row.floor_ratio,
        "cv_rounds": stats.coefficient_of_variation(values),
        "config": row.config.to_json(),
    }


def to_json(sweep: Sweep) -> dict[str, Any]:
    """The sweep as plain data: every row carries its configuration."""
    return {
        "schema": compare.SCHEMA_VERSION,
        "kind": SWEEP_KIND,
        "context": dict(sweep.context),
        "duration_s": sweep.duration_s,
        "cells": [
            {
                "name": c.name,
                "settings": dict(c.settings),
                "pool": c.pool,
                "concurrency": c.concurrency,
                "producer_reuse": c.producer_reuse,
                "hiredis": c.hiredis,
            }
            for c in sweep.cells
        ],
        "results": [_row_json(r) for r in sweep.rows],
        "objectives": [dataclasses.asdict(o) for o in OBJECTIVES],
        "scores": {c: dict(s) for c, s in sweep.scores.items()},
        "delivery": {c: [d.to_json() for d in found] for c, found in sweep.deliveries.items()},
        "producer_parsers": {c: list(found) for c, found in sweep.parsers.items()},
        "pareto_front": list(sweep.front),
        "baseline": sweep.baseline,
        "recommendations": [
            {
                "objective": r.objective.name,
                "cell": r.cell,
                "settings": dict(r.settings),
                "producer_reuse": r.producer_reuse,
                "hiredis": r.hiredis,
                "gain": r.gain,
                "significant": r.significant,
                "costs": dict(r.costs),
                "figures": dict(r.figures),
                "baseline_figures": dict(r.baseline_figures),
                "duplicated_on_kill": r.duplicated[0],
                "baseline_duplicated_on_kill": r.duplicated[1],
            }
            for r in sweep.recommendations
        ],
        "warnings": list(sweep.warnings),
    }
