"""The pytest plugin's broker axis: which kinds a run tests (``select_brokers``), how tests are
parametrised over broker kinds and pools (ids ``redis-solo``), the ``brokers(...)`` marker and the visible
skip when it leaves nothing, and the one-line usage error of a bad ``--broker``.

Pure logic with a fake ``support`` and a fake ``metafunc``; the last test runs pytest itself, which stops
before collecting anything (no server is started).
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from bench.brokers import BrokerSupport
from bench.pytest_plugin import _parametrize_axis, pytest_generate_tests, select_brokers
from bench.worker import PROJECT_ROOT

USAGE_TIMEOUT = 60.0
"""Seconds a nested pytest may take to refuse its options (it starts no server and collects nothing)."""


def _support(*available: str):
    def support(kind: str) -> BrokerSupport:
        if kind not in ("redis", "rabbitmq"):
            raise ValueError(f"unknown broker {kind!r}: choose one of redis, rabbitmq")
        reason = "" if kind in available else f"no {kind} server here: install it"
        return BrokerSupport(kind, kind in available, reason)

    return support


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (("redis", "rabbitmq"), ["redis", "rabbitmq"]),
        (("rabbitmq", "redis"), ["redis", "rabbitmq"]),  # always in the order of brokers.KINDS
        (("redis",), ["redis"]),
        (("rabbitmq",), ["rabbitmq"]),
        ((), ["redis"]),  # the unit tier still runs; a test needing a broker stops at bench_backend
    ],
)
def test_the_default_is_every_broker_this_machine_can_start(available, expected):
    assert select_brokers(None, None, support=_support(*available)) == expected


def test_requested_kinds_keep_their_order_once_each():
    both = _support("redis", "rabbitmq")
    assert select_brokers(["rabbitmq", "redis", "rabbitmq"], None, support=both) == ["rabbitmq", "redis"]


def test_an_unknown_kind_names_the_choices():
    with pytest.raises(ValueError) as raised:
        select_brokers(["redis", "kafka"], None, support=_support("redis", "rabbitmq"))
    assert str(raised.value) == "--broker: unknown broker 'kafka': choose one of redis, rabbitmq"


def test_an_unavailable_kind_says_why():
    with pytest.raises(ValueError) as raised:
        select_brokers(["rabbitmq"], None, support=_support("redis"))
    assert str(raised.value) == "--broker: rabbitmq is unavailable here: no rabbitmq server here: install it"


@pytest.mark.parametrize(
    ("url", "requested", "expected"),
    [
        ("amqp://u:p@h:5672//", None, ["rabbitmq"]),
        ("pyamqp://u:p@h:5672//", ["rabbitmq"], ["rabbitmq"]),
        ("redis://h:6379/0", None, ["redis"]),
        ("rediss://h:6379/0", ["redis", "redis"], ["redis"]),
    ],
)
def test_the_broker_url_picks_its_kind(url, requested, expected):
    # even where this machine could start no broker: the user's URL is not started here
    assert select_brokers(requested, url, support=_support()) == expected


def test_a_broker_url_of_another_kind_than_asked_is_refused():
    with pytest.raises(ValueError) as raised:
        select_brokers(["redis"], "amqp://u:secret@h:5672//", support=_support("redis", "rabbitmq"))
    message = str(raised.value)
    assert message == "--broker-url is a rabbitmq URL but --broker asks for redis: give one of them"


def test_a_broker_url_of_no_known_kind_names_both_forms():
    with pytest.raises(
        ValueError, match=r"^--broker-url: unsupported broker URL scheme 'http': use redis://"
    ):
        select_brokers(None, "http://h:80/", support=_support("redis", "rabbitmq"))


class _Metafunc:
    """What ``pytest_generate_tests`` reads of a metafunc, recording its ``parametrize`` calls."""

    def __init__(self, fixturenames: list[str], markers: dict[str, tuple[str, ...]] | None = None) -> None:
        self.fixturenames = fixturenames
        self.config = SimpleNamespace(_bench_brokers=["redis", "rabbitmq"], _bench_pools=["solo", "prefork"])
        marks = {name: SimpleNamespace(args=args, kwargs={}) for name, args in (markers or {}).items()}
        self.definition = SimpleNamespace(get_closest_marker=marks.get)
        self.calls: list[tuple[str, list[Any], str]] = []

    def parametrize(self, argname: str, values: list[Any], *, scope: str) -> None:
        self.calls.append((argname, values, scope))


def test_the_broker_axis_comes_before_the_pool_axis_session_wide():
    metafunc = _Metafunc(["pool", "broker_kind", "app"])
    pytest_generate_tests(metafunc)  # type: ignore[arg-type]
    assert metafunc.calls == [
        ("broker_kind", ["redis", "rabbitmq"], "session"),
        ("pool", ["solo", "prefork"], "session"),
    ]


def test_a_test_without_either_fixture_is_not_parametrised():
    metafunc = _Metafunc(["tmp_path"], {"brokers": ("redis",)})
    pytest_generate_tests(metafunc)  # type: ignore[arg-type]
    assert metafunc.calls == []


def test_the_brokers_marker_narrows_the_axis():
    metafunc = _Metafunc(["broker_kind", "pool"], {"brokers": ("redis",), "pools": ("prefork", "threads")})
    pytest_generate_tests(metafunc)  # type: ignore[arg-type]
    assert metafunc.calls == [("broker_kind", ["redis"], "session"), ("pool", ["prefork"], "session")]


def test_a_marker_that_leaves_nothing_is_a_visible_skip_naming_both_sides():
    metafunc = _Metafunc(["broker_kind"])
    _parametrize_axis(metafunc, "broker_kind", ["rabbitmq"], "brokers")  # type: ignore[arg-type]
    assert metafunc.calls == [("broker_kind", ["rabbitmq"], "session")]  # no marker: every selected kind

    metafunc = _Metafunc(["broker_kind"], {"brokers": ("redis",)})
    _parametrize_axis(metafunc, "broker_kind", ["rabbitmq"], "brokers")  # type: ignore[arg-type]
    [(argname, [param], scope)] = metafunc.calls
    assert (argname, scope, param.id, param.values) == ("broker_kind", "session", "no-broker_kind", (None,))
    [skip] = param.marks
    assert skip.name == "skip"
    assert skip.kwargs["reason"] == "none of the selected brokers ['rabbitmq'] applies (this test: ['redis'])"


def test_the_skip_gives_the_marker_s_reason():
    metafunc = _Metafunc(["broker_kind"])
    metafunc.definition = SimpleNamespace(
        get_closest_marker={"brokers": SimpleNamespace(args=("redis",), kwargs={"reason": "reads Redis"})}.get
    )
    _parametrize_axis(metafunc, "broker_kind", ["rabbitmq"], "brokers")  # type: ignore[arg-type]
    [(_, [param], _)] = metafunc.calls
    reason = param.marks[0].kwargs["reason"]
    assert reason == "none of the selected brokers ['rabbitmq'] applies (this test: ['redis']: reads Redis)"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--broker", "foo"], "ERROR: --broker: unknown broker 'foo': choose one of redis, rabbitmq"),
        (
            ["--broker", "redis", "--broker-url", "amqp://u:p@127.0.0.1:1//"],
            "ERROR: --broker-url is a rabbitmq URL but --broker asks for redis: give one of them",
        ),
    ],
    ids=["unknown", "url-mismatch"],
)
def test_a_bad_broker_option_is_a_one_line_usage_error(args, line):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BENCH_BROKER_URL"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, "tests/unit/test_stats.py"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=USAGE_TIMEOUT,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [line] and "passed" not in done.stdout
