"""Repeatability: run ``bench run`` N times and report the CV of each headline figure across the runs.

``python -m bench repeat --runs 5 -- --quick --no-reliability --pool solo`` runs five benchmark sessions
one after the other (each a fresh ``python -m bench run`` process with its own private broker and worker),
reads their JSON reports and prints, per figure, the values of the runs, their coefficient of variation
and whether it is within the target (``defaults.REPEAT_CV_TARGET``, ``defaults.REPEAT_CV_TARGET_TAIL``
for p99 figures). The figures are the ones the report leads with:

* enqueue latency (floor, ``apply_async``, ``delay``): the median;
* producer throughput and worker drain rate: the median of the round rates;
* open-loop end-to-end latency (``e2e.start``, ``e2e.result``): p50 and p99;
* each enqueue call's ratio to its broker's floor in the same rounds (``... / floor``), the report's
  headline: a change in the machine's speed moves both alike, so the ratio repeats where the absolute
  medians cannot (docs/benchmarks.md#repeatability).

Reading JSON reports, not importing the runs, keeps each run a process of its own (as pyperf's worker
processes are) and lets the tool compare reports written by another commit of the harness
(``--reports``), or run another checkout's ``bench run`` alternately with this one's (``--against``).
The figures are computed in :func:`figures` / :func:`table_rows`; :func:`render` only formats them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import defaults, machine, stats


@dataclass(frozen=True)
class Spread:
    """One figure across the runs: its values, their CV and the target it is held to."""

    figure: str
    unit: str
    values: tuple[float, ...]
    cv: float | None
    target: float

    @property
    def within(self) -> bool | None:
        return None if self.cv is None else self.cv <= self.target


def _key(row: Mapping[str, Any]) -> str:
    pool, broker = row.get("pool"), row.get("broker") or "redis"
    key = row["scenario"] if pool is None else f"{row['scenario']} {pool} x{row['concurrency']}"
    return key if broker == "redis" else f"{key} on {broker}"


def figures(report: Mapping[str, Any]) -> dict[str, tuple[float, str]]:
    """The headline figures of one JSON report: ``{figure: (value, unit)}``.

    When a row carries a ``precision`` entry (the adaptive rounds' estimate of a statistic with its
    interval), its estimate is the figure; otherwise the summary's own field is.
    """
    out: dict[str, tuple[float, str]] = {}
    for row in report["results"]:
        key, unit = _key(row), row["unit"]
        estimates = {p["statistic"]: p["estimate"] for p in row.get("precision") or ()}
        if row["scenario"].startswith("e2e."):
            for stat in ("p50", "p99"):
                out[f"{key} {stat}"] = (estimates.get(stat, row[stat]), unit)
        else:
            out[key] = (estimates.get("median", row["median"]), unit)
        if (
            row["scenario"].startswith("enqueue.")
            and row["scenario"] != "enqueue.floor"
            and row.get("floor_ratio")
        ):
            out[f"{key} / floor"] = (row["floor_ratio"], "x")
    return out


def table_rows(reports: Sequence[Mapping[str, Any]]) -> list[Spread]:
    """Per figure present in every report: the values, their CV and its target."""
    return _spreads([figures(r) for r in reports])


def _spreads(per_run: Sequence[Mapping[str, tuple[float, str]]]) -> list[Spread]:
    """Per figure present in every run's ``{figure: (value, unit)}``: its values, CV and target."""
    names = [n for n in per_run[0] if all(n in f for f in per_run)] if per_run else []
    out = []
    for name in names:
        values = tuple(f[name][0] for f in per_run)
        tail = name.endswith(" p99")
        out.append(
            Spread(
                figure=name,
                unit=per_run[0][name][1],
                values=values,
                cv=stats.coefficient_of_variation(values),
                target=defaults.REPEAT_CV_TARGET_TAIL if tail else defaults.REPEAT_CV_TARGET,
            )
        )
    return out


def control_rows(reports: Sequence[Mapping[str, Any]]) -> list[Spread]:
    """The machine controls (``bench.machine``) across the runs: how much the machine alone varied."""
    per_run = [machine.figures(r.get("context") or {}) for r in reports]
    return _spreads([{name: (value, "us") for name, value in f.items()} for f in per_run])


def render(rows: Sequence[Spread], *, durations: Sequence[float] = ()) -> str:
    """The CV table as text (presentation only)."""
    width = max((len(r.figure) for r in rows), default=6)
    lines = [f"{'figure':<{width}}  unit     {'CV':>6}  target  ok   values"]
    for r in rows:
        cv = "-" if r.cv is None else f"{r.cv:.1%}"
        ok = {True: "yes", False: "NO", None: "-"}[r.within]
        values = " ".join(f"{v:.4g}" for v in r.values)
        lines.append(f"{r.figure:<{width}}  {r.unit:<7}  {cv:>6}  {r.target:>5.0%}  {ok:<3}  {values}")
    if durations:
        lines.append(
            f"runs: {len(durations)}; wall time per run {min(durations):.0f}-{max(durations):.0f} s "
            f"(median {statistics.median(durations):.0f} s)"
        )
    return "\n".join(lines)


