"""The run report: one self-contained HTML file from a job's checkpoint log (``flowport report
JOB``, and ``<state dir>/report.html`` after every run).

It shows, per collection, the last run's outcomes, its throughput over time against the rate
ceiling (from the batch log's timestamps), its retries and 429s over time (from the run's
summary: the batch log has no row per attempt); every per-item error and warning with what it
names, filterable in the page; the assets moved; and the job's runs side by side.

:func:`gather` reads the log; :func:`render` is a pure function from those rows to HTML. The
file needs no network to open: its style, its charts (inline SVG, :mod:`.report_charts`) and
its few lines of script are all in it. Every string that comes from a source, a job or Webflow
is escaped (item keys and titles come from sites nobody here controls).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Final, Literal

from flowport.pipeline import __version__
from flowport.pipeline.checkpoint import AssetRow, CheckpointLog
from flowport.pipeline.logging import redact
from flowport.pipeline.report_charts import Series, clock, outcome_colour, run_bars, time_chart

__all__ = ["REPORT_FILE", "Problem", "ReportData", "gather", "render", "write_report"]

#: Inside the job's state folder, rewritten at the end of every run.
REPORT_FILE: Final = "report.html"
#: Errors and warnings listed in the page; past it, the page says how many more and where.
MAX_PROBLEMS: Final = 2000
#: Runs in the history.
HISTORY_RUNS: Final = 30
MAX_FAILED_ASSETS: Final = 200
#: Batch kinds that are one write request each (the others record what needed none).
_REQUEST_KINDS: Final = ("publish", "archive", "unpublish", "delete")
#: Outcomes in the order their columns and bars show them; others follow, sorted.
_OUTCOME_ORDER: Final = ("created", "updated", "unchanged", "failed", "skipped", "published")
#: Counted on top of an item's own outcome (an adopted item is unchanged or updated as well, a
#: published one created or updated, a merged one updated...): listed in the tables, left out of
#: the bars, which split the records among outcomes (else they add up to more than were read).
_ALSO_COUNTED: Final = frozenset(
    {"adopted", "merged", "overwritten", "published", "references_set", "changed_in_webflow_only"}
)
#: How a run's summary counts standing warnings among a collection's outcomes.
_WARNING_PREFIX: Final = "warning:"
#: Buckets of a time chart, in seconds: the first giving at most ~60 bars.
_BUCKETS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Literal["error", "warning"]
    collection: str
    key: str
    field: str | None
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReportData:
    job: str
    generated_at: str
    #: The job's rate limit, in requests per minute.
    ceiling_per_minute: float
    collections: Sequence[str]
    #: Oldest first, as :meth:`RunHistory.recent` gives them; the last is the one detailed.
    runs: Sequence[Mapping[str, Any]]
    #: The last run's batches, as :meth:`Batches.list` gives them.
    batches: Sequence[Mapping[str, Any]]
    states: Mapping[str, Mapping[str, int]]
    #: The first :data:`MAX_PROBLEMS` errors, then warnings.
    problems: Sequence[Problem]
    #: Every error and warning, counted per (``error`` or ``warning``, kind, collection).
    problem_counts: Mapping[tuple[str, str, str], int]
    asset_sizes: Mapping[str, tuple[int, int]]
    failed_assets: Sequence[AssetRow]


# ---- reading the log -------------------------------------------------------------------------


def _problems(log: CheckpointLog) -> Iterable[Problem]:
    for item in log.errors():
        yield Problem(
            "error",
            item.collection,
            item.key,
            item.error_field,
            item.error_kind or "error",
            redact(item.last_error or ""),
        )
    for collection, warning, _updated in log.warnings.all():
        yield Problem(
            "warning", collection, warning.key, warning.field, warning.kind, redact(warning.excerpt)
        )


def gather(log: CheckpointLog, *, job: str, collections: Sequence[str], rate: float) -> ReportData:
    """The report's rows from the log: ``collections`` in the job's order, ``rate`` the job's
    requests per minute."""
    runs = log.runs.recent(HISTORY_RUNS)
    batches = list(log.batches.list(runs[-1]["id"])) if runs else []
    states = log.counts()
    counted = {
        (severity, kind, collection): n
        for severity, per_collection in (
            ("error", log.items.error_counts()),
            ("warning", log.warnings.counts()),
        )
        for collection, kinds in per_collection.items()
        for kind, n in kinds.items()
    }
    named = list(collections) + sorted(set(states) - set(collections))
    return ReportData(
        job=job,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ceiling_per_minute=rate,
        collections=named,
        runs=runs,
        batches=batches,
        states=states,
        problems=list(itertools.islice(_problems(log), MAX_PROBLEMS)),
        problem_counts=counted,
        asset_sizes=log.assets.sizes(),
        failed_assets=log.assets.failed(MAX_FAILED_ASSETS),
    )


def write_report(data: ReportData, path: Path) -> Path:
    """Write the page whole, then move it into place: a reader never sees half of one. Mode
    0600, like the log it is drawn from (it names items and their errors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render(data))
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


