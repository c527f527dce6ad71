"""Saturation: how close flowport runs to Webflow's rate ceiling, and how often it hits a 429.

    .venv/bin/python benchmarks/bench_saturation.py [--rows 20000] [--quick]

Then again under faults (issue 16): 3 % of requests answered 500/503 without being applied, and
1 % applied and then answered by a dropped connection, duplicate slugs suffixed (so a create sent
twice shows as a duplicate instead of a refusal). Besides the share of the ceiling it reports the
item reads (every GET of a collection's items: the read-back of lost creates, plus the run's own
count read per collection) as a share of the item writes, and the rows lost and duplicated,
counted in the sandbox's own state.

Each mode gets a fresh sandbox in its own process, limited to 120 requests per token per window.
The window is compressed to 6 s (same ratio as Webflow's 120 per 60 s; the sandbox scales
Retry-After) and the job says ``rate_limit = 120``, ``rate_window_seconds = 6``.

The ceiling is ``limit × 100`` items per window in live mode (one bulk request per 100 items),
half that staged-then-publish (a create and a publish per 100 items). The steady state is read
from the sandbox's own request count, sampled every 50 ms, between the first and the last item
write, so the setup requests (collection and field creation, schema reads) stay out of it; they
are reported separately. 429s are the sandbox's count over the whole run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import StatsPoller, bench_main, item_write_requests, prepared_job
from bench_sdk import count_landed

__all__ = ["RATE_LIMIT", "WINDOW_SECONDS", "measure_mode", "run"]

RATE_LIMIT = 120
WINDOW_SECONDS = 6.0
#: Webflow's real window: figures are scaled back to it.
REAL_WINDOW_SECONDS = 60.0
REQUESTS_PER_100_ITEMS = {"live": 1, "staged": 2}
#: Issue 16's faults: 3 % 500/503 (not applied), 1 % applied then dropped.
FAULTS: dict[str, float | str] = {
    "error_rate": 0.03,
    "commit_then_drop_rate": 0.01,
    "duplicate_slug": "suffix",
}
_ITEM_READ_ROUTES = (
    "/v2/collections/{collection_id}/items",
    "/v2/collections/{collection_id}/items/live",
)


def item_reads(stats: dict[str, Any]) -> int:
    """GETs of a collection's items, any status (a read sent again after a fault counts)."""
    return sum(
        row["count"]
        for row in stats["endpoints"]
        if row["method"] == "GET" and row["route"] in _ITEM_READ_ROUTES
    )


def measure_mode(
    mode: str, rows: int, timeout: float, faults: dict[str, float | str] | None = None
) -> dict[str, Any]:
    with prepared_job(
        rows, rate_limit=RATE_LIMIT, window_seconds=WINDOW_SECONDS, mode=mode, faults=faults
    ) as job:
        with StatsPoller(job.sandbox) as poller:
            result = job.run(timeout=timeout)
        job.sandbox.set_faults({})
        stats = job.sandbox.stats()
        landed = count_landed(job.sandbox, rows)
    item_requests, setup_requests = item_write_requests(stats)
    steady_requests, steady_seconds = poller.steady_state()
    totals = stats["totals"]
    per_100 = REQUESTS_PER_100_ITEMS[mode]
    request_rate = steady_requests / steady_seconds if steady_seconds else 0.0
    items_per_second = request_rate * 100 / per_100
    # One compressed window stands for one real minute: items per window = items per real minute.
    items_per_real_minute = items_per_second * WINDOW_SECONDS * REAL_WINDOW_SECONDS / 60.0
    ceiling = RATE_LIMIT * 100 / per_100
    early, late = poller.halves()
    per_window = WINDOW_SECONDS * 100 / per_100
    requests = int(totals["requests"])
    rate_limited = int(totals["rateLimited"])
    reads = item_reads(stats)
    return {
        "mode": mode,
        "faults": {k: v for k, v in (faults or {}).items() if k != "duplicate_slug"},
        "faults_served": {k: v for k, v in totals["faults"].items() if v},
        "rows": rows,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "outcomes": result.finished.get("collections", {}).get("posts", {}),
        "wall_seconds": round(result.wall_seconds, 2),
        "steady_item_requests": steady_requests,
        "steady_seconds": round(steady_seconds, 2),
        "items_per_real_minute": round(items_per_real_minute),
        "ceiling_items_per_real_minute": round(ceiling),
        "share_of_ceiling": round(items_per_real_minute / ceiling, 3),
        "share_of_ceiling_first_half": round(early * per_window / ceiling, 3),
        "share_of_ceiling_second_half": round(late * per_window / ceiling, 3),
        "requests": requests,
        "item_write_requests": item_requests,
        "setup_and_read_requests": setup_requests,
        "rate_limited_429": rate_limited,
        "share_429": round(rate_limited / requests, 4) if requests else 0.0,
        "item_reads": reads,
        "item_reads_per_write": round(reads / item_requests, 4) if item_requests else 0.0,
        "lost": landed["lost"],
        "duplicated": landed["duplicated"],
        "pipeline_cpu_seconds": round(result.cpu_seconds, 2),
    }


def run(quick: bool = False, rows: int | None = None) -> dict[str, Any]:
    count = rows or (2_000 if quick else 20_000)
    timeout = 300.0 if quick else 1200.0
    return {
        "rate_limit": RATE_LIMIT,
        "window_seconds": WINDOW_SECONDS,
        "modes": [measure_mode(mode, count, timeout) for mode in ("live", "staged")],
        "faulty_modes": [measure_mode(mode, count, timeout, FAULTS) for mode in ("live", "staged")],
    }


def main() -> None:
    bench_main(__doc__, run)


if __name__ == "__main__":
    main()
