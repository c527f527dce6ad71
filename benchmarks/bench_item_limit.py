"""The site's item limit (issue 16): a job whose creates pass the limit by 10,000.

    .venv/bin/python benchmarks/bench_item_limit.py [--limit 10000] [--over 10000] [--quick]

A sandbox in its own process holds ``--limit`` items at most (its answer at the limit: a 400
naming the plan and the limit for the whole request); the job declares that limit
(``item_limit``) and has ``limit + over`` new rows (one collection, batches of 100, 4 requests
in flight, then 1; no rate limit). Counted by the sandbox: the create requests it refused (each
one a request wasted after the limit) and every request of the run (the site's count, read
before the first create, among them). Target: refused create requests <= 1 per collection
(before issue 16, every batch past the limit was split in halves down to single items: about
two requests an item; before the room under the declared limit was kept, each request in flight
when the first refusal came back was refused too: 4 at 4 in flight).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import UNLIMITED, print_json, run_flowport, sandbox_process, scratch_dir
from _harness import write_csv as write_posts
from _harness import write_job as write_posts_job

__all__ = ["TARGET_REFUSED_PER_COLLECTION", "run"]

TARGET_REFUSED_PER_COLLECTION = 1
_CREATE_ROUTES = ("/items", "/items/live", "/items/bulk")


def _creates(stats: dict[str, Any]) -> tuple[int, int]:
    """(create requests accepted, refused) as the sandbox counted them."""
    accepted = refused = 0
    for row in stats["endpoints"]:
        if row["method"] == "POST" and row["route"].endswith(_CREATE_ROUTES):
            if 200 <= row["status"] < 300:
                accepted += row["count"]
            else:
                refused += row["count"]
    return accepted, refused


def run(quick: bool = False, limit: int | None = None, over: int | None = None) -> dict[str, Any]:
    """The job with 4 requests in flight (the default), and with 1: the requests already in
    flight when the first refusal comes back were sent before anything said the limit."""
    limit = limit or (1_000 if quick else 10_000)
    over = over or (2_000 if quick else 10_000)
    runs = [measure(limit, over, concurrency) for concurrency in (4, 1)]
    return {"runs": runs, "met": all(figures["met"] for figures in runs)}


def measure(limit: int, over: int, concurrency: int) -> dict[str, Any]:
    rows = limit + over
    with (
        scratch_dir(f"item-limit-{rows}") as folder,
        sandbox_process(rate_limit=UNLIMITED, window_seconds=60.0, item_limit=limit) as sandbox,
    ):
        write_posts(folder / "posts.csv", rows)
        write_posts_job(
            folder / "job.toml",
            api=sandbox.base_url,
            site_id=sandbox.site_id,
            csv_path=folder / "posts.csv",
            rate_limit=100_000,
            window_seconds=60.0,
            concurrency=concurrency,
            item_limit=limit,
        )
        result = run_flowport(
            "run", "job.toml", "--log-format", "json", folder=folder, timeout=1800.0
        )
        stats = sandbox.stats()
    accepted, refused = _creates(stats)
    counts = result.finished.get("collections", {}).get("posts", {})
    return {
        "command": (
            f"flowport run job.toml (1 collection, batches of 100, {concurrency} in flight, "
            f"item_limit = {limit})"
        ),
        "concurrency": concurrency,
        "item_limit": limit,
        "rows": rows,
        "exit_code": result.exit_code,
        "wall_seconds": round(result.wall_seconds, 1),
        "created": counts.get("created", 0),
        "failed": counts.get("failed", 0),
        "create_requests_accepted": accepted,
        "create_requests_refused": refused,
        "requests": sum(row["count"] for row in stats["endpoints"]),
        "collections": 1,
        "met": refused <= TARGET_REFUSED_PER_COLLECTION and result.exit_code == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--over", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print_json(run(args.quick, args.limit, args.over))


if __name__ == "__main__":
    main()