# ---- small helpers ---------------------------------------------------------------------------


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moment(text: str | None) -> str:
    """A log's timestamp for people: to the second, in UTC."""
    moment = _when(text)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _seconds(run: Mapping[str, Any]) -> float | None:
    began, ended = _when(run.get("started_at")), _when(run.get("finished_at"))
    return (ended - began).total_seconds() if began and ended else None


def _ordered(outcomes: Iterable[str]) -> list[str]:
    found = set(outcomes)
    return [o for o in _OUTCOME_ORDER if o in found] + sorted(found - set(_OUTCOME_ORDER))


def _split_records(outcomes: list[str]) -> list[str]:
    """The outcomes a bar stacks: each record once (all of them when only counts on top of
    another outcome are there, a run that only published, say)."""
    return [o for o in outcomes if o not in _ALSO_COUNTED] or outcomes


def _split_warnings(counts: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """A summary's outcomes, and its ``warning:<kind>`` entries (standing warnings, not
    outcomes: a warned item is counted in an outcome too) added up."""
    outcomes = {k: int(v) for k, v in counts.items() if not k.startswith(_WARNING_PREFIX)}
    warned = sum(int(v) for k, v in counts.items() if k.startswith(_WARNING_PREFIX))
    return outcomes, warned


def _summary(run: Mapping[str, Any] | None) -> Mapping[str, Any]:
    summary = (run or {}).get("summary")
    return summary if isinstance(summary, Mapping) else {}


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], css: str = "") -> str:
    """A table of escaped cells; a numeric cell is right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{value:,}</td>'
            if isinstance(value, int) and not isinstance(value, bool)
            else f"<td>{escape('' if value is None else str(value))}</td>"
            for value in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _bucket_seconds(span: float) -> int:
    return next((b for b in _BUCKETS if span / b <= 60), _BUCKETS[-1])


def _is_request(kind: str) -> bool:
    return (kind.startswith("create-") and kind != "create-lost") or (
        kind.startswith("update-") or kind in _REQUEST_KINDS
    )


# ---- the page's sections ---------------------------------------------------------------------


def _header(data: ReportData) -> str:
    last = data.runs[-1] if data.runs else None
    summary = _summary(last)
    if last is None:
        facts = [("runs", "none recorded yet")]
    else:
        took = _seconds(last)
        facts = [
            ("last run", f"#{last['id']}, started {_moment(last['started_at'])}"),
            ("outcome", str(last.get("outcome") or "not finished (running, or killed)")),
            ("took", clock(took) if took is not None else "—"),
            ("requests", f"{summary.get('requests', 0):,}"),
            (
                "retries",
                f"{summary.get('retries', 0):,} ({summary.get('rate_limited', 0):,} × 429)",
            ),
            ("rate ceiling", f"{data.ceiling_per_minute:,.0f} requests/min"),
        ]
    if summary.get("aborted"):
        facts.append(("stopped", str(summary["aborted"])))
    listed = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return (
        f"<header><h1>flowport run report: {escape(data.job)}</h1>"
        f'<dl class="facts">{listed}</dl></header>'
    )


def _outcomes(data: ReportData, name: str) -> str:
    counted = _summary(data.runs[-1] if data.runs else None).get("collections", {}).get(name, {})
    per, warned = _split_warnings(counted)
    states = data.states.get(name, {})
    parts = []
    if warned:
        noun = "warning stands" if warned == 1 else "warnings stand"
        parts.append(f'<p>{warned:,} {noun}: see <a href="#problems">errors and warnings</a>.</p>')
    if per:
        order = _ordered(per)
        parts.append("<h3>last run's outcomes</h3>" + _table(order, [[per[o] for o in order]]))
        shown = _split_records(order)
        total = sum(per[o] for o in shown) or 1
        bar = "".join(
            f'<span style="flex:{per[o] / total:.4f};background:{outcome_colour(o, i)}" '
            f'title="{escape(o)}: {per[o]:,}"></span>'
            for i, o in enumerate(order)
            if per[o] and o in shown
        )
        parts.append(f'<div class="stack">{bar}</div>')
    else:
        parts.append("<p>The last run counted nothing for this collection.</p>")
    if states:
        order = sorted(states)
        parts.append(
            "<h3>items in the log, by state</h3>" + _table(order, [[states[s] for s in order]])
        )
    return "".join(parts)


def _throughput(data: ReportData, name: str, start: datetime, span: float) -> str:
    """Two charts: write requests per minute against the rate ceiling, and items per minute."""
    bucket = _bucket_seconds(span)
    requests: dict[int, int] = {}
    items: dict[int, int] = {}
    for batch in data.batches:
        ended = _when(batch.get("finished_at") or batch.get("started_at"))
        if batch["collection"] != name or ended is None or not _is_request(batch["kind"]):
            continue
        slot = max(int((ended - start).total_seconds() // bucket), 0)
        requests[slot] = requests.get(slot, 0) + 1
        if batch["kind"] != "publish":
            items[slot] = items.get(slot, 0) + int(batch["size"])
    if not requests:
        return "<p>No write request in the last run (nothing to send, or all unchanged).</p>"
    per_minute = 60 / bucket
    slots = range(max(requests) + 1)
    x_max = max(span, (max(slots) + 1) * bucket)
    ceiling = data.ceiling_per_minute
    return time_chart(
        f"{name}: write requests per minute (per {bucket} s)",
        [
            Series(
                "requests/min",
                [(s * bucket, requests.get(s, 0) * per_minute) for s in slots],
                "#1565c0",
            )
        ],
        x_max=x_max,
        bucket_seconds=bucket,
        unit="requests per minute",
        ceiling=(ceiling, f"rate ceiling {ceiling:,.0f}/min"),
    ) + time_chart(
        f"{name}: items written per minute (per {bucket} s)",
        [
            Series(
                "items/min", [(s * bucket, items.get(s, 0) * per_minute) for s in slots], "#2e7d32"
            )
        ],
        x_max=x_max,
        bucket_seconds=bucket,
        unit="items per minute",
    )


def _retries(data: ReportData, name: str, start: datetime, span: float) -> str:
    timeline = _summary(data.runs[-1]).get("retry_timeline", {}).get(name, [])
    if not timeline:
        return "<p>No retry and no 429 in the last run.</p>"
    bucket = _bucket_seconds(span)
    retries: dict[int, int] = {}
    limited: dict[int, int] = {}
    for second, tried, refused in timeline:
        at = _when(second)
        if at is None:
            continue
        slot = max(int((at - start).total_seconds() // bucket), 0)
        retries[slot] = retries.get(slot, 0) + int(tried)
        limited[slot] = limited.get(slot, 0) + int(refused)
    slots = sorted(retries)
    return time_chart(
        f"{name or 'site and schema calls'}: retries and 429s (per {bucket} s)",
        [
            Series("retries", [(s * bucket, retries[s]) for s in slots], "#ef6c00", "bar"),
            Series("429s", [(s * bucket, limited[s]) for s in slots], "#c62828", "bar"),
        ],
        x_max=max(span, (slots[-1] + 1) * bucket),
        bucket_seconds=bucket,
        unit="count",
    )


def _last_run_span(data: ReportData) -> tuple[datetime, float] | None:
    """When the last run began, and how many seconds its charts cover."""
    last = data.runs[-1] if data.runs else None
    start = _when(last["started_at"]) if last else None
    if last is None or start is None:
        return None
    ends = [_when(b.get("finished_at")) for b in data.batches]
    latest = max([e for e in ends if e] + [_when(last.get("finished_at")) or start])
    return start, max((latest - start).total_seconds(), 1.0)


def _collection(data: ReportData, name: str) -> str:
    parts = [f'<section class="collection"><h2>{escape(name)}</h2>', _outcomes(data, name)]
    span = _last_run_span(data)
    if span is not None:
        parts.append('<div class="charts">')
        parts.append(_throughput(data, name, *span))
        parts.append(_retries(data, name, *span))
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _site_calls(data: ReportData) -> str:
    """Retries of calls made for no collection of the job (the site, its collections' schemas:
    ``""`` in the timeline), which no collection's chart shows."""
    timeline = _summary(data.runs[-1] if data.runs else None).get("retry_timeline", {})
    others = [name for name in timeline if name not in data.collections]
    span = _last_run_span(data)
    if not others or span is None:
        return ""
    charts = "".join(_retries(data, name, *span) for name in others)
    return (
        '<section id="site-calls"><h2>Site and schema calls</h2>'
        f'<div class="charts">{charts}</div></section>'
    )


