"""The CI workflow, the compose stack and tox agree with each other and with their schemas.

No Docker engine and no GitHub here: the files are validated by check-jsonschema's vendored schemas
(offline), each with a broken copy it must reject, and then checked for consistency: tox has one env per
Python, broker and pool the harness knows; every tox env the workflow calls exists; the matrix runs every
pool on every broker and on every Python on Linux, and exactly the pools and brokers the harness offers on
Windows; the compose workers cover every pool on each broker with a healthcheck that pings their own node,
and the env contract holds.
"""

from __future__ import annotations

import configparser
import fnmatch
import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bench import brokers, defaults, pools
from tests.container import compose as compose_smoke

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
COMPOSE = ROOT / "docker-compose.yml"
CHECK_TIMEOUT = 120.0
"""Seconds one check-jsonschema or tox run may take (they are offline; this only bounds a hang)."""

RUNNER_PLATFORM = {"ubuntu-latest": "linux", "windows-latest": "win32"}
PYTHONS = ("3.11", "3.12", "3.13")
GREEN_POOLS = {"gevent", "eventlet"}  # their envs and images install the `green` extra
TEST_ENV = re.compile(r"^py(3\d+)-(\w+)-(\w+)$")  # PY-BROKER-POOL
NON_TOX_JOBS: set[str] = set()  # jobs that run no tox env (none: every job runs at least one)
DOCS = [ROOT / "README.md", ROOT / "docs" / "ci-docker-windows.md"]


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
    )


