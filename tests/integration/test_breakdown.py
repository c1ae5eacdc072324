"""The enqueue breakdown on a real private Redis: round trips counted by the server, layers that add up.

No absolute time is asserted: only command counts, which layers appear, and shares of one path's total.
"""

from __future__ import annotations

import pytest
from celery.app.task import Task
from kombu.messaging import Producer

from bench import breakdown as bd
from bench.broker import private_redis

TINY = bd.Sizes(rounds=2, per_round=30, command_calls=40, profile_rounds=2, profile_per_round=30)


@pytest.fixture(scope="module")
def measured() -> bd.Breakdown:
    # A private Redis of its own: the commandstats deltas count every command the server runs.
    with private_redis() as broker:
        return bd.run(broker.url, sizes=TINY)


def _path(b: bd.Breakdown, name: str) -> bd.PathBreakdown:
    return next(p for p in b.paths if p.path == name)


def test_the_floor_makes_one_round_trip_and_apply_async_at_least_one(measured):
    floor = _path(measured, bd.FLOOR)
    assert dict(floor.commands) == {"lpush": 1.0}
    assert floor.round_trips == 1.0
    apply_async = _path(measured, "apply_async")
    assert dict(apply_async.commands).get("lpush") == 1.0
    assert apply_async.broker_commands >= 1.0 and apply_async.round_trips >= 1.0
    delay = _path(measured, "delay")  # the result backend subscribes to the result: more round trips
    assert dict(delay.commands).get("subscribe") == 1.0
    assert delay.round_trips > apply_async.round_trips


@pytest.mark.parametrize(
    "name", ["floor", "delay", "apply_async", "producer=", "prebuilt", "producer=+client"]
)
def test_layer_shares_sum_to_the_whole_call(measured, name):
    path = _path(measured, name)
    assert sum(x.share for x in path.layers) == pytest.approx(1.0)
    assert sum(x.cpu_share for x in path.layers) == pytest.approx(1.0)
    attributed = sum(x.seconds for x in path.layers)
    # Every timed call is inside the call-site layer: only the loop around it is left unattributed.
    assert 0.8 < attributed / path.profiled_mean_s <= 1.0


def test_each_path_goes_through_the_layers_it_should(measured):
    def layers(name: str) -> set[str]:
        return {x.name for x in _path(measured, name).layers}

    assert layers(bd.FLOOR) <= {bd.CALL_SITE, bd.REDIS_COMMAND, bd.ROUND_TRIP}
    assert {bd.CELERY_APPLY, bd.CELERY_BUILD, bd.KOMBU_PUBLISH, bd.CLIENT_CREATION, bd.ROUND_TRIP} <= layers(
        "apply_async"
    )
    assert bd.RESULT_SUBSCRIBE in layers("delay") and bd.RESULT_SUBSCRIBE not in layers("apply_async")
    assert bd.CELERY_APPLY not in layers("prebuilt") and bd.CLIENT_CREATION in layers("prebuilt")
    # The patched paths reuse one redis-py client: kombu creates none per publish.
    assert bd.CLIENT_CREATION not in layers("producer=+client") | layers("prebuilt+client")


def test_the_timers_are_gone_after_the_run(measured):
    assert not hasattr(Task.apply_async, "__wrapped__")
    assert not hasattr(Producer.publish, "__wrapped__")
    assert all(p.latency.samples == TINY.rounds * TINY.per_round for p in measured.paths)


def test_a_named_direct_exchange_looks_up_its_bindings_first(measured):
    """kombu#994: a publish to a named direct exchange reads the bindings (SMEMBERS) before the LPUSH;
    the default path (anonymous exchange) does not."""
    named = dict(_path(measured, "exchange=").commands)
    assert named.get("smembers") == 1.0 and named.get("lpush") == 1.0
    assert _path(measured, "exchange=").round_trips == 2.0
    assert "smembers" not in dict(_path(measured, "apply_async").commands)


def test_the_timers_overhead_is_measured_for_every_path(measured):
    assert all(p.untimed_cpu_s and p.timer_overhead is not None for p in measured.paths)