def render_controls(rows: Sequence[Spread]) -> str:
    """The machine controls' CVs, under the table: not held to the target, they say what the machine's
    own drift was, which every figure's CV includes."""
    parts = [f"{r.figure} {'-' if r.cv is None else f'{r.cv:.1%}'}" for r in rows]
    return (
        f"machine controls across the runs (no Celery, no broker): CV {', '.join(parts)}; "
        "a figure whose CV is near these varied with the machine"
    )


THIS = "this checkout"
"""The label of the reports of the ``bench`` that runs ``bench repeat``."""


def run_sessions(
    runs: int, bench_args: Sequence[str], out_dir: Path, *, against: Path | None = None
) -> dict[str, list[Path]]:
    """``runs`` sessions of ``python -m bench run BENCH_ARGS --json ... --no-plots``, per checkout.

    With ``against`` (another checkout of the harness, e.g. a ``git worktree`` of an older commit), its
    ``bench run`` runs too, alternating with this one's (this 1, that 1, this 2, ...), so that a change in
    the machine's load between sessions hits both alike: what is compared is interleaved.
    """
    checkouts: list[tuple[str, Path | None]] = [(THIS, None)]
    if against is not None:
        checkouts.append((str(against), against))
    paths: dict[str, list[Path]] = {label: [] for label, _ in checkouts}
    for i in range(1, runs + 1):
        for n, (label, cwd) in enumerate(checkouts):
            path = out_dir / f"run-{i}{'' if n == 0 else '-against'}.json"
            cmd = [sys.executable, "-m", "bench", "run", *bench_args, "--json", str(path), "--no-plots"]
            where = "" if cwd is None else f" in {cwd}"
            print(
                f"bench repeat: run {i}/{runs}{where}{_load()}: {' '.join(cmd[1:])}",
                file=sys.stderr,
                flush=True,
            )
            done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, check=False)
            if done.returncode != 0:
                raise RuntimeError(
                    f"run {i}{where} exited with status {done.returncode}; rerun it alone to see why"
                )
            paths[label].append(path)
    return paths


def _load() -> str:
    """`` (load average 5.1 6.0 6.3)``: the machine's load beside each run (a shared machine's figures vary
    with it); empty where the platform has no load average."""
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return ""
    return f" (load average {one:.1f} {five:.1f} {fifteen:.1f})"


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in paths]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench repeat",
        description="Run `bench run` N times and print the CV of each headline figure across the runs.",
    )
    parser.add_argument("--runs", type=int, default=defaults.REPEAT_RUNS, help="sessions to run (>= 2)")
    parser.add_argument("--out", type=Path, help="keep the JSON reports in this directory")
    parser.add_argument(
        "--against", type=Path, metavar="CHECKOUT",
        help="also run the harness of this checkout (e.g. a git worktree of another commit), alternating "
        "with this one's, and print its table too",
    )  # fmt: skip
    parser.add_argument("--reports", type=Path, nargs="+", help="tabulate these reports instead of running")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then the `bench run` options")
    return parser


def _usage(args: argparse.Namespace, bench_args: Sequence[str]) -> str | None:
    """The one-line problem with the options, or ``None``."""
    if args.runs < 2:
        return "--runs must be at least 2 (a CV needs two values)"
    if "--json" in bench_args:
        return "do not pass --json to the runs; use --out DIR to keep their reports"
    if args.against is not None and not (args.against / "bench" / "__main__.py").is_file():
        return (
            f"--against {args.against}: not a checkout of this harness (no bench/__main__.py); give its root"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bench_args = list(args.bench_args)
    if bench_args[:1] == ["--"]:
        bench_args = bench_args[1:]
    if args.reports:
        tables = {THIS: load(args.reports)}
    else:
        problem = _usage(args, bench_args)
        if problem:
            print(f"python -m bench repeat: error: {problem}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix=defaults.TEMP_PREFIX) as scratch:
            out = args.out or Path(scratch)
            out.mkdir(parents=True, exist_ok=True)
            try:
                paths = run_sessions(args.runs, bench_args, out, against=args.against)
            except RuntimeError as exc:
                print(f"python -m bench repeat: failed: {exc}", file=sys.stderr)
                return 1
            tables = {label: load(p) for label, p in paths.items()}
    within = True
    for label, reports in tables.items():
        rows = table_rows(reports)
        if len(tables) > 1:
            print(f"== {label}")
        print(render(rows, durations=[float(r.get("duration_s", 0.0)) for r in reports]))
        controls = control_rows(reports)
        if controls:
            print(render_controls(controls))
        within = within and (label != THIS or all(r.within is not False for r in rows))
    return 0 if within else 1