def expand_braces(pattern: str) -> list[str]:
    """``py3{11,12}-{a,b}`` -> ``py311-a, py311-b, py312-a, py312-b`` (tox's generative envlist)."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def envlist_from_ini() -> list[str]:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    # Entries are separated by newlines, or by commas outside braces.
    entries = re.split(r"\n|,(?![^{]*\})", ini["tox"]["envlist"])
    return [env for entry in entries if entry.strip() for env in expand_braces(entry.strip())]


@pytest.fixture(scope="module")
def tox_envs() -> list[str]:
    """``tox -l`` when tox is installed (the dev extra), else tox.ini's envlist expanded the same way."""
    if importlib.util.find_spec("tox") is None:
        return envlist_from_ini()
    listed = subprocess.run(
        [sys.executable, "-m", "tox", "-l"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=True,
    ).stdout.split()
    assert listed == envlist_from_ini(), "the fallback expansion must match tox itself"
    return listed


def env_factors(envs: list[str]) -> list[tuple[str, str, str]]:
    """(python, broker, pool) of every PY-BROKER-POOL env."""
    return [m.groups() for env in envs if (m := TEST_ENV.match(env))]  # type: ignore[misc]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    assert [p.name for p in WORKFLOWS] == ["ci.yml"]
    return load_yaml(WORKFLOWS[0])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


# -- schemas -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"])
def test_workflow_matches_the_schema(schema):
    for path in WORKFLOWS:
        result = check_jsonschema(schema, path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_schema_rejects_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: tox\n")  # no runs-on
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1, result.stdout + result.stderr


def test_compose_matches_the_compose_spec():
    result = check_jsonschema("vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_rejects_an_unknown_condition(tmp_path: Path):
    text = COMPOSE.read_text()
    assert "condition: service_healthy" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("condition: service_healthy", "condition: service_happy", 1))
    result = check_jsonschema("vendor.compose-spec", broken)
    assert result.returncode == 1, result.stdout + result.stderr


# -- tox -----------------------------------------------------------------------------------------------


def test_tox_has_one_env_per_python_broker_and_pool(tox_envs):
    """Depends on the broker and pool lists (bench.brokers.KINDS, bench.defaults.POOLS_ALL)."""
    expected = [
        (python.replace(".", ""), broker, pool)
        for python in PYTHONS
        for broker in brokers.KINDS
        for pool in defaults.POOLS_ALL
    ]
    assert sorted(env_factors(tox_envs)) == sorted(expected)
    others = [env for env in tox_envs if not TEST_ENV.match(env)]
    assert others == ["lint", "bench", "docker", "compose"]


def test_each_tox_env_runs_its_broker_and_pool(tox_envs):
    """tox itself resolves each env: the pytest command names its broker and pool, green pools get the
    green extra."""
    if importlib.util.find_spec("tox") is None:
        pytest.skip("tox is not installed (the dev extra): the env settings are tox's to resolve")
    envs = [env for env in tox_envs if TEST_ENV.match(env)]
    shown = subprocess.run(
        [sys.executable, "-m", "tox", "config", "-e", ",".join(envs), "-k", "extras", "commands"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=True,
    ).stdout
    sections = dict(re.findall(r"^\[testenv:([\w-]+)\]\n(.*?)(?=^\[|\Z)", shown, re.MULTILINE | re.DOTALL))
    assert sorted(sections) == sorted(envs)
    for env, body in sections.items():
        _, broker, pool = TEST_ENV.match(env).groups()  # type: ignore[union-attr]
        assert f"commands = pytest --broker {broker} --pool {pool}\n" in body, (env, body)
        extras = re.search(r"^extras =(.*?)(?=^\w)", body, re.MULTILINE | re.DOTALL)
        assert extras is not None, (env, body)
        assert "test" in extras.group(1).split(), env
        assert ("green" in extras.group(1).split()) == (pool in GREEN_POOLS), env


# -- the workflow --------------------------------------------------------------------------------------


def matrix_cells(job: dict[str, Any]) -> list[dict[str, Any]]:
    matrix = dict(job["strategy"]["matrix"])
    excludes = matrix.pop("exclude", [])
    assert "include" not in matrix, "extend matrix_cells() before using include"
    keys = list(matrix)
    cells = [dict(zip(keys, values, strict=True)) for values in itertools.product(*matrix.values())]
    return [c for c in cells if not any(all(c[k] == v for k, v in ex.items()) for ex in excludes)]


def substitute(text: str, cell: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found: Any = cell
        for part in match.group(1).split("."):
            found = found[part]
        return str(found)

    return re.sub(r"\$\{\{\s*matrix\.([\w.]+)\s*\}\}", value, text)


def tox_calls(job: dict[str, Any], cell: dict[str, Any] | None = None) -> list[str]:
    runs = [substitute(step.get("run", ""), cell or {}) for step in job["steps"]]
    return [env for run in runs for env in re.findall(r"\btox -e ([\w.-]+)", run)]


def test_every_tox_env_the_workflow_calls_exists(workflow, tox_envs):
    called: set[str] = set()
    for name, job in workflow["jobs"].items():
        cells = matrix_cells(job) if "strategy" in job else [None]
        for cell in cells:
            envs = tox_calls(job, cell)
            assert envs or name in NON_TOX_JOBS, f"job {name} runs no tox env"
            called.update(envs)
    assert called <= set(tox_envs), f"not in tox -l: {sorted(called - set(tox_envs))}"
    assert {"lint", "bench", "docker", "compose"} <= called
    # Not every PY-BROKER-POOL env has a cell (docs/ci-docker-windows.md, "Which cells"), but every
    # Python, broker and pool of tox -l does.
    for axis, values in enumerate(zip(*env_factors(tox_envs), strict=True)):
        missed = set(values) - {factors[axis] for factors in env_factors(sorted(called))}
        assert not missed, f"tox factors no CI job runs: {sorted(missed)}"


def linux_and_windows(workflow: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cells = matrix_cells(workflow["jobs"]["test"])
    for cell in cells:  # the tox env's Python is the cell's Python
        assert cell["python"]["tox"] == "py" + cell["python"]["version"].replace(".", "")
    assert {c["os"] for c in cells} == set(RUNNER_PLATFORM)
    return [c for c in cells if c["os"] == "ubuntu-latest"], [c for c in cells if c["os"] == "windows-latest"]


def test_linux_runs_every_pool_on_every_broker_and_every_python(workflow):
    """Each (Python, pool) once and each (broker, pool) at least once. Depends on bench.brokers.KINDS and
    the pool list (gevent, eventlet)."""
    linux, _ = linux_and_windows(workflow)
    for broker in brokers.KINDS:
        got = sorted({c["pool"] for c in linux if c["broker"] == broker})
        assert got == sorted(pools.available("linux")), broker
    for python in PYTHONS:
        got = [c["pool"] for c in linux if c["python"]["version"] == python]
        assert got == pools.available("linux"), python  # in order, and none twice


def test_windows_runs_its_pools_and_brokers_only(workflow):
    """The pools and brokers the harness offers on win32 (bench/pools.py, bench/brokers), on the ends of
    the supported Pythons. Depends on the pool list (gevent, eventlet on win32)."""
    _, windows = linux_and_windows(workflow)
    # Redis by URL (Memurai); a private RabbitMQ node is refused on win32, and there is no other.
    assert {c["broker"] for c in windows} == {"redis"}
    assert not brokers.support("rabbitmq", platform="win32").available
    pythons = sorted({c["python"]["version"] for c in windows})
    assert pythons[0] == PYTHONS[0] and pythons[-1] == PYTHONS[-1]
    for python in pythons:
        got = [c["pool"] for c in windows if c["python"]["version"] == python]
        assert got == pools.available("win32"), python


def test_the_documented_cell_count_is_the_matrix(workflow):
    cells = matrix_cells(workflow["jobs"]["test"])
    linux, windows = linux_and_windows(workflow)
    doc = (ROOT / "docs" / "ci-docker-windows.md").read_text()
    stated = re.search(
        r"(\d+) test cells: (\d+) on Linux \(Redis (\d+), RabbitMQ (\d+)\), (\d+) on Windows", doc
    )
    assert stated is not None, "docs/ci-docker-windows.md must state the matrix size"
    on_redis = sum(c["broker"] == "redis" for c in linux)
    assert tuple(map(int, stated.groups())) == (
        len(cells), len(linux), on_redis, len(linux) - on_redis, len(windows)
    )  # fmt: skip
    assert len(cells) < len(PYTHONS) * len(brokers.KINDS) * len(defaults.POOLS_ALL), "not the full product"


def test_prefork_exclusion_says_why(workflow):
    text = WORKFLOWS[0].read_text()
    exclude = text[text.index("exclude:") : text.index("pool: prefork", text.index("exclude:"))]
    assert "not enough values to unpack" in exclude and "fork()" in exclude


def test_rabbitmq_exclusion_on_windows_says_why(workflow):
    text = WORKFLOWS[0].read_text()
    start = text.index("pool: prefork", text.index("exclude:"))
    exclude = text[start : text.index("broker: rabbitmq", start)]
    assert "POSIX-only" in exclude and "service containers" in exclude
    assert not brokers.support("rabbitmq", platform="win32").available  # what the comment says


def test_each_cell_gets_its_broker(workflow):
    steps = workflow["jobs"]["test"]["steps"]
    linux = [s for s in steps if s.get("if") == "runner.os == 'Linux'"]
    windows = [s for s in steps if s.get("if") == "runner.os == 'Windows'"]
    assert any("apt-get install" in s["run"] and "redis-server" in s["run"] for s in linux)
    # RabbitMQ: the distribution package on the RabbitMQ cells only (the harness runs its own node from
    # the binary), installed after Redis's step has refreshed apt's lists.
    rabbit = [s for s in steps if "rabbitmq-server" in s.get("run", "")]
    assert len(rabbit) == 1 and rabbit[0]["if"] == "runner.os == 'Linux' && matrix.broker == 'rabbitmq'"
    assert "apt-get install" in rabbit[0]["run"] and "command -v rabbitmq-server epmd" in rabbit[0]["run"]
    refresh = next(i for i, s in enumerate(steps) if "apt-get update" in s.get("run", ""))
    assert refresh < steps.index(rabbit[0])
    assert "services" not in workflow["jobs"]["test"], "the harness owns its brokers: no service container"
    assert any("memurai" in s["run"] and "BENCH_BROKER_URL=redis://" in s["run"] for s in windows)
    external = workflow["jobs"]["external-broker"]
    assert "redis" in external["services"]
    assert any(s.get("env", {}).get("BENCH_BROKER_URL") for s in external["steps"])


def test_benchmarks_upload_what_tox_bench_writes(workflow):
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    written = re.search(r"--benchmark-json=(\S+)", ini["testenv:bench"]["commands"])
    assert written is not None
    job = workflow["jobs"]["benchmarks"]
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert [s["with"]["path"] for s in uploads] == [written.group(1)]
    gate = " ".join(s.get("run", "") for s in job["steps"])
    assert "--benchmark-compare " in gate and "--benchmark-compare-fail=" in gate


def test_the_docker_jobs_fail_without_an_engine(workflow):
    """CI runs the container tier and the compose smoke with BENCH_REQUIRE_DOCKER=1 (no silent skip)."""
    for job, env in (("container", "docker"), ("compose", "compose")):
        steps = [s for s in workflow["jobs"][job]["steps"] if f"tox -e {env}" in s.get("run", "")]
        assert len(steps) == 1, (job, env)
        assert steps[0]["env"]["BENCH_REQUIRE_DOCKER"] == "1", job


def test_the_docker_tox_envs_split_the_tier_from_the_compose_smoke():
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    docker_cmd = ini["testenv:docker"]["commands"]
    compose_cmd = ini["testenv:compose"]["commands"]
    assert (
        "-p celery -p docker_tools" in docker_cmd and "--ignore=tests/container/test_compose.py" in docker_cmd
    )
    assert "tests/container/test_compose.py" in compose_cmd.split()
    assert (ROOT / "tests" / "container" / "test_compose.py").is_file()


def compose_downs(text: str) -> list[str]:
    """Every `docker compose ... down ...` command line in ``text``."""
    return [m.group(0) for m in re.finditer(r"docker compose\b[^\n`]*?\sdown\b[^\n`]*", text)]


def test_every_documented_teardown_names_every_profile_and_the_volumes(compose):
    profiles = sorted({p for svc in compose["services"].values() for p in svc.get("profiles", [])})
    assert profiles, "the compose file defines no profile"
    assert sorted(compose_smoke.PROFILES) == profiles, "the compose smoke's teardown must name them all"
    files = [COMPOSE, *WORKFLOWS, *DOCS]
    downs = {path.name: compose_downs(path.read_text()) for path in files}
    assert all(downs[p.name] for p in (COMPOSE, *WORKFLOWS)), downs
    for name, commands in downs.items():
        for command in commands:
            missing = [p for p in profiles if f"--profile {p}" not in command]
            assert not missing, f"{name}: `{command}` leaves the profiles {missing} running"
            assert "--volumes" in command.split() or "-v" in command.split(), (
                f"{name}: `{command}` keeps volumes"
            )


def test_the_main_job_starts_only_when_named(compose):
    """No `up` starts the full main job by accident: it has a profile of its own."""
    assert compose["services"]["bench"]["profiles"] == ["bench"]
    for name, svc in compose["services"].items():
        if name != "bench":
            assert "bench" not in svc.get("profiles", []), name


def test_compose_downs_are_found():
    text = (
        "run `docker compose --profile a down -v` and\n"
        "  docker compose -p x --profile a --profile b down --volumes\n"
        "`docker compose up -d` and `docker compose ps` are not teardowns"
    )
    assert compose_downs(text) == [
        "docker compose --profile a down -v",
        "docker compose -p x --profile a --profile b down --volumes",
    ]


def test_linux_only_jobs_run_on_linux(workflow):
    for name in ("lint", "benchmarks", "container", "compose", "external-broker"):
        assert workflow["jobs"][name]["runs-on"] == "ubuntu-latest", name


# -- the compose stack ---------------------------------------------------------------------------------


def option(command: list[str], name: str) -> str | None:
    for arg in command:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def workers(compose: dict[str, Any], *, profiled: bool = False) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("command", [None])[:4] == ["celery", "-A", "tasks", "worker"]
        and bool(svc.get("profiles")) == profiled
    }


def test_one_worker_per_pool(compose):
    """On Redis (no profile) and on RabbitMQ (its profile). Depends on the pool list (gevent, eventlet)."""
    pools_run = sorted(option(svc["command"], "pool") or "" for svc in workers(compose).values())
    assert pools_run == sorted(defaults.POOLS_ALL)
    on_rabbitmq = [svc for svc in workers(compose, profiled=True).values() if "rabbitmq" in svc["profiles"]]
    assert sorted(option(svc["command"], "pool") or "" for svc in on_rabbitmq) == sorted(defaults.POOLS_ALL)


def test_the_smoke_brings_up_what_the_file_defines(compose):
    """tests/container/test_compose.py's stacks follow the file: every worker, on each broker."""
    redis_stack = compose_smoke.stack()
    assert set(redis_stack) == {"redis", *workers(compose)}
    rabbit_stack = compose_smoke.stack(compose_smoke.RABBITMQ_PROFILE)
    rabbit_workers = {n for n, s in workers(compose, profiled=True).items() if "rabbitmq" in s["profiles"]}
    assert set(rabbit_stack) == {"redis", "rabbitmq", *rabbit_workers}
    for name in rabbit_stack:
        if name in rabbit_workers:
            assert compose_smoke.node_of(compose["services"][name]) == option(
                compose["services"][name]["command"], "hostname"
            )


def test_each_worker_is_healthy_only_when_its_own_node_answers(compose):
    for name, svc in {**workers(compose), **workers(compose, profiled=True)}.items():
        node = option(svc["command"], "hostname")
        assert node, f"{name}: the node name must be set"
        test = svc["healthcheck"]["test"]
        if "hostname" in svc:  # one container: a fixed node name, pinged in exec form
            assert node.split("@", 1)[1] == svc["hostname"], f"{name}: node name must be fixed"
            assert test[:6] == ["CMD", "celery", "-A", "tasks", "inspect", "ping"], name
            assert test[test.index("-d") + 1] == node, f"{name}: healthcheck pings another node"
        else:  # replicas (--scale): node NAME@%h (the container's hostname), pinged through the shell
            assert node.endswith("@%h"), f"{name}: replicas need a node name per container"
            pinged = f"-d {node[: -len('%h')]}$$HOSTNAME "  # $$: a literal $ for the shell, not compose
            assert test[0] == "CMD-SHELL" and "celery -A tasks inspect ping" in test[1], name
            assert pinged in test[1], f"{name}: healthcheck pings another node"
        assert svc["depends_on"]["redis"] == {"condition": "service_healthy"}, name


def test_the_main_job_waits_for_every_healthy_worker(compose):
    bench = compose["services"]["bench"]
    assert bench["command"][:4] == ["python", "-m", "bench", "run"]
    needed = {"redis", *workers(compose)}
    assert set(bench["depends_on"]) == needed
    for dep in needed:
        assert bench["depends_on"][dep] == {"condition": "service_healthy"}
        assert "healthcheck" in compose["services"][dep], dep


def test_env_contract_names_services_of_this_file(compose):
    broker_db = set()
    for name, svc in compose["services"].items():
        if name in ("redis", "rabbitmq"):
            continue
        env = svc["environment"]
        for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            host = re.match(r"^\w+://(?:[^@/]*@)?([\w-]+):\d+/", env[var])
            assert host and host.group(1) in compose["services"], f"{name}: {var}={env[var]}"
        if name in workers(compose):
            broker_db.add(env["CELERY_BROKER_URL"].rsplit("/", 1)[1])
    bench = compose["services"]["bench"]["command"]
    job_url = bench[bench.index("--broker-url") + 1]
    assert job_url.startswith("redis://redis:6379/")
    # The job's own workers must not share a database (hence queues) with the standing ones.
    assert job_url.rsplit("/", 1)[1] not in broker_db


def test_rabbitmq_is_optional(compose):
    rabbitmq = compose["services"]["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:")  # the official image
    assert rabbitmq["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    user, password = (rabbitmq["environment"][f"RABBITMQ_DEFAULT_{k}"] for k in ("USER", "PASS"))
    found = 0
    for name, svc in workers(compose, profiled=True).items():
        if "rabbitmq" not in svc["profiles"]:
            continue
        found += 1
        assert svc["environment"]["CELERY_BROKER_URL"] == f"amqp://{user}:{password}@rabbitmq:5672//", name
        assert svc["environment"]["CELERY_RESULT_BACKEND"].startswith("redis://redis:"), name
        assert svc["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert found, "no worker on RabbitMQ"


def test_the_image_builds_from_this_checkout():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM python:(\d+)\.(\d+)", dockerfile, re.MULTILINE)
    assert base is not None
    pyproject = (ROOT / "pyproject.toml").read_text()
    minimum = re.search(r'requires-python = ">=(\d+)\.(\d+)"', pyproject)
    assert minimum is not None
    assert tuple(map(int, base.groups())) >= tuple(map(int, minimum.groups()))
    installed = re.search(r"pip install '\.\[([\w,]+)\]'", dockerfile)
    assert installed is not None, "the image installs this checkout with its extras"
    extras = installed.group(1).split(",")
    assert "test" in extras
    compose = load_yaml(COMPOSE)
    green = [n for n, s in compose["services"].items() if option(s.get("command", []), "pool") in GREEN_POOLS]
    assert ("green" in extras) == bool(green), f"green workers {green}, image extras {extras}"
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "bench/worker.py", "tasks/__init__.py", "conftest.py"):
        hits = [p for p in ignored if fnmatch.fnmatch(needed, p) or needed.startswith(p.rstrip("/") + "/")]
        assert not hits, f".dockerignore drops {needed} (via {hits}) but the image needs it"
