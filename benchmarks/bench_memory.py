"""Memory: peak RSS of the pipeline process on 100,000 and 1,000,000 generated CSV rows.

    .venv/bin/python benchmarks/bench_memory.py [--rows 100000 1000000] [--quick]

``flowport plan`` (a dry run: read, map and diff against the checkpoint without writing) is used
when the CLI has it; until then the figure is of ``flowport run`` against a sandbox in its own
process with no rate limit, so the writer's requests and its checkpoint writes are included (the
sandbox's memory is its own process's and is not counted). Peak RSS is the child's own
``ru_maxrss`` from ``os.wait4``. A run that passes its time limit is stopped and its peak so far
reported with the rows it got through.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import FLOWPORT, REPO, PreparedJob, prepared_job, print_json, run_flowport

__all__ = ["TARGET_GROWTH", "TARGET_PEAK_MB", "has_plan_command", "measure", "run"]

TARGET_PEAK_MB = 250.0
#: Peak at the largest size ÷ peak at the smallest.
TARGET_GROWTH = 1.3


def has_plan_command() -> bool:
    answer = subprocess.run(
        [FLOWPORT, "plan", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return answer.returncode == 0


def _dry_run(job: PreparedJob, timeout: float) -> Any:
    return run_flowport("plan", "job.toml", folder=job.folder, timeout=timeout)


def measure(rows: int, timeout: float, use_plan: bool) -> dict[str, Any]:
    with prepared_job(rows) as job:
        result = _dry_run(job, timeout) if use_plan else job.run(timeout=timeout)
    return {
        "rows": rows,
        "command": "flowport plan" if use_plan else "flowport run (writer included)",
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "processed": result.processed if not use_plan else rows,
        "wall_seconds": round(result.wall_seconds, 2),
        "cpu_seconds": round(result.cpu_seconds, 2),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }


def run(
    quick: bool = False, sizes: list[int] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    counts = sizes or ([10_000, 30_000] if quick else [100_000, 1_000_000])
    limit = timeout or (120.0 if quick else 1200.0)
    use_plan = has_plan_command()
    measured = [measure(rows, limit, use_plan) for rows in counts]
    smallest, largest = measured[0], measured[-1]
    return {
        "sizes": measured,
        "growth_largest_over_smallest": round(largest["peak_rss_mb"] / smallest["peak_rss_mb"], 2),
        "target_peak_mb": TARGET_PEAK_MB,
        "target_growth": TARGET_GROWTH,
        "complete": not any(m["timed_out"] or m["exit_code"] not in (0, 1) for m in measured),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run")
    args = parser.parse_args()
    print_json(run(args.quick, args.rows, args.timeout))


if __name__ == "__main__":
    main()
