"""The pure parts of the enqueue breakdown: layer attribution, marker install/restore, command counting,
ratios, the records and their formatting. No server; the clocks are fakes."""

from __future__ import annotations

import json

import pytest

from bench import breakdown as bd
from bench import breakdown_format as fmt


class FakeClock:
    """A clock that advances only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_layer_timer_attributes_exclusive_time_to_each_nested_layer():
    wall, cpu = FakeClock(), FakeClock()
    timer = bd.LayerTimer(wall, cpu)

    def spend(w: float, c: float) -> None:
        wall.advance(w)
        cpu.advance(c)

    timer.enter(bd.CALL_SITE)
    spend(1, 1)
    timer.enter(bd.CELERY_APPLY, "apply_async")
    spend(2, 2)
    timer.enter(bd.ROUND_TRIP, "send_packed_command")
    spend(10, 0.5)  # waiting on the server: wall time, little CPU
    timer.exit()
    spend(3, 3)
    timer.exit()
    timer.exit()

    assert dict(timer.seconds) == {bd.CALL_SITE: 1, bd.CELERY_APPLY: 5, bd.ROUND_TRIP: 10}
    assert dict(timer.cpu_seconds) == {bd.CALL_SITE: 1, bd.CELERY_APPLY: 5, bd.ROUND_TRIP: 0.5}
    assert dict(timer.counts) == {"apply_async": 1, "send_packed_command": 1}
    assert sum(timer.seconds.values()) == wall.now  # nothing counted twice, nothing lost


def test_layer_timer_refuses_to_reset_inside_an_open_layer():
    timer = bd.LayerTimer(FakeClock(), FakeClock())
    timer.enter(bd.CALL_SITE)
    with pytest.raises(RuntimeError, match="open layers"):
        timer.reset()


class Base:
    def inherited(self) -> str:
        return "base"


class Child(Base):
    def own(self) -> str:
        return "own"


def test_installed_wraps_class_and_instance_markers_and_always_restores_them():
    obj = Child()
    instance_original = obj.own
    timer = bd.LayerTimer(FakeClock(), FakeClock())
    markers = [
        bd.Marker(Child, "own", bd.CELERY_APPLY),
        bd.Marker(Child, "inherited", bd.KOMBU_PUBLISH),
    ]
    with pytest.raises(KeyError), bd.installed(timer, markers):
        assert obj.own() == "own" and obj.inherited() == "base"
        assert dict(timer.counts) == {"own": 1, "inherited": 1}
        raise KeyError("boom")  # restored on the way out of an error too
    assert "inherited" not in vars(Child)  # the inherited method is visible again, not a copy
    assert Child.own is vars(Child)["own"] and obj.own() == "own"
    with bd.installed(timer, [bd.Marker(obj, "own", bd.CELERY_BUILD)]):
        assert "own" in vars(obj)
    assert "own" not in vars(obj) and obj.own == instance_original


def test_commands_per_call_from_commandstats_deltas():
    before = bd.command_counts({"cmdstat_lpush": {"calls": 10, "usec": 5}, "cmdstat_info": {"calls": 3}})
    after = bd.command_counts(
        {"cmdstat_lpush": {"calls": 110}, "cmdstat_smembers": {"calls": 100}, "cmdstat_info": {"calls": 4}}
    )
    assert before == {"lpush": 10, "info": 3}
    assert bd.commands_per_call(before, after, 100) == {"lpush": 1.0, "smembers": 1.0}  # INFO is ours


def test_commands_per_call_rejects_no_calls_and_a_reset_server():
    with pytest.raises(ValueError, match="positive"):
        bd.commands_per_call({}, {}, 0)
    with pytest.raises(ValueError, match="backwards"):
        bd.commands_per_call({"lpush": 5}, {"lpush": 1}, 1)


def test_round_ratios_pair_each_round_with_its_floor():
    assert bd.round_ratios([[2, 4, 6], [9, 9, 9]], [[1, 2, 3], [3, 3, 3]]) == (2.0, 3.0)
    with pytest.raises(ValueError, match="pair up"):
        bd.round_ratios([[1]], [[1], [1]])


def test_layers_of_gives_shares_that_sum_to_one_in_layer_order():
    layers = bd.layers_of(
        {bd.ROUND_TRIP: 3.0, bd.CELERY_APPLY: 1.0}, {bd.ROUND_TRIP: 1.0, bd.CELERY_APPLY: 1.0}, 10
    )
    assert [x.name for x in layers] == [bd.CELERY_APPLY, bd.ROUND_TRIP]
    assert [x.share for x in layers] == [0.25, 0.75] and [x.cpu_share for x in layers] == [0.5, 0.5]
    assert layers[1].seconds == pytest.approx(0.3)
    with pytest.raises(ValueError, match="unknown layers"):
        bd.layers_of({"mystery": 1.0}, {}, 1)
    with pytest.raises(bd.stats.NoSamplesError):
        bd.layers_of({}, {}, 1)


def _breakdown(untimed: dict[str, float] | None = None) -> bd.Breakdown:
    def path(name: str, *, patched: bool = False) -> bd.PathSpec:
        return bd.PathSpec(name, f"<{name}>", lambda: None, patched=patched)

    paths = [path("floor"), path("apply_async"), path("prebuilt"), path("prebuilt+client", patched=True)]
    scale = {"floor": 1.0, "apply_async": 4.0, "prebuilt": 3.5, "prebuilt+client": 2.0}
    latency = {p.name: [[50e-6 * scale[p.name]] * 3] * 2 for p in paths}
    commands = {p.name: {"lpush": 1.0} for p in paths}
    profiled = {}
    for p in paths:
        seconds = {bd.ROUND_TRIP: 40e-6, bd.REDIS_COMMAND: 10e-6 * scale[p.name]}
        if p.name in ("apply_async", "prebuilt"):
            seconds[bd.CLIENT_CREATION] = 30e-6
        profiled[p.name] = bd.Profiled(seconds, seconds, {bd.ROUND_TRIP_MARK: 1}, 1, sum(seconds.values()))
    return bd.assemble(paths, latency, commands, profiled, message_bytes=959, sizes=bd.QUICK, untimed=untimed)


def test_assemble_ratios_and_the_target_verdict():
    b = _breakdown()
    assert b.floor.floor_ratio == 1.0
    assert [p.path for p in b.reaching(patched=False)] == []
    assert b.cheapest(patched=False).path == "prebuilt"
    assert [p.path for p in b.reaching(patched=True)] == ["prebuilt+client"]
    apply_async = next(p for p in b.paths if p.path == "apply_async")
    assert apply_async.floor_ratio == pytest.approx(4.0) and apply_async.round_ratios == pytest.approx(
        (4.0, 4.0)
    )
    assert apply_async.round_trips == 1.0 and apply_async.broker_commands == 1.0
    lines = fmt.verdict(b)
    assert any("not reached" in line and "prebuilt (3.50x)" in line for line in lines)
    assert any("client per publish" in line for line in lines)
    assert any("prebuilt+client 2.00x" in line for line in lines)


def test_formatting_text_json_and_html():
    b = _breakdown()
    out = fmt.text(b)
    assert "959 B" in out and "redis-py client creation" in out and "LPUSH 1" in out
    doc = json.loads(json.dumps(fmt.to_json(b), allow_nan=False))
    assert doc["reaching_target"] == [] and doc["paths"][1]["commands"] == {"lpush": 1.0}
    assert "hdr" not in doc["paths"][0]["latency"]
    section = fmt.html_section(b)
    assert section.startswith('<section id="breakdown">') and section.endswith("</section>")
    assert "prebuilt+client (patched)</td>" in section and "target &lt;= 3x" in section  # escaped


def test_breakdown_command_bad_input_exits_2_before_starting_anything(capsys):
    from bench import cli

    assert cli.main(["breakdown", "--set", "no_such_setting=1"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_setting" in err[0]


def test_profile_layers_keeps_paths_apart_and_leaves_between_uncounted():
    wall, cpu = FakeClock(), FakeClock()

    class Wire:
        def send(self) -> None:
            wall.advance(3)
            cpu.advance(1)

    wire = Wire()

    def cheap() -> None:
        wire.send()

    def costly() -> None:
        wall.advance(2)
        cpu.advance(2)
        wire.send()

    def between() -> None:  # trimming a queue: a marked call, outside any timed chunk
        wire.send()

    markers = [bd.Marker(Wire, "send", bd.ROUND_TRIP)]
    out = bd.profile_layers(
        {"cheap": cheap, "costly": costly},
        markers,
        rounds=3,
        per_round=2,
        clock=wall,
        cpu_clock=cpu,
        between=between,
    )
    assert out["cheap"].calls == out["costly"].calls == 6
    assert out["cheap"].seconds == {bd.ROUND_TRIP: 18, bd.CALL_SITE: 0}
    assert out["costly"].seconds == {bd.ROUND_TRIP: 18, bd.CALL_SITE: 12}
    assert out["costly"].cpu_seconds == {bd.ROUND_TRIP: 6, bd.CALL_SITE: 12}
    assert out["costly"].elapsed == 30 and out["cheap"].counts == {"send": 6}
    assert "send" not in vars(Wire) or not hasattr(Wire.send, "__wrapped__")


def test_the_report_carries_the_breakdown_in_json_and_on_the_page(tmp_path):
    import jsonschema

    from bench import html, report
    from tests.unit.sample_run import sample_run

    b = _breakdown()
    path = report.write_json(sample_run(), tmp_path / "r.json", extra={"breakdown": fmt.to_json(b)})
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, report.JSON_SCHEMA)
    assert doc["breakdown"]["message_bytes"] == 959
    page = html.page(
        sample_run(), figure=lambda run, key: None, extra=[("breakdown", "Breakdown", fmt.html_section(b))]
    )
    assert '<a href="#breakdown">Breakdown</a>' in page and '<section id="breakdown">' in page
    assert '<section id="breakdown">' not in html.page(sample_run(), figure=lambda run, key: None)


def test_run_refuses_breakdown_with_a_fleet(capsys):
    from bench import cli

    assert (
        cli.main(["run", "--fleet", "--breakdown", "--broker-url", "redis://127.0.0.1:1/0"]) == cli.EXIT_USAGE
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--breakdown" in err[0]


def test_timer_overhead_compares_timed_cpu_with_untimed_cpu():
    cpu = FakeClock()

    def call() -> None:
        cpu.advance(2)

    assert bd.cpu_per_call({"a": call}, rounds=2, per_round=5, cpu_clock=cpu) == {"a": 2.0}
    layer = bd.Layer(bd.CALL_SITE, seconds=1, share=1, cpu_seconds=2.2, cpu_share=1)
    path = bd.PathBreakdown(
        "a", "a", False, _breakdown().floor.latency, 1.0, (), (), 1.0, (layer,), 1, 1.0, untimed_cpu_s=2.0
    )
    assert path.timer_overhead == pytest.approx(0.1)
    assert "+10%" in fmt.path_rows(dataclasses_replace_paths(path))[0][-1]


def dataclasses_replace_paths(path: bd.PathBreakdown) -> bd.Breakdown:
    import dataclasses

    return dataclasses.replace(_breakdown(), paths=(path,))


def test_the_cpu_ratio_uses_the_untimed_cpu_when_every_path_has_it():
    untimed = {"floor": 10.0, "apply_async": 70.0, "prebuilt": 30.0, "prebuilt+client": 20.0}
    ratios = {p.path: p.cpu_ratio for p in _breakdown(untimed).paths}
    assert ratios == {"floor": 1.0, "apply_async": 7.0, "prebuilt": 3.0, "prebuilt+client": 2.0}
    timed = {p.path: p.cpu_ratio for p in _breakdown().paths}
    assert timed["apply_async"] == pytest.approx((40 + 40 + 30) / 50)  # from the timed layers
