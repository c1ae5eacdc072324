"""The broker family's pure parts: kinds as data, the RabbitMQ node's files, environment and URLs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bench import brokers
from bench.broker import BrokerError, redact
from bench.brokers import rabbitmq
from bench.brokers.rabbitmq import NodeLayout, node_env, private_rabbitmq, render_config, write_node_files
from bench.brokers.redis import RedisBroker, private_redis


def _layout(root: Path) -> NodeLayout:
    return NodeLayout(root, "bench-abc@localhost", "127.0.0.1", 41001, 41002, 41003)


def test_config_binds_loopback_and_uses_the_generated_user(tmp_path):
    text = render_config(_layout(tmp_path), user="bench-u", password="s3cret")
    lines = text.splitlines()
    assert "listeners.tcp.1 = 127.0.0.1:41001" in lines
    assert "default_user = bench-u" in lines and "default_pass = s3cret" in lines
    assert "guest" not in text


def test_node_files_keep_secrets_private(tmp_path):
    layout = _layout(tmp_path)
    write_node_files(layout, user="bench-u", password="s3cret")
    assert stat.S_IMODE(layout.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".erlang.cookie").stat().st_mode) == 0o400
    assert (tmp_path / "enabled_plugins").read_text().strip() == "[]."  # no management listener
    assert (tmp_path / "mnesia").is_dir() and layout.log_dir.is_dir()


def test_node_env_names_its_own_node_ports_and_files(tmp_path):
    base = {
        "PATH": "/usr/bin",
        "RABBITMQ_NODENAME": "rabbit@localhost",  # a user's shell pointing at the shared node
        "ERL_EPMD_PORT": "4369",
        "ERL_FLAGS": "-foo",
        "RABBITMQ_CONFIG_FILE": "/etc/rabbitmq/rabbitmq.conf",
    }
    env = node_env(_layout(tmp_path), base)
    assert env["PATH"] == "/usr/bin" and "ERL_FLAGS" not in env
    assert env["RABBITMQ_NODENAME"] == "bench-abc@localhost"
    assert (env["RABBITMQ_NODE_PORT"], env["RABBITMQ_DIST_PORT"], env["ERL_EPMD_PORT"]) == (
        "41001",
        "41002",
        "41003",
    )
    assert env["HOME"] == str(tmp_path)  # the private .erlang.cookie
    for name in (
        "RABBITMQ_CONFIG_FILE", "RABBITMQ_CONF_ENV_FILE", "RABBITMQ_ENABLED_PLUGINS_FILE",
        "RABBITMQ_MNESIA_BASE", "RABBITMQ_LOG_BASE", "RABBITMQ_ADVANCED_CONFIG_FILE", "RABBITMQ_PID_FILE",
    ):  # fmt: skip
        assert Path(env[name]).is_relative_to(tmp_path), name
    assert not any("s3cret" in value for value in env.values())


def test_private_node_is_distinct_and_its_url_redacts():
    node = private_rabbitmq()
    assert len({node.port, node.dist_port, node.epmd_port}) == 3
    assert node.node.startswith("bench-") and node.node.endswith("@localhost")
    assert node.user != "guest" and node.url.startswith(f"amqp://{node.user}:")
    assert node.password not in node.redacted and node.password not in repr(node)
    assert redact(node.url) == f"amqp://{node.user}:***@127.0.0.1:{node.port}//"
    assert node.owned and node.kind == "rabbitmq"


def test_missing_rabbitmq_server_is_a_one_line_error_naming_the_fixes():
    with pytest.raises(BrokerError) as info:
        rabbitmq.find_rabbitmq_server(which=lambda name: None)
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install rabbitmq-server" in message and "--broker-url amqp://" in message
    support = brokers.support("rabbitmq", which=lambda name: None)
    assert not support.available and support.reason == message
    no_epmd = brokers.support("rabbitmq", which=lambda name: None if name == "epmd" else "/usr/sbin/" + name)
    assert not no_epmd.available and "no epmd found" in no_epmd.reason and "\n" not in no_epmd.reason


def test_no_private_rabbitmq_on_windows():
    info = brokers.support("rabbitmq", which=lambda name: "C:/rabbitmq/" + name, platform="win32")
    assert not info.available and "--broker-url amqp://" in info.reason


def _script(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_rabbitmqs_own_script_is_used_as_found(tmp_path):
    server = _script(tmp_path / "sbin" / "rabbitmq-server")
    _script(tmp_path / "sbin" / "rabbitmq-env")
    found = rabbitmq.find_rabbitmq_server(which=lambda name: str(server), debian=tmp_path / "none")
    assert found == server


def test_a_distribution_wrapper_is_bypassed_for_the_script_it_calls(tmp_path):
    """Debian's /usr/sbin/rabbitmq-server links to a wrapper that runs the node as user rabbitmq."""
    wrapper = _script(tmp_path / "lib" / "bin" / "rabbitmq-script-wrapper")
    _script(tmp_path / "lib" / "bin" / "rabbitmq-env")
    _script(tmp_path / "lib" / "bin" / "rabbitmq-server")
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "rabbitmq-server").symlink_to(wrapper)
    found = rabbitmq.find_rabbitmq_server(
        which=lambda name: str(tmp_path / "sbin" / "rabbitmq-server"), debian=tmp_path / "lib" / "bin"
    )
    assert found == tmp_path / "lib" / "bin" / "rabbitmq-server"


def test_kind_of_url_and_unknown_schemes():
    assert brokers.kind_of_url("redis://:pw@127.0.0.1:6379/0") == "redis"
    assert brokers.kind_of_url("amqp://u:p@host:5672//") == "rabbitmq"
    with pytest.raises(BrokerError, match="unsupported broker URL scheme 'sqs'.*amqp://"):
        brokers.kind_of_url("sqs://key:secret@")
    with pytest.raises(ValueError, match="unknown broker 'kafka'"):
        brokers.support("kafka")


def test_both_kinds_implement_the_interface():
    redis_broker = private_redis()
    assert isinstance(redis_broker, RedisBroker) and redis_broker.kind == "redis"
    assert isinstance(redis_broker, brokers.BrokerHandle)
    assert isinstance(private_rabbitmq(), brokers.BrokerHandle)
    user_rabbit = brokers.external("amqp://u:p@127.0.0.1:5672//")
    assert user_rabbit.kind == "rabbitmq" and not user_rabbit.owned
    assert brokers.external("redis://127.0.0.1:6379/0").kind == "redis"


def test_a_users_rabbitmq_is_never_restarted_or_stopped():
    user_rabbit = rabbitmq.external("amqp://u:p@127.0.0.1:5672//")
    with pytest.raises(BrokerError, match="refusing to restart"):
        user_rabbit.restart()
    user_rabbit.stop()  # a no-op: nothing was started
    assert user_rabbit.process is None and user_rabbit.tmpdir is None


def test_check_url_refuses_other_schemes():
    with pytest.raises(BrokerError, match="unsupported RabbitMQ URL 'redis://:\\*\\*\\*@h:1/0'"):
        rabbitmq.check_url("redis://:pw@h:1/0")
