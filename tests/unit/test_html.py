"""bench.html: the report page, read as a DOM; then rendered by a real headless Chromium (when installed).

The static checks parse the page the renderer writes; the browser checks parse the DOM Chromium dumps
after running the page's script (sorting by a ``#sort=`` hash), so they fail if the script breaks.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench import defaults, html, stats
from bench.ledger import ReliabilityRecord
from bench.procs import ManagedProcess, wait_for
from bench.results import Result, Run
from tests.unit.sample_run import sample_run

RECORDS = (
    ReliabilityRecord("solo", "no faults", 1000, 0, 1000, 0, 0, None, "lost 0", "ok", "drained in 0.6s"),
    ReliabilityRecord("solo", "worker killed", 12, 0, 11, 1, 0, 5.2, "lost 0", "deviation", "ran twice"),
    ReliabilityRecord("prefork", "child killed", 1, 0, 0, 1, 0, 4.4, "redelivered", "ok", ""),
    ReliabilityRecord("threads", "child killed", 0, 0, 0, 0, 0, None, "redelivered", "n/a", "no child"),
)


def _drain(pool: str, concurrency: int, rate: float) -> Result:
    summary = stats.summarize_throughput([(500, 500 / rate), (500, 500 / rate * 1.01)], what=pool)
    return Result("drain", "worker drain rate", pool, concurrency, throughput=summary)


def _run() -> Run:
    run = sample_run(reliability=RECORDS, warnings=("the producer is slow",))
    extra = (_drain("prefork", 2, 760.0), _drain("threads", 2, 480.0))
    context = dict(run.context, broker_server="7.0.15", plan={"enqueue_rounds": 5, "e2e_rate": 100.0})
    return dataclasses.replace(run, results=run.results + extra, context=context)


# -- a small DOM reader ------------------------------------------------------------------------------
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def all(self, tag: str) -> list[Node]:
        out = []
        for child in self.children:
            if child.tag == tag:
                out.append(child)
            out.extend(child.all(tag))
        return out

    def content(self) -> str:
        return " ".join((self.text + " " + " ".join(c.content() for c in self.children)).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


VOID = {"meta", "img", "br", "hr", "input", "link"}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data


def dom(text: str) -> Node:
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return reader.root


@dataclass
class Table:
    headers: list[str]
    bodies: list[list[Node]]  # per <tbody>: its rows

    def column(self, name: str) -> list[str]:
        i = self.headers.index(name)
        return [rows[0].all("td")[i].content() for rows in self.bodies]


def tables(root: Node) -> dict[str, Table]:
    out = {}
    for t in root.all("table"):
        headers = [th.content() for th in t.all("thead")[0].all("th")]
        bodies = [b.all("tr") for b in t.all("tbody")]
        out[t.attrs["id"]] = Table(headers, bodies)
    return out


def _fake_png(run: Run, section: str) -> bytes:
    return b"\x89PNG fake " + section.encode()


@pytest.fixture(scope="module")
def page() -> str:
    return html.page(_run(), figure=_fake_png)


# -- static checks -------------------------------------------------------------------------------------
def test_every_section_is_a_table_with_units_in_its_headers(page):
    found = tables(dom(page))
    assert set(found) == {
        "enqueue-latency-us", "producer-throughput-tasks-per-s", "drain-throughput-tasks-per-s",
        "e2e-latency-ms", "reliability-table",
    }  # fmt: skip
    enqueue = found["enqueue-latency-us"]
    # Six samples per figure: no p99.9 (below 1,000 samples it is the max), so no such column.
    assert enqueue.headers == [
        "what", "n", "median (µs)", "IQR (µs)", "p90 (µs)", "p99 (µs)", "max (µs)", "x floor", "CV of rounds",
    ]  # fmt: skip
    assert enqueue.column("what") == ["LPUSH (floor)", "delay()"]
    assert enqueue.column("x floor") == ["1.00", "10.00"]
    drain = found["drain-throughput-tasks-per-s"]
    assert drain.headers[:3] == ["what", "pool", "concurrency"] and "median (tasks/s)" in drain.headers
    assert drain.column("pool") == ["solo", "prefork", "threads"]
    # One round per open-loop figure: no spread across rounds, so no such column; no floor either.
    assert found["e2e-latency-ms"].headers[-1] == "max (ms)"


def test_p999_shows_only_where_a_thousand_samples_back_it():
    run = _run()
    big = stats.summarize_latency([[i * 1e-6 for i in range(1, 1001)]], what="floor")
    results = (dataclasses.replace(run.results[0], latency=big), *run.results[1:])
    enqueue = tables(dom(html.page(dataclasses.replace(run, results=results), figure=_fake_png)))[
        "enqueue-latency-us"
    ]
    assert enqueue.column("n") == ["1,000", "6"]
    assert enqueue.column("p99.9 (µs)") == ["999", "-"]


def test_notes_and_warnings_are_in_place_under_their_row(page):
    found = tables(dom(page))
    e2e = found["e2e-latency-ms"].bodies[0]
    assert [sorted(r.classes) for r in e2e] == [[], ["notes"]]
    assert e2e[1].content() == "a note about solo"
    deviation = next(b for b in found["reliability-table"].bodies if "deviation" in b[0].content())
    assert deviation[1].content() == "ran twice expected: lost 0"
    # The run-wide warning that belongs to no row is in the callout at the top.
    callouts = [d for d in dom(page).all("div") if "callout" in d.classes]
    assert [c.content() for c in callouts] == ["Warnings the producer is slow"]


def test_verdicts_are_coloured_by_class(page):
    cells = [td for td in dom(page).all("td") if "verdict" in td.classes]
    assert [(td.content(), sorted(td.classes)) for td in cells] == [
        ("ok", ["verdict", "verdict-ok"]),
        ("deviation", ["verdict", "verdict-deviation"]),
        ("ok", ["verdict", "verdict-ok"]),
        ("n/a", ["verdict", "verdict-na"]),
    ]
    assert "recovery (s)" in tables(dom(page))["reliability-table"].headers


def test_context_is_a_short_definition_list_with_the_broker_server_version(page):
    section = next(s for s in dom(page).all("section") if s.attrs.get("id") == "context")
    terms = [dt.content() for dt in section.all("dt")]
    descriptions = dict(zip(terms, (dd.content() for dd in section.all("dd")), strict=True))
    assert descriptions["broker: redis"] == "redis 7.0.15 redis://:***@127.0.0.1:1234/0 (private)"
    backend = "Redis 7.0.15 redis://:***@127.0.0.1:1234/0 (private), for every broker"
    assert descriptions["result backend"] == backend
    assert descriptions["celery / kombu"] == "5.7.0 / 5.7.0"
    assert len(terms) <= 14


def test_two_brokers_get_a_broker_column_and_a_context_line_each():
    root = dom(html.page(sample_run(rabbitmq=True), figure=_fake_png))
    enqueue = tables(root)["enqueue-latency-us"]
    assert enqueue.headers[:2] == ["what", "broker"]
    rows = list(zip(enqueue.column("what"), enqueue.column("broker"), enqueue.column("x floor"), strict=True))
    assert {(broker, ratio) for what, broker, ratio in rows if "(floor)" in what} == {
        ("redis", "1.00"),
        ("rabbitmq", "1.00"),
    }
    assert ("delay()", "rabbitmq", "17.62") in rows  # 925 us / RabbitMQ's own 52.5 us floor
    section = next(s for s in root.all("section") if s.attrs.get("id") == "context")
    terms = [dt.content() for dt in section.all("dt")]
    descriptions = dict(zip(terms, (dd.content() for dd in section.all("dd")), strict=True))
    assert "started in 13.2 s, stopped in 1.2 s" in descriptions["broker: rabbitmq"]
    assert descriptions["broker: rabbitmq"].startswith("rabbitmq 3.10.8 amqp://bench-1:***@")


def test_the_page_is_self_contained(page):
    """Images are data: URLs, style and script inline; http(s) appears in no attribute, style or script."""
    root = dom(page)
    for node in [root, *_walk(root)]:
        for name, value in node.attrs.items():
            assert not value.strip().lower().startswith(("http:", "https:", "//")), (node.tag, name, value)
    assert all(img.attrs["src"].startswith("data:image/png;base64,") for img in root.all("img"))
    assert len(root.all("img")) == 4
    assert not root.all("link") and all("src" not in s.attrs for s in root.all("script"))
    for block in root.all("style") + root.all("script"):
        assert "http" not in block.text and "@import" not in block.text, block.tag


def _walk(node: Node) -> list[Node]:
    out = []
    for child in node.children:
        out += [child, *_walk(child)]
    return out


def test_the_real_figures_are_embedded(tmp_path):
    path = html.write_page(_run(), tmp_path / "r.html")
    images = dom(path.read_text(encoding="utf-8")).all("img")
    assert len(images) == 4
    assert all(img.attrs["src"].startswith("data:image/png;base64,iVBORw0KGgo") for img in images)  # PNG


# -- in a real browser ---------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


needs_chromium = pytest.mark.skipif(
    _chromium() is None, reason="no Chromium on PATH (apt-get install chromium) for the rendered-DOM check"
)


def rendered_dom(page_path: Path, fragment: str, tmp_path: Path) -> Node:
    """The DOM after Chromium loaded the page (and ran its script), with ``#fragment`` in the URL."""
    binary = _chromium()
    assert binary is not None
    log = tmp_path / f"chromium-{len(list(tmp_path.iterdir()))}.log"
    profile = tmp_path / "profile"
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", "--dump-dom", f"{page_path.as_uri()}#{fragment}"]  # fmt: skip
    with ManagedProcess(argv, name="chromium", log_path=log) as browser:
        wait_for(
            lambda: not browser.alive(), timeout=defaults.BROWSER_TIMEOUT, what="chromium to dump the DOM"
        )
    out = log.read_text(encoding="utf-8", errors="replace")  # stdout (the DOM) and stderr, interleaved
    start, end = out.find("<html"), out.rfind("</html>")
    assert browser.returncode() == 0 and 0 <= start < end, out[-2000:]
    return dom(out[start : end + len("</html>")])


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> Path:
    return html.write_page(_run(), tmp_path_factory.mktemp("page") / "report.html")


