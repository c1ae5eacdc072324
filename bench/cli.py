"""The command line: ``python -m bench run`` (the main job), ``schema`` and ``repeat`` (bench.repeat).

A thin layer: it parses and checks the options, then calls :func:`bench.scenarios.run` and the
renderers of :mod:`bench.report`. Exit status: 0 done, 1 a benchmark failed, 2 bad input (one line on
stderr naming the problem and the fix), 130 interrupted (Ctrl-C or SIGTERM; everything started is reaped).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from bench import (
    breakdown,
    breakdown_format,
    brokers,
    config,
    html,
    pools,
    progress,
    report,
    scenarios,
    stale,
)
from bench.broker import BrokerError, check_url
from bench.procs import raise_on_sigterm, run_id

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

REPORT_DIR = Path("reports")
"""Where the report goes without ``--json`` (relative to the current directory)."""


class UsageError(Exception):
    """Bad input: the message names the problem and the fix."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(kind: type[int] | type[float], *, at_least: int = 0):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}; give a positive number")
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
        if value < at_least:
            raise argparse.ArgumentTypeError(f"{text!r} is too small: give at least {at_least}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description="Celery benchmark and verification harness.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="the main job: benchmarks per pool, a table, a JSON report and plots",
        description="Per broker (Redis, RabbitMQ): enqueue latency vs the broker's raw floor, producer "
        "throughput, open-loop end-to-end latency and worker drain rate per pool; then the reliability "
        "section. The result backend is always Redis.",
    )
    run.add_argument(
        "--pool", action="append", metavar="NAME",
        help=f"pool to benchmark (repeatable; one of {', '.join(pools.available())}); default: all available",
    )  # fmt: skip
    add_broker_argument(run)
    add_broker_url_argument(run)
    add_config_arguments(run)
    run.add_argument("--quick", action="store_true", help="a smaller run that still reports every figure")
    run.add_argument(
        "--json", metavar="PATH", type=Path,
        help="where to write the JSON report (plots go next to it); default reports/bench-<timestamp>.json",
    )  # fmt: skip
    run.add_argument("--no-reliability", action="store_true", help="skip the reliability (fault) section")
    run.add_argument("--no-plots", action="store_true", help="write no PNG/HTML plots")
    run.add_argument(
        "--breakdown", action="store_true",
        help="after the benchmarks, on a private Redis of its own: where one enqueue's time goes, by "
        "layer, per producer path, with the broker commands each makes (bench.breakdown)",
    )  # fmt: skip
    run.add_argument(
        "--fleet", action="store_true",
        help="measure the workers already running on --broker-url (found by control ping; never stopped "
        "or purged; probe tasks go to a queue of the harness's own) instead of starting any",
    )  # fmt: skip
    run.add_argument(
        "--host-faults", action="store_true",
        help="break worker hosts on purpose instead: a compose fleet of two hosts of the harness's own "
        "(Docker with Compose v2), each killed, frozen and cut off from the broker, with and without "
        "acks_late; prints their reliability rows and removes the fleet",
    )  # fmt: skip
    add_size_arguments(run)
    sub.add_parser("schema", help="print the JSON Schema of the report")
    add_other_commands(sub)
    return parser


def add_other_commands(sub: Any) -> None:
    """``breakdown``, ``compare``, ``sweep`` and ``repeat`` (which parses its own arguments)."""
    add_breakdown_parser(sub)
    add_compare_parser(sub)
    add_sweep_parser(sub)
    sub.add_parser(
        "repeat", add_help=False,
        help="run `bench run` N times and print the CV of each headline figure (bench.repeat; "
        "`python -m bench repeat --help`)",
    )  # fmt: skip


