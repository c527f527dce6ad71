"""Nothing to do: a rerun of a finished job, every row already written and unchanged.

    .venv/bin/python benchmarks/bench_rerun.py [--rows 100000] [--quick] [--profile]

The first run (not measured) writes every row into a sandbox in its own process with no rate
limit; the second run of the same job reads, maps and hashes every row and finds it unchanged
in the checkpoint log. Items checked per second are given two ways: end to end (the CLI's wall
time, interpreter start and the schema reads included) and in the runner (the ``seconds`` of
its ``run_finished`` event). ``--profile`` reruns once more under cProfile and lists hot spots.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PreparedJob, bench_main, hot_spots, prepared_job

__all__ = ["TARGET_ITEMS_PER_SECOND", "measure_rerun", "run"]

TARGET_ITEMS_PER_SECOND = 100_000


def measure_rerun(job: PreparedJob, timeout: float, profile: bool = False) -> dict[str, Any]:
    """Rerun a job whose first run finished; the job's sandbox must still be running."""
    result = job.run(timeout=timeout)
    runner_seconds = float(result.finished.get("seconds", 0.0)) if not result.timed_out else 0.0
    checked = result.processed
    figures: dict[str, Any] = {
        "rows": job.rows,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "outcomes": result.finished.get("collections", {}).get("posts", {})
        if not result.timed_out
        else {},
        "wall_seconds": round(result.wall_seconds, 2),
        "runner_seconds": round(runner_seconds, 2),
        "items_checked_per_second_end_to_end": round(checked / result.wall_seconds),
        "items_checked_per_second_in_runner": round(checked / runner_seconds)
        if runner_seconds
        else None,
        "target_items_per_second": TARGET_ITEMS_PER_SECOND,
        "cpu_seconds": round(result.cpu_seconds, 2),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }
    if profile:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rerun.prof"
            job.run(timeout=timeout, profile=path)
            figures["hot_spots"] = hot_spots(path)
    return figures


def run(quick: bool = False, rows: int | None = None, profile: bool = False) -> dict[str, Any]:
    count = rows or (10_000 if quick else 100_000)
    timeout = 300.0 if quick else 1800.0
    with prepared_job(count) as job:
        first = job.run(timeout=timeout)
        if first.exit_code != 0:
            raise RuntimeError(f"the first run did not finish cleanly:\n{first.stderr[-2000:]}")
        return measure_rerun(job, timeout, profile)


def main() -> None:
    bench_main(__doc__, run, profile=True)


if __name__ == "__main__":
    main()
