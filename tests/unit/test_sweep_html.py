"""bench.sweep_html: a sweep's page, read as a DOM (and rendered by headless Chromium when installed)."""

from __future__ import annotations

import pytest

from bench import sweep, sweep_html
from tests.unit.test_html import dom, needs_chromium, rendered_dom, tables
from tests.unit.test_sweep import _sweep


def _fake_png(_: object) -> bytes:
    return b"\x89PNG fake sweep"


@pytest.fixture(scope="module")
def page() -> str:
    return sweep_html.page(_sweep(), figure=_fake_png)


def test_one_sortable_table_per_objective_best_first(page):
    found = tables(dom(page))
    assert set(found) == {sweep_html.table_id(o) for o in sweep.OBJECTIVES}
    drain = found["objective-drain"]
    assert drain.headers[:4] == ["cell", "pool", "median (tasks/s)", "vs default"]
    assert drain.column("cell") == ["fast drain", "default", "fast enqueue", "worse"]
    assert drain.column("Pareto front") == ["*", "*", "*", ""]
    assert found["objective-enqueue"].column("cell")[0] == "fast enqueue"  # lower is better: first
    assert found["objective-e2e-p99"].headers[2] == "p99 (ms)"


def test_the_lost_on_kill_table_has_counts_and_parsers(page):
    lost = tables(dom(page))["objective-lost"]
    assert lost.column("cell") == ["default", "fast enqueue", "worse", "fast drain"]
    assert lost.column("lost (tasks)") == ["0", "0", "1", "4"]
    assert set(lost.column("worker")) == {"python"}  # _RESP2Parser, as the probes reported it
    cells = dom(page).all("table")[-1].all("td")
    assert any(td.attrs.get("data-value") == "4.0" for td in cells)  # numbers sort by value


def test_the_page_has_the_plot_front_advice_and_context_and_nothing_outside(page):
    root = dom(page)
    (image,) = root.all("img")
    assert image.attrs["src"].startswith("data:image/png;base64,")
    sections = {s.attrs.get("id"): s.content() for s in root.all("section")}
    assert "default fast drain fast enqueue" in sections["pareto"]
    assert "drain: fast drain" in sections["recommendations"]
    assert "lost on kill 4, duplicated 1 (default: 0 and 1)" in sections["recommendations"]
    assert "celery / kombu" in sections["context"]
    refs = [
        n.attrs.get(a, "")
        for n in root.all("img") + root.all("a") + root.all("script")
        for a in ("src", "href")
    ]
    assert all(r == "" or r.startswith(("#", "data:")) for r in refs)


def test_the_written_page_embeds_the_real_plot(tmp_path):
    path = sweep_html.write_page(_sweep(), tmp_path / "s.html")
    (image,) = dom(path.read_text(encoding="utf-8")).all("img")
    assert image.attrs["src"].startswith("data:image/png;base64,iVBORw0KGgo")


@needs_chromium
def test_chromium_sorts_a_sweep_table(tmp_path):
    path = sweep_html.write_page(_sweep(), tmp_path / "s.html", figure=_fake_png)
    found = tables(rendered_dom(path, "sort=objective-lost:2:desc", tmp_path))
    assert found["objective-lost"].column("lost (tasks)") == ["4", "1", "0", "0"]
