"""Memory of the second pass: peak RSS of ``flowport plan`` and ``flowport run`` on a CSV whose
every row references another row of the same collection (a parent page), so every item waits
for the second pass.

    .venv/bin/python benchmarks/bench_second_pass_memory.py [--rows 200000] [--plan-only]

Each command runs as a child against a sandbox in its own process (no rate limit); its peak RSS
is the child's own ``ru_maxrss``. To measure another checkout's code with this venv, put an
installed-layout tree of it first on ``PYTHONPATH`` (see ``tests/test_static_checks.py``'s
``flowport_tree``): the child processes inherit the environment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BENCH_TOKEN_ENV,
    UNLIMITED,
    print_json,
    run_flowport,
    sandbox_process,
    scratch_dir,
)


def write_pages(path: Path, rows: int) -> None:
    """Pages, each a child of the one before it (the first has none)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("id,title,summary,parent\n")
        for n in range(rows):
            parent = str(n - 1) if n else ""
            handle.write(f"{n},Page number {n},A short summary of page {n},{parent}\n")


def write_job(path: Path, *, api: str, site_id: str, csv_path: Path) -> None:
    path.write_text(
        f"""[destination]
api = "{api}"
site_id = "{site_id}"
token_env = "{BENCH_TOKEN_ENV}"
rate_limit = 100000
concurrency = 4

[run]
mode = "live"

[collections.pages]
target = "Pages"
create_missing = true
source = {{ type = "csv", path = "{csv_path}", key = "id" }}
slug_from = "name"

[collections.pages.fields]
name = "title"
summary = "summary"
parent = {{ source = "parent", reference = "pages" }}

[collections.pages.schema]
singular_name = "Page"
fields = {{ summary = "PlainText", parent = {{ type = "Reference", collection = "pages" }} }}
""",
        encoding="utf-8",
    )


def measure(rows: int, *, plan_only: bool, timeout: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"rows": rows}
    with (
        scratch_dir(f"second-pass-{rows}") as folder,
        sandbox_process(
            rate_limit=UNLIMITED, window_seconds=60.0, item_limit=rows + 1000
        ) as sandbox,
    ):
        write_pages(folder / "pages.csv", rows)
        write_job(
            folder / "job.toml",
            api=sandbox.base_url,
            site_id=sandbox.site_id,
            csv_path=folder / "pages.csv",
        )
        commands = [("plan", ("plan", "job.toml", "--format", "json"))]
        if not plan_only:
            commands.append(("run", ("run", "job.toml", "--log-format", "json")))
        for label, args in commands:
            result = run_flowport(*args, folder=folder, timeout=timeout)
            figures[label] = {
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "wall_seconds": round(result.wall_seconds, 1),
                "cpu_seconds": round(result.cpu_seconds, 1),
                "peak_rss_mb": round(result.peak_rss_mb, 1),
                "collections": result.finished.get("collections") if label == "run" else None,
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000])
    parser.add_argument("--plan-only", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    args = parser.parse_args()
    print_json(
        {"sizes": [measure(r, plan_only=args.plan_only, timeout=args.timeout) for r in args.rows]}
    )


if __name__ == "__main__":
    main()