def add_breakdown_parser(sub: Any) -> None:
    """``python -m bench breakdown``: the enqueue breakdown alone."""
    alone = sub.add_parser(
        "breakdown",
        help="only the enqueue breakdown (what run --breakdown adds), on a private Redis",
        description="Where one enqueue's time goes, by layer, per producer path, vs the raw LPUSH floor.",
    )
    alone.add_argument("--quick", action="store_true", help="fewer calls per path")
    alone.add_argument("--json", metavar="PATH", type=Path, help="also write the breakdown as JSON here")
    add_config_arguments(alone)


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """The sizes that override the --quick or full plan."""
    sizes = parser.add_argument_group("sizes (override the --quick or full plan)")
    sizes.add_argument("--samples", type=_positive(int), metavar="N", help="enqueue calls timed per round")
    sizes.add_argument("--rounds", type=_positive(int), metavar="N", help="enqueue rounds")
    sizes.add_argument(
        "--drain-tasks",
        type=_positive(int, at_least=2),  # a rate needs a first and a last completion
        metavar="N",
        help="tasks per drain round (at least 2)",
    )
    sizes.add_argument(
        "--rate", type=_positive(float), metavar="PER_S", help="open-loop arrival rate (tasks/s)"
    )
    sizes.add_argument("--duration", type=_positive(float), metavar="S", help="open-loop duration (seconds)")


def add_sweep_parser(sub: Any) -> None:
    """``sweep``: a matrix of configurations (``bench.sweep``)."""
    sweep = sub.add_parser(
        "sweep",
        help="measure a matrix of configurations; tables per objective, the Pareto front, advice",
        description="Each cell of the matrix (built-in, --matrix FILE.toml or --set-axis) measured with the "
        "main job's measurements, cells interleaved round by round; one table per objective, the Pareto "
        "front, and a recommendation per objective with its cost in the others.",
    )
    sweep.add_argument("--quick", action="store_true", help="fewer cells and rounds (under ~4 min)")
    sweep.add_argument("--matrix", type=Path, metavar="FILE.toml", help="the cells, in TOML (see docs)")
    sweep.add_argument(
        "--set-axis", action="append", default=[], metavar="NAME=V1,V2", dest="axes",
        help="an axis of settings (repeatable; the cells are the product of the axes); replaces the matrix",
    )  # fmt: skip
    sweep.add_argument("--pool", default="solo", metavar="NAME", help="the pool of cells that name none")
    sweep.add_argument("--rounds", type=_positive(int), metavar="N", help="rounds per cell (interleaved)")
    sweep.add_argument(
        "--broker", action="append", metavar="KIND", dest="brokers",
        help="only redis: a sweep measures on Redis (bench run --broker rabbitmq measures RabbitMQ)",
    )  # fmt: skip
    add_broker_url_argument(sweep)
    add_config_arguments(sweep)
    sweep.add_argument("--json", metavar="PATH", type=Path, help="default reports/sweep-<timestamp>.json")
    sweep.add_argument("--no-plots", action="store_true", help="write no PNG (nor the plot in the HTML)")


def add_compare_parser(sub: Any) -> None:
    """``compare A.json B.json [--threshold PCT]`` (``bench.compare``)."""
    compare = sub.add_parser(
        "compare",
        help="compare two JSON reports figure by figure; exit 1 on a significant regression",
        description="Per figure (matched by scenario, pool and configuration): B faster or slower than A, "
        "by how much, and whether it is significant (Welch's t-test on the rounds). Exit 1 when a figure "
        "is significantly slower by more than the threshold, 2 on bad input.",
    )
    compare.add_argument("a", type=Path, metavar="A.json", help="the reference report (before)")
    compare.add_argument("b", type=Path, metavar="B.json", help="the report to judge (after)")
    compare.add_argument(
        "--threshold", type=_non_negative, metavar="PCT", default=None,
        help="a significant slowdown beyond PCT percent is a regression (default 10)",
    )  # fmt: skip


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a percentage such as 5")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite percentage >= 0")
    return value


def add_broker_url_argument(parser: argparse.ArgumentParser) -> None:
    """``--broker-url``: a broker the user runs (Redis or RabbitMQ), instead of a private one."""
    parser.add_argument(
        "--broker-url", metavar="URL", default=os.environ.get("BENCH_BROKER_URL") or None,
        help="use this broker (redis://... or amqp://...; never flushed or stopped) instead of a private one "
        "of its kind; env BENCH_BROKER_URL",
    )  # fmt: skip