@needs_chromium
def test_chromium_renders_every_table_with_its_rows(page_file, tmp_path):
    found = tables(rendered_dom(page_file, "", tmp_path))
    counts = {name: (len(t.headers), len(t.bodies)) for name, t in found.items()}
    assert counts == {  # no p99.9 column: no figure of the sample run has 1,000 samples
        "enqueue-latency-us": (9, 2),
        "producer-throughput-tasks-per-s": (7, 1),
        "drain-throughput-tasks-per-s": (9, 3),
        "e2e-latency-ms": (9, 1),
        "reliability-table": (9, 4),
    }
    verdicts = {
        td.content(): sorted(td.classes) for td in found["reliability-table"].bodies[1][0].all("td")[-1:]
    }
    assert verdicts == {"deviation": ["verdict", "verdict-deviation"]}


@needs_chromium
@pytest.mark.parametrize(
    ("fragment", "table", "column", "expected"),
    [
        ("sort=drain-throughput-tasks-per-s:5:desc", "drain-throughput-tasks-per-s", "pool",
         ["prefork", "solo", "threads"]),
        ("sort=drain-throughput-tasks-per-s:5:asc", "drain-throughput-tasks-per-s", "pool",
         ["threads", "solo", "prefork"]),
        ("sort=reliability-table:0:desc", "reliability-table", "pool",
         ["threads", "solo", "solo", "prefork"]),
        # Empty numbers (no recovery time) sort last in both directions.
        ("sort=reliability-table:7:asc", "reliability-table", "recovery (s)", ["4.40", "5.20", "-", "-"]),
        ("sort=reliability-table:7:desc", "reliability-table", "recovery (s)", ["5.20", "4.40", "-", "-"]),
    ],
    ids=["number-desc", "number-asc", "text-desc", "empty-last-asc", "empty-last-desc"],
)  # fmt: skip
def test_chromium_sorts_by_column_and_keeps_notes_with_their_row(
    page_file, tmp_path, fragment, table, column, expected
):
    root = rendered_dom(page_file, fragment, tmp_path)
    found = tables(root)[table]
    assert found.column(column) == expected
    index = int(fragment.split(":")[1])
    heads = next(t for t in root.all("table") if t.attrs["id"] == table).all("th")
    direction = "descending" if fragment.endswith("desc") else "ascending"
    assert [h.attrs["aria-sort"] for h in heads] == [
        direction if i == index else "none" for i in range(len(heads))
    ]
    if table == "reliability-table":  # each row's sentences moved with it
        notes = {b[0].all("td")[1].content(): b[1].content() for b in found.bodies if len(b) > 1}
        assert notes["worker killed"] == "ran twice expected: lost 0"
        assert notes["no faults"] == "drained in 0.6s expected: lost 0"


def test_reliability_of_two_brokers_goes_side_by_side_in_html():
    pair = (
        dataclasses.replace(RECORDS[0], broker="redis"),
        dataclasses.replace(RECORDS[0], broker="rabbitmq", verdict="deviation", note="ran twice on rabbitmq"),
    )
    section = html.reliability_section(pair)
    head = section[section.index("<thead>") : section.index("</thead>")]
    assert ">redis<" in head and ">rabbitmq<" in head
    assert section.count('<td class="verdict verdict-ok"') == 1
    assert section.count('<td class="verdict verdict-deviation"') == 1
    assert "rabbitmq: ran twice on rabbitmq" in section
    assert section.count("<tbody") == 1  # one row for the pool and scenario
