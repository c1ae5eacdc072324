"""bench.cli: option parsing and the bad-input paths (no benchmark runs, no server needed)."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime

import pytest

from bench import brokers, cli, report, scenarios


@pytest.fixture
def no_run(monkeypatch):
    """Bad input must be refused before anything starts: running the matrix is a test failure."""

    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark matrix started despite bad input")

    monkeypatch.setattr(scenarios, "run", refuse)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_unknown_pool(no_run, capsys):
    assert cli.main(["run", "--pool", "greenlet", "--json", "/tmp/unused.json"]) == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert "--pool" in line and "'greenlet'" in line and "choose one of solo, prefork, threads" in line


def test_green_pool_without_its_package_names_the_extra(no_run, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gevent" else real(name, *a)
    )
    assert cli.main(["run", "--pool", "gevent", "--json", "/tmp/unused.json"]) == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert "--pool" in line and "'gevent' is unavailable" in line and "pip install -e '.[green]'" in line


def test_unreachable_broker(no_run, capsys, tmp_path):
    code = cli.main(["run", "--broker-url", "redis://127.0.0.1:1/0", "--json", str(tmp_path / "r.json")])
    assert code == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert "--broker-url" in line and "cannot reach broker" in line and "pass another --broker-url" in line


def test_broker_url_of_another_scheme(no_run, capsys, tmp_path):
    code = cli.main(["run", "--broker-url", "kafka://localhost:9092", "--json", str(tmp_path / "r.json")])
    assert code == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert "--broker-url" in line and "use redis://HOST:PORT/DB or amqp://USER:PASSWORD@HOST:PORT//" in line


def test_unreachable_amqp_broker(no_run, capsys, tmp_path):
    url = "amqp://someone:s3cret-pw@127.0.0.1:1//"
    assert cli.main(["run", "--broker-url", url, "--json", str(tmp_path / "r.json")]) == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert "--broker-url" in line and "cannot reach broker amqp://someone:***@127.0.0.1:1//" in line
    assert "s3cret-pw" not in line


def _support(unavailable=()):
    """A ``brokers.support`` where the kinds in ``unavailable`` cannot be started (their reason: the hint)."""

    def support(kind):
        reason = (
            f"no {kind}-server found on PATH: install it or pass --broker-url" if kind in unavailable else ""
        )
        return brokers.BrokerSupport(kind, kind not in unavailable, reason)

    return support


@pytest.mark.parametrize(
    ("requested", "url", "chosen"),
    [
        (None, None, ("redis", "rabbitmq")),  # every broker this machine can start, in KINDS order
        (["rabbitmq", "redis", "rabbitmq"], None, ("redis", "rabbitmq")),
        (["rabbitmq"], None, ("rabbitmq",)),
        (None, "amqp://u:p@broker.example:5672//", ("rabbitmq",)),  # --broker-url alone: its kind
        (None, "redis://broker.example:6379/0", ("redis",)),
        (["redis", "rabbitmq"], "amqp://u:p@broker.example:5672//", ("redis", "rabbitmq")),
    ],
)
def test_select_brokers(requested, url, chosen):
    assert cli.select_brokers(requested, url, support=_support()) == chosen


def test_default_brokers_skip_what_this_machine_cannot_start_and_say_why():
    said = []
    assert cli.select_brokers(None, None, support=_support({"rabbitmq"}), say=said.append) == ("redis",)
    assert said == [
        "bench: not measuring rabbitmq: no rabbitmq-server found on PATH: install it or pass --broker-url"
    ]
    # ...but a user's AMQP URL needs no rabbitmq-server here.
    url = "amqp://u:p@broker.example:5672//"
    assert cli.select_brokers(["rabbitmq"], url, support=_support({"rabbitmq"})) == ("rabbitmq",)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--broker", "kafka"], "--broker 'kafka': unknown broker; choose one of redis, rabbitmq"),
        (
            ["--fleet", "--broker", "redis"],
            "--broker chooses the brokers the harness starts: drop it with --fleet",
        ),
        (["--broker", "rabbitmq"], "--broker rabbitmq: no rabbitmq-server found on PATH: install it"),
        (
            ["--broker", "redis", "--broker-url", "amqp://u:p@127.0.0.1:1//"],
            "--broker-url is a rabbitmq URL but --broker asks for redis: add --broker rabbitmq or drop "
            "--broker-url",
        ),
    ],
)
def test_bad_broker_choice_exits_2_with_one_line(no_run, capsys, tmp_path, monkeypatch, argv, expected):
    monkeypatch.setattr(brokers, "support", _support({"rabbitmq"}))
    assert cli.main(["run", *argv, "--json", str(tmp_path / "r.json")]) == cli.EXIT_USAGE
    assert expected in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--broker", "rabbitmq"], "a sweep measures on Redis only: drop --broker rabbitmq"),
        (
            ["--broker-url", "amqp://u:p@127.0.0.1:1//"],
            "a sweep measures on Redis only: drop --broker-url amqp://",
        ),
        (["--broker", "kafka"], "unknown broker"),
    ],
)
def test_sweep_stays_on_redis(capsys, tmp_path, monkeypatch, argv, expected):
    from bench import sweep

    monkeypatch.setattr(sweep, "run", lambda *a, **k: pytest.fail("the sweep started despite bad input"))
    assert cli.main(["sweep", "--quick", *argv, "--json", str(tmp_path / "s.json")]) == cli.EXIT_USAGE
    assert expected in _one_line_error(capsys)


def test_json_path_under_a_file(no_run, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli.main(["run", "--json", str(blocker / "r.json")]) == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert "--json" in line and "choose a writable path" in line


def test_json_path_is_a_directory(no_run, capsys, tmp_path):
    assert cli.main(["run", "--json", str(tmp_path)]) == cli.EXIT_USAGE
    assert "is a directory" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--rate", "-5"), ("--rate", "fast"), ("--samples", "0"), ("--samples", "1.5"), ("--duration", "nan")],
)
def test_bad_numbers(no_run, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", option, value])
    assert exc.value.code == cli.EXIT_USAGE
    line = _one_line_error(capsys)
    assert option in line and repr(value) in line and "--help" in line


def test_plan_overrides_apply_to_the_chosen_plan():
    args = cli.build_parser().parse_args(["run", "--quick", "--rate", "50", "--samples", "10"])
    plan = cli._plan(args)
    assert plan.e2e_rate == 50.0 and plan.enqueue_per_round == 10
    assert plan.drain_tasks == scenarios.QUICK.drain_tasks
    full = cli._plan(cli.build_parser().parse_args(["run"]))
    assert full == scenarios.FULL


def test_default_json_path():
    assert (
        cli.default_json_path(datetime(2025, 3, 4, 5, 6, 7)).as_posix()
        == "reports/bench-20250304-050607.json"
    )


def test_schema_command_prints_the_schema(capsys):
    assert cli.main(["schema"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out) == report.JSON_SCHEMA


def test_interrupt_exits_130(monkeypatch, capsys, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scenarios, "run", interrupted)
    assert cli.main(["run", "--quick", "--json", str(tmp_path / "r.json")]) == cli.EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("errors", [(), ("reliability section failed: TimeoutError: slow",)])
def test_report_is_written_and_the_exit_status_tells_about_errors(monkeypatch, capsys, tmp_path, errors):
    from tests.unit.sample_run import sample_run as _run

    monkeypatch.setattr(scenarios, "run", lambda *args, **kwargs: _run(errors=errors))
    path = tmp_path / "r.json"
    code = cli.main(["run", "--quick", "--json", str(path)])
    assert code == (cli.EXIT_FAILED if errors else cli.EXIT_OK)
    assert json.loads(path.read_text())["errors"] == list(errors)
    assert path.with_suffix(".png").exists() and path.with_suffix(".html").exists()
    out = capsys.readouterr().out
    assert out.startswith("scenario") and f"wrote {path}" in out


def test_drain_needs_two_tasks(no_run, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--drain-tasks", "1", "--json", str(tmp_path / "r.json")])
    assert exit_info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--drain-tasks" in err and "'1' is too small: give at least 2" in err


def test_celery_url_variables_do_not_redirect_the_harness(monkeypatch, capsys, tmp_path):
    """Celery prefers CELERY_BROKER_URL over an app's own URL; the job must not send its apps there."""
    seen = {}

    def fake_run(options, progress):
        seen["env"] = {k: v for k, v in cli.os.environ.items() if k in cli.CELERY_ENV_URLS}
        raise KeyboardInterrupt

    monkeypatch.setattr(scenarios, "run", fake_run)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://elsewhere:6379/0")
    assert cli.main(["run", "--json", str(tmp_path / "r.json")]) == cli.EXIT_INTERRUPTED
    assert seen["env"] == {}
    assert "ignoring CELERY_BROKER_URL from the environment" in capsys.readouterr().err


def test_a_failure_mid_run_is_one_line_and_status_1(monkeypatch, capsys, tmp_path):
    def fail(options, progress):
        raise cli.BrokerError("private redis-server exited with 1: \nlog line 1\nlog line 2")

    monkeypatch.setattr(scenarios, "run", fail)
    assert cli.main(["run", "--json", str(tmp_path / "r.json")]) == cli.EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "python -m bench run: failed: private redis-server exited with 1:"