def _kinds_summary(counted: Mapping[tuple[str, str, str], int]) -> str:
    rows = [[s, k, c, n] for (s, k, c), n in sorted(counted.items())]
    return _table(["", "kind", "collection", "items"], rows, "kinds")


def _problem_rows(problems: Sequence[Problem]) -> str:
    return "".join(
        f'<tr class="{p.severity}" data-kind="{escape(p.kind)}">'
        f"<td>{p.severity}</td><td>{escape(p.collection)}</td><td>{escape(p.key)}</td>"
        f"<td>{escape(p.field or '')}</td><td>{escape(p.kind)}</td>"
        f"<td>{escape(p.reason)}</td></tr>"
        for p in problems
    )


def _problems_section(data: ReportData) -> str:
    head = '<section id="problems"><h2>Errors and warnings</h2>'
    if not data.problems:
        return head + "<p>No per-item error and no warning stands in the log.</p></section>"
    kinds = sorted({(p.kind, p.severity) for p in data.problems})
    options = "".join(
        f'<option value="{escape(kind)}">{escape(kind)} ({severity})</option>'
        for kind, severity in kinds
    )
    left_out = sum(data.problem_counts.values()) - len(data.problems)
    more = (
        f"<p>{left_out:,} more not listed here: <code>flowport errors</code> and "
        "<code>flowport warnings</code> list them all.</p>"
        if left_out > 0
        else ""
    )
    return (
        head
        + _kinds_summary(data.problem_counts)
        + '<div class="filters"><input id="problem-filter" type="search" '
        'placeholder="filter: key, field, reason…" aria-label="filter the rows">'
        '<select id="problem-kind" aria-label="kind"><option value="">every kind</option>'
        + options
        + '</select> <span id="problem-count"></span></div>'
        + '<table id="problem-table"><thead><tr><th></th><th>collection</th><th>key</th>'
        "<th>field</th><th>kind</th><th>reason or excerpt</th></tr></thead><tbody>"
        + _problem_rows(data.problems)
        + "</tbody></table>"
        + more
        + "</section>"
    )


