"""Throughput without a rate limit: generated CSV rows end to end, and the pipeline's CPU cost.

    .venv/bin/python benchmarks/bench_throughput.py [--rows 100000] [--quick] [--profile]

The sandbox runs in its own process with an effectively unlimited rate; the CLI
(``flowport run JOB --log-format json``, live mode, concurrency 4) is a child whose own CPU time
(user + system) and peak RSS come from ``os.wait4``, so the sandbox's work is not counted.
``--profile`` adds a second run of the same job on a fresh sandbox under cProfile (stdlib) and
lists the functions with the most own time; that run's figures are not the reported ones.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import CliRun, PreparedJob, bench_main, hot_spots, prepared_job

__all__ = ["TARGET_CPU_PER_1000", "figures", "profile_run", "run"]

#: CPU seconds of the pipeline process per 1,000 items written: issue 16's target.
TARGET_CPU_PER_1000 = 0.035


def figures(job: PreparedJob, result: CliRun) -> dict[str, Any]:
    processed = result.processed
    return {
        "rows": job.rows,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "processed": processed,
        "outcomes": result.finished.get("collections", {}).get("posts", {})
        if not result.timed_out
        else {},
        "wall_seconds": round(result.wall_seconds, 2),
        "items_per_second": round(processed / result.wall_seconds) if result.wall_seconds else 0,
        "cpu_seconds": round(result.cpu_seconds, 2),
        "cpu_seconds_per_1000_items": round(result.cpu_seconds / processed * 1000, 4)
        if processed
        else None,
        "target_cpu_seconds_per_1000_items": TARGET_CPU_PER_1000,
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }


def profile_run(rows: int, timeout: float) -> dict[str, list[dict[str, Any]]]:
    with prepared_job(rows) as job, tempfile.TemporaryDirectory() as folder:
        profile = Path(folder) / "run.prof"
        job.run(timeout=timeout, profile=profile)
        return hot_spots(profile)


def run(quick: bool = False, rows: int | None = None, profile: bool = False) -> dict[str, Any]:
    count = rows or (10_000 if quick else 100_000)
    timeout = 300.0 if quick else 1800.0
    with prepared_job(count) as job:
        result = figures(job, job.run(timeout=timeout))
    if profile:
        result["hot_spots"] = profile_run(min(count, 20_000), timeout)
    return result


def main() -> None:
    bench_main(__doc__, run, profile=True)


if __name__ == "__main__":
    main()