def add_broker_argument(parser: argparse.ArgumentParser) -> None:
    """``--broker KIND`` (repeatable): the brokers under test."""
    parser.add_argument(
        "--broker", action="append", metavar="KIND", dest="brokers",
        help=f"broker to benchmark (repeatable; {' or '.join(brokers.KINDS)}); default: every broker this "
        "machine can start (with --broker-url: its kind); results always go to a Redis",
    )  # fmt: skip


def select_brokers(
    requested: Sequence[str] | None,
    url: str | None,
    support: Any = None,
    say: Any = None,
) -> tuple[str, ...]:
    """The broker kinds to run, in ``brokers.KINDS`` order; bad or contradictory input raises
    :class:`UsageError` (one line). ``--broker-url`` is the broker of its scheme's kind; without
    ``--broker`` the default is that kind alone, or, without a URL, every kind this machine can start
    (``say`` is told which it cannot, and why)."""
    support = support or brokers.support
    url_kind = _url_kind(url)
    unknown = [k for k in requested or () if k not in brokers.KINDS]
    if unknown:
        raise UsageError(f"--broker {unknown[0]!r}: unknown broker; choose one of {', '.join(brokers.KINDS)}")
    if requested:
        chosen = [k for k in brokers.KINDS if k in requested]
    elif url_kind:
        chosen = [url_kind]
    else:
        chosen = [k for k in brokers.KINDS if support(k).available]
        for kind in (k for k in brokers.KINDS if k not in chosen and say is not None):
            say(f"bench: not measuring {kind}: {support(kind).reason}")
        if not chosen:
            raise UsageError(f"no broker can be started here: {support(brokers.KINDS[0]).reason}")
    if url_kind and url_kind not in chosen:
        raise UsageError(
            f"--broker-url is a {url_kind} URL but --broker asks for {', '.join(chosen)}: add --broker "
            f"{url_kind} or drop --broker-url"
        )
    for kind in chosen:
        info = support(kind)
        if kind != url_kind and not info.available:
            raise UsageError(f"--broker {kind}: {info.reason}")
    return tuple(chosen)