def _assets_section(data: ReportData) -> str:
    head = '<section id="assets"><h2>Assets</h2>'
    last = _summary(data.runs[-1] if data.runs else None).get("assets") or {}
    if not data.asset_sizes and not last:
        return head + "<p>No asset moved by this job.</p></section>"
    parts = [head]
    if last:
        names = [n for n in ("uploaded", "bytes", "deduplicated", "reused", "failed") if n in last]
        parts.append("<h3>last run</h3>" + _table(names, [[int(last[n]) for n in names]]))
    if data.asset_sizes:
        rows = [[state, *data.asset_sizes[state]] for state in sorted(data.asset_sizes)]
        parts.append("<h3>in the log</h3>" + _table(["state", "files", "bytes"], rows))
    if data.failed_assets:
        rows = [
            [a.source_url, a.failure_kind or "", redact(a.detail or "")] for a in data.failed_assets
        ]
        parts.append("<h3>failed</h3>" + _table(["source URL", "kind", "detail"], rows))
    parts.append("</section>")
    return "".join(parts)


def _history_section(data: ReportData) -> str:
    head = '<section id="history"><h2>Run history</h2>'
    if not data.runs:
        return head + "<p>No run recorded yet.</p></section>"
    totals: list[tuple[str, dict[str, int]]] = []
    for run in data.runs:
        per: dict[str, int] = {}
        for counts in _summary(run).get("collections", {}).values():
            for outcome, n in _split_warnings(counts)[0].items():
                per[outcome] = per.get(outcome, 0) + n
        totals.append((f"#{run['id']}", per))
    outcomes = _ordered(o for _label, per in totals for o in per)
    chart = run_bars(
        f"the last {len(data.runs)} runs, items by outcome", totals, _split_records(outcomes)
    )
    rows = []
    for run, (_label, per) in zip(data.runs, totals, strict=True):
        summary = _summary(run)
        took = _seconds(run)
        rows.append(
            [
                run["id"],
                _moment(run["started_at"]),
                clock(took) if took is not None else "—",
                run.get("outcome") or "not finished",
                *[per.get(o, 0) for o in outcomes],
                int(summary.get("requests", 0)),
                int(summary.get("retries", 0)),
                int(summary.get("rate_limited", 0)),
            ]
        )
    headers = ["run", "started", "took", "outcome", *outcomes, "requests", "retries", "429s"]
    return head + chart + _table(headers, rows) + "</section>"


