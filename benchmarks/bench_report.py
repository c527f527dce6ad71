"""What the run report costs: reading a job's log and writing ``report.html``, as every run does
at its end.

    .venv/bin/python benchmarks/bench_report.py [--rows 10000] [--quick]

Two jobs of ``rows`` rows, each run once through the CLI into a sandbox in its own process: one
whose every row is created (``rows / 100`` batches in the log), one whose every row fails its
mapping (``rows`` per-item errors: the report lists the first 5,000). Then, in this process,
the report of each is made as ``flowport run`` makes it (open the log, read, render, write),
five times; the median and the page's size are given.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import bench_main, prepared_job

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.report import gather, write_report

__all__ = ["TARGET_MILLISECONDS", "run"]

#: At 10,000 items: cheap enough to write after every run.
TARGET_MILLISECONDS = 100


def _measure(folder: Path) -> dict[str, Any]:
    job = load_job(folder / "job.toml")
    per_minute = job.rate_limit() * 60 / job.destination.rate_window_seconds
    took = []
    path = folder / "job" / "report.html"
    for _ in range(5):
        started = time.perf_counter()
        with CheckpointLog.open(folder / "job" / "checkpoint.sqlite") as log:
            data = gather(log, job="job", collections=list(job.collections), rate=per_minute)
            write_report(data, path)
        took.append(time.perf_counter() - started)
    return {
        "median_ms": round(statistics.median(took) * 1000, 1),
        "all_ms": [round(t * 1000, 1) for t in took],
        "page_bytes": path.stat().st_size,
        "problems_listed": len(data.problems),
        "batches": len(data.batches),
    }


def _failing(csv: Path) -> None:
    """Every row's score is no number: each row a per-item error."""
    lines = csv.read_text(encoding="utf-8").splitlines()
    rows = [",".join([*line.split(",")[:3], "n/a", *line.split(",")[4:]]) for line in lines[1:]]
    csv.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")


def run(quick: bool = False, rows: int | None = None) -> dict[str, Any]:
    count = rows or (2_000 if quick else 10_000)
    figures: dict[str, Any] = {"rows": count, "target_ms": TARGET_MILLISECONDS}
    for name in ("created", "all_failed"):
        with prepared_job(count) as job:
            if name == "all_failed":
                _failing(job.folder / "posts.csv")
            result = job.run(timeout=600)
            figures[name] = {
                "outcomes": result.finished.get("collections", {}).get("posts", {}),
                **_measure(job.folder),
            }
    return figures


def main() -> None:
    bench_main(__doc__, run)


if __name__ == "__main__":
    main()
