"""bench.config: --app / --set parsing, the Config value, its place in the report (no server)."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from bench import cli, config, loadgen, report, scenarios, worker
from bench.config import Config, ConfigError
from bench.worker import Worker
from tests.unit.sample_run import RECORD, sample_run


@pytest.fixture
def no_run(monkeypatch):
    """Bad input must be refused before anything starts: running the matrix is a test failure."""

    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark matrix started despite bad input")

    monkeypatch.setattr(scenarios, "run", refuse)


# -- --set ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("worker_prefetch_multiplier=1", 1),
        ("task_acks_late=true", True),
        ("task_acks_late=True", True),  # a Python literal
        ("task_serializer=msgpack", "msgpack"),  # a string setting takes bare text
        ('task_serializer="json"', "json"),
        ("broker_transport_options={'visibility_timeout': 5}", {"visibility_timeout": 5}),
        ('accept_content=["json", "msgpack"]', ["json", "msgpack"]),
        ("task_compression=None", None),
        ("result_expires=2.5", 2.5),
    ],
)
def test_set_parses_json_or_python_literals(item, expected):
    name, value = config.parse_set(item)
    assert name == item.partition("=")[0] and value == expected


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("no_such_setting=1", "--set no_such_setting: not a Celery setting name"),
        ("CELERY_TASK_ACKS_LATE=1", "not a Celery setting name"),
        ("worker_prefetch_multiplier=abc", "neither JSON nor a Python literal"),
        ('worker_prefetch_multiplier="4"', "expected a value of type int, got str"),
        ("task_acks_late=1", "expected a value of type bool, got int"),
        ("worker_prefetch_multiplier={1, 2}", "set values cannot reach a worker"),
        ("broker_url=redis://x", "use --broker-url instead"),
        ("worker_pool=threads", "use --pool instead"),
        ("timezone=UTC", "cannot be passed to a worker's command line"),
        ("task_acks_late", "give NAME=VALUE"),
    ],
)
def test_set_refuses_bad_names_and_values_with_one_line(item, says):
    with pytest.raises(ConfigError) as caught:
        config.parse_set(item)
    message = str(caught.value)
    assert says in message and "\n" not in message


def test_a_later_set_wins_and_settings_are_sorted():
    assert config.parse_sets(["task_acks_late=true", "result_expires=5", "task_acks_late=false"]) == (
        ("result_expires", 5),
        ("task_acks_late", False),
    )


# -- --app ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["tasks", "tasks:app", "examples.shop", "examples.shop:app"])
def test_app_specs_find_the_celery_instance(spec):
    app = config.load_app(spec)
    assert app.main == ("demo" if spec.startswith("tasks") else "shop")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_such_module_here", "cannot import 'no_such_module_here'"),
        ("tasks:nothing", "tasks.nothing is not a Celery instance"),
        ("tasks:add", "tasks.add is not a Celery instance"),
        ("bench.defaults", "no Celery instance in bench.defaults"),
        ("tasks:", "give MODULE or MODULE:ATTR"),
    ],
)
def test_bad_app_specs_are_refused(spec, says):
    with pytest.raises(ConfigError, match=None) as caught:
        config.load_app(spec)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_the_app_keeps_its_own_producer_settings_and_set_wins():
    configured = config.build("examples.shop", ["task_compression=gzip", "worker_prefetch_multiplier=3"])
    producer = configured.producer_settings
    assert producer["task_serializer"] == "json" and producer["task_compression"] == "gzip"
    assert dict(configured.app_settings)["task_compression"] == "zlib"  # the app's own, before --set
    # Routing, workers' and URL settings stay out of the harness's producers.
    for name in ("task_routes", "task_default_queue", "broker_url", "result_backend", "imports"):
        assert name not in producer
    assert "worker_prefetch_multiplier" not in dict(configured.app_settings)
    assert configured.worker_settings == {"task_compression": "gzip", "worker_prefetch_multiplier": 3}


def test_config_is_frozen_and_placed_on_a_cell():
    base = config.build(None, ["task_acks_late=true"])
    cell = base.on("prefork", 2)
    assert (base.pool, base.concurrency) == (None, None) and (cell.pool, cell.concurrency) == ("prefork", 2)
    with pytest.raises(AttributeError):
        base.app = "other"  # type: ignore[misc]
    assert base.is_default is False and Config().is_default is True and Config(app="tasks:app").is_default
    doc = cell.to_json()
    assert doc["app"] == "tasks" and doc["settings"] == {"task_acks_late": True}
    assert json.loads(json.dumps(doc)) == doc


def test_worker_argv_carries_the_app_the_probes_and_the_settings():
    cell = config.build("examples.shop", ["worker_prefetch_multiplier=3", "task_acks_late=false"]).on(
        "solo", 1
    )
    argv = Worker("redis://127.0.0.1:1/0", **cell.worker_kwargs()).argv()
    assert argv[argv.index("-A") + 1] == "examples.shop"
    assert "--include=bench.probes" in argv and "--pool=solo" in argv and "--concurrency=1" in argv
    # prefetch goes as the worker's option (Celery reads it before the ``--`` settings apply)
    assert "--prefetch-multiplier=3" in argv
    assert argv[argv.index("--") + 1 :] == ["task_acks_late=(json)false"]


def test_worker_argv_without_settings_has_no_separator():
    assert "--" not in Worker("redis://127.0.0.1:1/0").argv()
    assert config.worker_argv({"worker_disable_prefetch": True}) == ["--disable-prefetch"]


def test_a_setting_the_command_line_would_read_as_not_given_goes_into_the_app_first():
    settings = {"worker_prefetch_multiplier": 0, "worker_disable_prefetch": False, "task_acks_late": True}
    assert config.before_command_line(settings) == {"worker_prefetch_multiplier": 0}
    assert config.worker_argv(settings) == ["--", "task_acks_late=(json)true"]
    argv = Worker("redis://127.0.0.1:1/0", app="examples.shop", settings=settings).argv()
    assert argv[1:3] == ["-c", worker.LAUNCH] and argv[3:6] == [
        "examples.shop",
        '{"worker_prefetch_multiplier": 0}',
        "worker",
    ]
    assert "-A" not in argv and "--prefetch-multiplier=0" not in argv
    assert config.before_command_line({"worker_prefetch_multiplier": 1}) == {}  # 1 goes as the option


def test_the_harness_sends_the_probes_by_their_registered_names():
    from bench import probes

    assert (loadgen.NOOP, loadgen.STAMP) == (probes.noop.name, probes.stamp.name)


# -- the command line -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--set", "no_such_setting=1"], "--set no_such_setting: not a Celery setting name"),
        (["--set", "worker_prefetch_multiplier=abc"], "--set worker_prefetch_multiplier=abc"),
        (["--app", "no_such_module_here"], "--app no_such_module_here: cannot import"),
        (["--app", "bench.defaults"], "--app bench.defaults: no Celery instance"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(no_run, capsys, tmp_path, argv, says):
    code = cli.main(["run", *argv, "--json", str(tmp_path / "r.json")])
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "r.json").exists()


def test_fleet_refuses_a_configuration_it_cannot_apply(capsys):
    code = cli.main(
        ["run", "--fleet", "--broker-url", "redis://127.0.0.1:1/0", "--set", "task_acks_late=true"]
    )
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--app/--set do not apply to --fleet" in err[0], err


def test_the_command_line_builds_the_options_config(tmp_path):
    args = cli.build_parser().parse_args(
        [
            "run",
            "--app",
            "examples.shop:app",
            "--set",
            "task_acks_late=false",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    options, _ = cli._options(args)
    assert options.config.app == "examples.shop:app"
    assert options.config.settings == (("task_acks_late", False),)


# -- the report -------------------------------------------------------------------------------------
def _validate(doc: dict) -> None:
    jsonschema.Draft202012Validator(report.JSON_SCHEMA).validate(doc)


def test_every_row_carries_its_config():
    doc = report.to_json(sample_run(reliability=(RECORD,)))
    _validate(doc)
    assert doc["schema"] == report.SCHEMA_VERSION == 3
    for row in doc["results"]:
        assert (row["config"]["pool"], row["config"]["concurrency"]) == (row["pool"], row["concurrency"])
    assert doc["reliability"][0]["config"]["pool"] == RECORD.pool


def test_a_row_without_its_config_is_rejected():
    doc = report.to_json(sample_run())
    broken = copy.deepcopy(doc)
    del broken["results"][0]["config"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_a_version_1_report_migrates_to_a_valid_version_3():
    doc = json.loads(json.dumps(report.to_json(sample_run(reliability=(RECORD,)))))
    v1 = copy.deepcopy(doc)
    v1["schema"] = 1
    del v1["context"]["config"]
    for row in v1["results"] + v1["reliability"]:
        del row["config"]
    migrated = report.migrate(v1)
    _validate(migrated)
    assert all(
        row["config"]["app"] == "tasks" and row["config"]["settings"] == {} for row in migrated["results"]
    )
    with pytest.raises(ValueError, match="not a version-1 report"):
        report.migrate_v1(doc)


def test_the_terminal_report_names_the_configuration():
    run = sample_run()
    configured = config.build("examples.shop", ["task_acks_late=false"])
    run = type(run)(**{**run.__dict__, "context": {**run.context, "config": configured.to_json()}})
    assert "configuration: app examples.shop; task_acks_late=false" in report.text(run)