# ---- the page --------------------------------------------------------------------------------

_STYLE: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
header{background:#1f2937;color:#fff;padding:16px 24px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:17px;margin:24px 0 8px}
h3{font-size:14px;margin:12px 0 4px}
.facts{display:flex;flex-wrap:wrap;gap:4px 20px;margin:0}.facts dt{opacity:.7}
.facts dd{margin:0 0 0 4px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:6px;padding:4px 16px 16px;
margin:16px 0}
table{border-collapse:collapse;margin:4px 0 8px}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{background:#f0f2f4}td{white-space:nowrap}td.num{text-align:right;
font-variant-numeric:tabular-nums}
#problem-table td:nth-child(3),#problem-table td:nth-child(6){word-break:break-word;
white-space:normal}
tr.error td:first-child{color:#c62828}tr.warning td:first-child{color:#b26a00}
.stack{display:flex;height:14px;border-radius:3px;overflow:hidden;max-width:640px;margin:4px 0 12px}
.charts{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-start}
.charts p{flex-basis:100%}
svg.chart{display:block;width:100%;max-width:500px;height:auto;margin:8px 0}
svg .heading{font-size:13px;font-weight:600;fill:#222}svg .tick,svg .key{font-size:11px;fill:#555}
svg .grid{stroke:#e6e6e6}svg .ceiling{stroke:#c62828;stroke-dasharray:6 4;stroke-width:1.5}
.filters{margin:8px 0}.filters input{width:280px;padding:4px}.filters select{padding:4px}
footer{color:#777;font-size:12px;text-align:center}
"""

#: The filter: a text box and a kind list hide the rows they do not match.
_SCRIPT: Final = """
(function () {
  var text = document.getElementById("problem-filter");
  var kind = document.getElementById("problem-kind");
  var count = document.getElementById("problem-count");
  if (!text || !kind || !count) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll("#problem-table tbody tr"));
  function apply() {
    var wanted = text.value.toLowerCase(), chosen = kind.value, shown = 0;
    rows.forEach(function (row) {
      var keep = (!chosen || row.getAttribute("data-kind") === chosen) &&
        (!wanted || row.textContent.toLowerCase().indexOf(wanted) !== -1);
      row.hidden = !keep;
      if (keep) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " shown";
  }
  text.addEventListener("input", apply);
  kind.addEventListener("change", apply);
  apply();
}());
"""


def render(data: ReportData) -> str:
    """The whole page, from the rows :func:`gather` read."""
    sections = [_collection(data, name) for name in data.collections] + [_site_calls(data)]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>flowport report: {escape(data.job)}</title><style>{_STYLE}</style></head>"
        f"<body>{_header(data)}<main>"
        + "".join(sections)
        + _problems_section(data)
        + _assets_section(data)
        + _history_section(data)
        + f"<footer>flowport {escape(__version__)}, generated {_moment(data.generated_at)}. "
        "This file is self-contained: it opens offline.</footer>"
        f"</main><script>{_SCRIPT}</script></body></html>\n"
    )
