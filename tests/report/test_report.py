"""The run report from a real run: two runs of a job into the sandbox, then ``flowport report``;
its page read back as tables and text. And the page's escaping, from rows a source could send."""

from __future__ import annotations

import re
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.checkpoint import AssetRow
from flowport.pipeline.report import Problem, ReportData, render
from flowport.pipeline.report_charts import clock, nice_ticks
from tests.conftest import run_cli
from tests.report.conftest import RATE, REFUSALS, SCRIPT_KEY, Scenario


class Page(HTMLParser):
    """The page's tables (header cells, then rows of cell texts), its script and its SVGs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.scripts: list[str] = []
        self.svg_titles: list[str] = []
        self._cell: list[str] | None = None
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in and self._in[-1] == "script":
            self.scripts.append(data)
        if len(self._in) >= 2 and self._in[-1] == "title" and "svg" in self._in:
            self.svg_titles.append(data)

    def table(self, *headers: str) -> list[dict[str, str]]:
        """The rows, as dicts, of the one table whose header row starts with ``headers``."""
        for table in self.tables:
            if table and table[0][: len(headers)] == list(headers):
                return [dict(zip(table[0], row, strict=False)) for row in table[1:]]
        raise AssertionError(f"no table headed {headers}: {[t[0] for t in self.tables if t]}")


@pytest.fixture(scope="module")
def page(scenario: Scenario) -> Page:
    return Page(scenario.page.read_text(encoding="utf-8"))


def test_every_run_writes_its_report_and_says_where(scenario: Scenario) -> None:
    state_report = scenario.job.parent / "nightly" / "report.html"
    for run in (scenario.first, scenario.second):
        assert "Traceback" not in run.output
        assert run.finished()["report"] == str(state_report)
    assert scenario.first.returncode == 1  # the script-keyed item failed, as it should
    # Each 429 is in the run's summary, at its second, for the chart.
    for run in (scenario.first, scenario.second):
        timeline = run.finished()["retry_timeline"]
        assert list(timeline) == ["posts"]
        assert sum(tried for _second, tried, _refused in timeline["posts"]) == REFUSALS
        assert sum(refused for _second, _tried, refused in timeline["posts"]) == REFUSALS
    assert scenario.report.returncode == 0, scenario.report.output
    assert scenario.report.stdout.strip() == f"report: {scenario.page}"
    assert stat.S_IMODE(state_report.stat().st_mode) == 0o600
    # The state folder's copy is the same page, but for the moment it was made.
    strip = re.compile(r"generated [^.]+\.")
    assert strip.sub("", state_report.read_text()) == strip.sub("", scenario.page.read_text())


def test_the_page_shows_outcomes_states_history_and_assets(page: Page, scenario: Scenario) -> None:
    # The last run (the nightly rerun): one record changed, one item sent again (its image is
    # missing on the old site: kept as its URL, which Webflow cannot fetch either, so the item
    # is written without it and fails with a `file` error), one record failing its mapping.
    assert page.table("updated", "unchanged", "failed") == [
        {"updated": "2", "unchanged": "38", "failed": "2"}
    ]
    assert page.table("done", "failed") == [{"done": "40", "failed": "1"}]
    history = page.table("run", "started", "took", "outcome")
    assert [row["run"] for row in history] == ["1", "2"]
    assert [row["created"] for row in history] == ["40", "0"]
    assert [row["unchanged"] for row in history] == ["0", "38"]
    assert [(row["retries"], row["429s"]) for row in history] == [(str(REFUSALS),) * 2] * 2
    (uploaded,) = page.table("state", "files", "bytes")
    assert uploaded == {"state": "uploaded", "files": "3", "bytes": f"{uploaded['bytes']}"}
    assert int(uploaded["bytes"].replace(",", "")) > 0
    assert page.table("reused", "failed") == [{"reused": "1", "failed": "1"}]


def test_the_page_draws_throughput_against_the_ceiling_and_the_retries(
    page: Page, scenario: Scenario
) -> None:
    text = scenario.page.read_text(encoding="utf-8")
    titles = " | ".join(page.svg_titles)
    assert "posts: write requests per minute" in titles
    assert "posts: items written per minute" in titles
    assert "posts: retries and 429s" in titles
    assert f"rate ceiling {RATE:,}/min" in titles
    assert text.count('class="ceiling"') == 1
    assert "the last 2 runs, items by outcome" in titles


def test_errors_and_warnings_name_their_items_and_a_script_key_stays_text(
    page: Page, scenario: Scenario
) -> None:
    problems = page.table("", "collection", "key", "field", "kind", "reason or excerpt")
    by_kind = {row["kind"]: row for row in problems}
    assert set(by_kind) == {"mapping", "media_not_found", "file"}
    assert (by_kind["file"]["key"], by_kind["file"]["field"]) == ("post-7", "image")
    assert by_kind["mapping"]["key"] == SCRIPT_KEY  # the parser unescaped what the page escaped
    assert by_kind["mapping"]["field"] == "contact"
    assert "not an address" in by_kind["mapping"]["reason or excerpt"]
    assert by_kind["media_not_found"]["key"] == "post-7"
    assert by_kind["media_not_found"]["field"] == "image"
    text = scenario.page.read_text(encoding="utf-8")
    assert SCRIPT_KEY not in text
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in text
    assert text.count("<script") == 1
    assert len(page.scripts) == 1


def test_the_page_needs_no_network(scenario: Scenario) -> None:
    text = scenario.page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text
    assert "url(" not in text


def _rows_naming(evil: str) -> ReportData:
    run: dict[str, Any] = {
        "id": 1,
        "started_at": "2026-12-06T10:00:00+00:00",
        "finished_at": "2026-12-06T10:01:00+00:00",
        "outcome": "partial",
        "summary": {
            "collections": {evil: {"created": 3, evil: 1, f"warning:{evil}": 1}},
            "retry_timeline": {
                evil: [["2026-12-06T10:00:30+00:00", 2, 1]],
                "": [["2026-12-06T10:00:02+00:00", 1, 1]],
            },
            "assets": {"uploaded": 1, "bytes": 10, "failed": 1},
            "aborted": evil,
        },
    }
    batch = {
        "collection": evil,
        "kind": "create-live",
        "size": 3,
        "started_at": "2026-12-06T10:00:10+00:00",
        "finished_at": "2026-12-06T10:00:11+00:00",
    }
    asset = AssetRow(
        "0" * 64, "0" * 32, f"https://old.example/{evil}", evil, "image/png", 1, "failed",
        None, None, evil, evil,
    )  # fmt: skip
    return ReportData(
        job=evil,
        generated_at="2026-12-06T10:02:00+00:00",
        ceiling_per_minute=120,
        collections=[evil],
        runs=[run],
        batches=[batch],
        states={evil: {"done": 3, evil: 1}},
        problems=[Problem("error", evil, evil, evil, evil, evil)],
        problem_counts={("error", evil, evil): 3},
        asset_sizes={evil: (1, 1)},
        failed_assets=[asset],
    )


def test_every_string_from_a_source_or_the_log_is_escaped() -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    text = render(_rows_naming(evil))
    assert "<script>alert" not in text
    assert "<img" not in text
    assert text.count("<script") == 1  # the page's own
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    # Its rows are all there, escaped: nothing was dropped to be safe.
    assert text.count("&lt;img src=x onerror=alert(1)&gt;") >= 10
    assert "2 more not listed here" in text
    # The site's own calls' retries, which belong to no collection, have a chart of their own.
    assert "site and schema calls: retries and 429s" in text


def test_the_charts_axes_are_round_and_readable() -> None:
    assert nice_ticks(95) == [0, 25, 50, 75, 100]
    assert nice_ticks(1200 * 1.08) == [0, 500, 1000, 1500]
    assert [clock(0), clock(75), clock(3725)] == ["0:00", "1:15", "1:02:05"]


def test_a_job_never_run_has_no_report_and_says_so(tmp_path: Path) -> None:
    job = tmp_path / "new.toml"
    job.write_text(
        '[destination]\napi = "sandbox"\n\n[collections.posts]\ncreate_missing = true\n'
        'source = { type = "csv", path = "p.csv", key = "id" }\nslug_from = "name"\n'
        'fields = { name = "title" }\nschema = { singular_name = "Post" }\n',
        encoding="utf-8",
    )
    result = run_cli("report", str(job), cwd=tmp_path)
    assert result.returncode == 2
    assert "no run yet, nothing to report" in result.stderr
    assert f"fix: run it first: flowport run {job}" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


def test_an_unwritable_output_is_one_line(scenario: Scenario, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run_cli(
        "report", str(scenario.job), "--output", str(blocked / "report.html"), cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot write the report to {blocked}/report.html")
    assert "Traceback" not in result.output


def test_status_leaves_the_retries_timeline_to_the_report(scenario: Scenario) -> None:
    result = run_cli("status", str(scenario.job), cwd=scenario.job.parent)
    assert result.returncode == 0, result.stderr
    assert f'"retries": {REFUSALS}' in result.stdout
    assert "retry_timeline" not in result.stdout


def _small_job(folder: Path) -> Path:
    job = folder / "demo.toml"
    job.write_text(
        '[destination]\napi = "sandbox"\n\n[collections.posts]\ncreate_missing = true\n'
        'source = { type = "csv", path = "p.csv", key = "id" }\nslug_from = "name"\n'
        'fields = { name = "title" }\nschema = { singular_name = "Post" }\n',
        encoding="utf-8",
    )
    (folder / "p.csv").write_text("id,title\n1,One\n2,Two\n", encoding="utf-8")
    return job


def test_a_run_on_a_terminal_names_its_report_last(tmp_path: Path) -> None:
    job = _small_job(tmp_path)
    result = run_cli("run", str(job), "--log-format", "text", cwd=tmp_path)
    assert result.returncode == 0, result.output
    report = tmp_path / "demo" / "report.html"
    assert result.stdout.strip().splitlines()[-1] == f"report: {report}"
    assert "flowport run report: demo" in report.read_text(encoding="utf-8")


def test_a_report_that_cannot_be_written_is_said_and_the_run_goes_on(tmp_path: Path) -> None:
    job = _small_job(tmp_path)
    (tmp_path / "demo" / "report.html").mkdir(parents=True)  # in the way of the page
    result = run_cli("run", str(job), "--log-format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.output
    finished = result.finished()
    assert finished["collections"] == {"posts": {"created": 2}}
    assert "report" not in finished
    assert finished["report_error"].startswith("not written (")
    assert finished["report_error"].endswith(f"flowport report {job} tries again")
    assert "Traceback" not in result.output


def test_the_bars_split_the_records_and_counts_on_top_of_an_outcome_stay_in_the_tables() -> None:
    """An adopted item is unchanged as well, a published one created as well: stacked with the
    outcomes they would make the bar add up to more records than were read."""
    data = _rows_naming("posts")
    counts = {"created": 10, "published": 10, "unchanged": 2, "adopted": 2}
    data.runs[0]["summary"]["collections"] = {"posts": counts}
    text = render(data)
    stack = re.search(r'<div class="stack">(.*?)</div>', text)
    assert stack is not None
    found = re.findall(r'flex:([0-9.]+);[^"]*" title="(\w+): ', stack.group(1))
    shares = {outcome: float(flex) for flex, outcome in found}
    assert shares == {
        "created": pytest.approx(10 / 12, abs=1e-4),
        "unchanged": pytest.approx(2 / 12, abs=1e-4),
    }
    # The history chart stacks the same; both tables keep every count.
    history = text[text.index('id="history"') :]
    assert "10 published" not in history
    assert "10 created" in history
    assert text.count("<th>published</th>") == 2
    assert text.count("<th>adopted</th>") == 2