def _url_kind(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return brokers.kind_of_url(url)
    except BrokerError as exc:
        raise UsageError(f"--broker-url: {exc}") from None


def check_broker_url(url: str) -> None:
    """That the user's broker answers (a Redis PING, an AMQP login); else :class:`UsageError`."""
    try:
        if brokers.kind_of_url(url) == "redis":
            check_url(url)
        else:
            from bench.brokers.rabbitmq import check_url as check_amqp_url

            check_amqp_url(url)
    except BrokerError as exc:
        raise UsageError(f"--broker-url: {exc}") from None


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--app`` and ``--set``: the configuration under test (``bench.config``)."""
    parser.add_argument(
        "--app", metavar="MODULE[:ATTR]", default=None,
        help=f"the Celery app under test (default: the seed's {config.DEFAULT_APP}); it keeps its own "
        "settings except the broker and backend URLs, which point at the harness's broker",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
        help="a Celery setting for workers and producers alike (repeatable; VALUE as JSON or a Python "
        "literal), e.g. --set worker_prefetch_multiplier=1",
    )  # fmt: skip


def build_config(args: argparse.Namespace) -> config.Config:
    """The configuration under test from ``--app`` / ``--set``; bad input raises :class:`UsageError`."""
    try:
        return config.build(args.app, args.sets)
    except config.ConfigError as exc:
        raise UsageError(str(exc)) from None


def _plan(args: argparse.Namespace) -> scenarios.Plan:
    plan = scenarios.QUICK if args.quick else scenarios.FULL
    overrides = {
        "enqueue_per_round": args.samples,
        "enqueue_rounds": args.rounds,
        "drain_tasks": args.drain_tasks,
        "e2e_rate": args.rate,
        "e2e_seconds": args.duration,
    }
    return dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})


def default_json_path(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return REPORT_DIR / f"bench-{stamp}.json"


def check_writable(path: Path) -> None:
    """Fail early (before any benchmark runs) when the report cannot be written to ``path``."""
    if path.is_dir():
        raise UsageError(f"--json {path}: is a directory; give a file path such as {path / 'bench.json'}")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".bench-write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"--json {path}: cannot write in {parent} ({reason}); choose a writable path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"--json {path}: the file is not writable; choose another path")


def _options(args: argparse.Namespace) -> tuple[scenarios.Options, Path]:
    try:
        chosen = pools.select(args.pool)
    except ValueError as exc:
        raise UsageError(f"--pool: {exc}")
    configured = build_config(args)
    kinds = select_brokers(args.brokers, args.broker_url, say=_say)
    path = args.json or default_json_path()
    check_writable(path)
    if args.broker_url:
        check_broker_url(args.broker_url)
    options = scenarios.Options(
        pools=tuple(chosen),
        brokers=kinds,
        broker_url=args.broker_url,
        quick=args.quick,
        reliability=not args.no_reliability,
        plan=_plan(args),
        config=configured,
    )
    return options, path


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


CELERY_ENV_URLS = (
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_BROKER_READ_URL",
    "CELERY_BROKER_WRITE_URL",
)
"""Variables Celery prefers over any app's configured URLs: they would send the harness's own client
apps to another broker. The harness passes its broker explicitly to everything it starts."""


def _drop_celery_env_urls() -> None:
    for name in CELERY_ENV_URLS:
        if os.environ.pop(name, None):
            _say(f"bench: ignoring {name} from the environment (use --broker-url to choose the broker)")


def progress_renderer(stream: TextIO) -> contextlib.AbstractContextManager[progress.Listener]:
    """A live bar (rich) when ``stream`` is a terminal; else today's plain lines, which logs and CI keep."""
    if stream.isatty():
        return progress.RichBar(stream)
    return contextlib.nullcontext(progress.PlainLines(_say))


def cmd_fleet(args: argparse.Namespace) -> int:
    """``run --fleet``: measure workers the harness did not start (bench.fleet)."""
    from bench import fleet

    if not args.broker_url:
        raise UsageError("--fleet measures workers already running on a broker: give --broker-url URL")
    if args.app or args.sets:
        raise UsageError(
            "--app/--set do not apply to --fleet: its workers run their own app and settings; drop them"
        )
    try:
        check_url(args.broker_url)
    except BrokerError as exc:
        raise UsageError(f"--broker-url: {exc}")
    _drop_celery_env_urls()
    overrides = {"drain_tasks": args.drain_tasks, "e2e_rate": args.rate, "e2e_seconds": args.duration}
    sizes = fleet.Sizes(**{k: v for k, v in overrides.items() if v is not None})
    try:
        measured = fleet.measure(args.broker_url, sizes=sizes, progress=_say)
    except fleet.FleetError as exc:
        raise UsageError(f"--fleet: {exc}")
    print(fleet.text(measured), flush=True)
    return EXIT_OK


def cmd_host_faults(args: argparse.Namespace) -> int:
    """``run --host-faults``: a compose fleet of the harness's own, broken on purpose (bench.hostfaults)."""
    from bench import hostfaults

    if args.fleet or args.broker_url:
        raise UsageError("--host-faults brings up a fleet of its own: drop --fleet and --broker-url")
    _drop_celery_env_urls()
    try:
        rows = hostfaults.run_all(say=_say)
    except hostfaults.HostFaultError as exc:
        raise RuntimeError(f"--host-faults: {exc}")
    print(report.reliability_table(rows), flush=True)
    return EXIT_OK


def clean_stale_runs() -> None:
    """Remove what killed runs left (bench.stale), saying so in one line if there was anything."""
    line = stale.summary(stale.clean())
    if line:
        _say(f"bench: {line}")


def cmd_run(args: argparse.Namespace) -> int:
    if args.breakdown and (args.host_faults or args.fleet):
        raise UsageError("--breakdown measures the harness's own producer: drop --fleet/--host-faults")
    if args.brokers and (args.host_faults or args.fleet):
        raise UsageError(
            "--broker chooses the brokers the harness starts: drop it with --fleet/--host-faults"
        )
    if args.host_faults:
        return cmd_host_faults(args)
    if args.fleet:
        return cmd_fleet(args)
    options, path = _options(args)
    _drop_celery_env_urls()
    run_id()  # every child carries this run's id and owner, so a next run can clean up after a kill
    clean_stale_runs()
    size = "quick" if options.quick else "full"
    configured = report.config_line(options.config.to_json())
    _say(
        f"bench: brokers {', '.join(options.brokers)} (results: Redis); pools {', '.join(options.pools)}; "
        f"{size} run; report {path}; {configured}"
    )
    with progress_renderer(sys.stderr) as listener:
        run = scenarios.run(options, progress=listener)
    print(report.text(run), flush=True)
    measured = None
    if args.breakdown:
        try:
            measured = _breakdown(options)
        except (RuntimeError, OSError, ValueError, BrokerError) as exc:  # the main figures are still written
            run = dataclasses.replace(run, errors=(*run.errors, f"breakdown failed: {_first_line(exc)}"))
    extra = {} if measured is None else {"breakdown": breakdown_format.to_json(measured)}
    written = [report.write_json(run, path, extra=extra)]
    if not args.no_plots:
        png = report.plot(run, path.with_suffix(".png"))
        sections = (
            [] if measured is None else [("breakdown", "Breakdown", breakdown_format.html_section(measured))]
        )
        written += [png, html.write_page(run, path.with_suffix(".html"), extra=sections)]
    print("", *(f"wrote {p}" for p in written), sep="\n", flush=True)
    if run.errors:
        _say(f"bench: done in {run.duration_s:.0f}s, with errors: {'; '.join(run.errors)}")
        return EXIT_FAILED
    _say(f"bench: done in {run.duration_s:.0f}s")
    return EXIT_OK


def _breakdown(options: scenarios.Options) -> breakdown.Breakdown:
    """``run --breakdown``: the enqueue cost by layer, apart from the latency figures, on a private Redis
    (its command counts need a broker nothing else uses), printed as it is measured."""
    from bench.broker import private_redis

    sizes = breakdown.QUICK if options.quick else breakdown.FULL
    with private_redis() as broker:
        measured = breakdown.run(
            broker.url, sizes=sizes, settings=options.config.producer_settings, progress=_say
        )
    print("", breakdown_format.text(measured), sep="\n", flush=True)
    return measured


def cmd_breakdown(args: argparse.Namespace) -> int:
    """``python -m bench breakdown``: the breakdown alone; same exit statuses as ``run``."""
    try:
        configured = build_config(args)
        if args.json:
            check_writable(args.json)
        _drop_celery_env_urls()
        run_id()  # its Redis carries this run's id, so a next run can clean up after a kill
        clean_stale_runs()
        options = scenarios.Options(pools=(), quick=args.quick, config=configured)
        measured = _breakdown(options)
    except UsageError as exc:
        _say(f"python -m bench breakdown: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("python -m bench breakdown: interrupted; the Redis it started has been stopped")
        return EXIT_INTERRUPTED
    except (RuntimeError, TimeoutError, OSError, ValueError, BrokerError) as exc:
        _say(f"python -m bench breakdown: failed: {_first_line(exc)}")
        return EXIT_FAILED
    if args.json:
        args.json.write_text(json.dumps(breakdown_format.to_json(measured), indent=2, allow_nan=False) + "\n")
        print(f"\nwrote {args.json}", flush=True)
    return EXIT_OK


def sweep_cells(args: argparse.Namespace) -> tuple[tuple[Any, ...], int | None]:
    """The cells (and rounds) from ``--set-axis``, ``--matrix`` or the built-in matrix; bad input: exit 2."""
    from bench import sweep

    try:
        if args.axes and args.matrix:
            raise sweep.SweepError("give --matrix or --set-axis, not both")
        if args.axes:
            return sweep.axes_cells(args.axes), args.rounds
        if args.matrix:
            cells, rounds = sweep.load_matrix(args.matrix)
            return cells, args.rounds or rounds
        return sweep.builtin(quick=args.quick), args.rounds
    except sweep.SweepError as exc:
        raise UsageError(str(exc)) from None


def cmd_sweep(args: argparse.Namespace) -> int:
    """``sweep``: tables per objective, the Pareto front, the advice; JSON, HTML (and PNG)."""
    from bench import sweep, sweep_html, tables

    try:
        pool = pools.select([args.pool])[0]
    except ValueError as exc:
        raise UsageError(f"--pool: {exc}")
    cells, rounds = sweep_cells(args)
    base = build_config(args)
    try:
        sweep.cell_settings(dict(base.settings), where="--set")
        sweep.check_hiredis(cells, base)
    except sweep.SweepError as exc:
        raise UsageError(str(exc)) from None
    path = args.json or REPORT_DIR / default_json_path().name.replace("bench-", "sweep-")
    check_writable(path)
    check_sweep_broker(args)
    _drop_celery_env_urls()
    run_id()
    clean_stale_runs()
    result = sweep.run(
        cells, base=base, pool=pool, quick=args.quick, rounds=rounds, broker_url=args.broker_url, say=_say
    )
    print(tables.sweep_text(result), flush=True)
    path.write_text(json.dumps(sweep.to_json(result), indent=2, allow_nan=False) + "\n")
    png = None if args.no_plots else tables.sweep_png(result)
    written = [path, sweep_html.write_page(result, path.with_suffix(".html"), figure=lambda _: png)]
    if png is not None:
        written.append(path.with_suffix(".png"))
        written[-1].write_bytes(png)
    print("", *(f"wrote {p}" for p in written), sep="\n", flush=True)
    _say(f"bench: sweep done in {result.duration_s:.0f}s")
    return EXIT_OK


SWEEP_REDIS_ONLY = (
    "a sweep measures on Redis only: drop {option} (python -m bench run --broker {kind} measures {kind} "
    "beside Redis)"
)


def check_sweep_broker(args: argparse.Namespace) -> None:
    """A sweep runs on Redis: ``--broker`` other than redis, or an AMQP ``--broker-url``, is bad input."""
    for kind in args.brokers or ():
        if kind not in brokers.KINDS:
            raise UsageError(f"--broker {kind!r}: unknown broker; choose one of {', '.join(brokers.KINDS)}")
        if kind != "redis":
            raise UsageError(SWEEP_REDIS_ONLY.format(option=f"--broker {kind}", kind=kind))
    if args.broker_url:
        kind = _url_kind(args.broker_url)
        if kind != "redis":
            raise UsageError(SWEEP_REDIS_ONLY.format(option="--broker-url amqp://...", kind=kind))
        check_broker_url(args.broker_url)


def cmd_compare(args: argparse.Namespace) -> int:
    """``compare A.json B.json``: 0 no significant regression, 1 a regression, 2 bad input."""
    from bench import compare, tables

    threshold = compare.DEFAULT_THRESHOLD if args.threshold is None else args.threshold / 100
    try:
        comparison = compare.compare_files(args.a, args.b, threshold=threshold)
    except compare.CompareError as exc:
        _say(f"python -m bench compare: error: {exc}")
        return EXIT_USAGE
    print(tables.comparison_text(comparison), flush=True)
    return EXIT_FAILED if comparison.regressions else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["repeat"]:  # its own parser: everything after `--` goes to `bench run`
        from bench import repeat

        return repeat.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(report.JSON_SCHEMA, indent=2))
        return EXIT_OK
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "sweep":
        return _guarded("sweep", cmd_sweep, args)
    if args.command == "breakdown":
        raise_on_sigterm()
        return cmd_breakdown(args)
    return _guarded("run", cmd_run, args)


def _guarded(name: str, command: Any, args: argparse.Namespace) -> int:
    """Run ``command(args)``, mapping its exceptions to one line and an exit status."""
    raise_on_sigterm()
    try:
        return int(command(args))
    except UsageError as exc:
        _say(f"python -m bench {name}: error: {exc}")
        return EXIT_USAGE
    except BrokerError as exc:  # e.g. no redis-server installed, or it died: the message says what to do
        _say(f"python -m bench {name}: failed: {_first_line(exc)}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say(f"python -m bench {name}: interrupted; every worker and broker it started has been stopped")
        return EXIT_INTERRUPTED
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
        _say(f"python -m bench {name}: failed: {_first_line(exc)}")
        return EXIT_FAILED


def _first_line(exc: BaseException) -> str:
    """One line for the terminal (a broker's or worker's log tail stays in the exception, not on screen)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
