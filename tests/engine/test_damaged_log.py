"""A checkpoint log damaged in the middle (a truncated copy, a bad disk) opens fine: SQLite finds
a damaged page only when a query reads it. Whichever read finds it, run, status, errors and plan
end with one line naming the file and what to do, exit 3, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowport.pipeline.checkpoint import Acknowledged, CheckpointLog, ItemFailure
from tests.engine.conftest import POSTS_COLLECTION

ITEMS = 6000
JOB = (
    textwrap.dedent(
        """
    [destination]
    api = "sandbox"
    """
    )
    + POSTS_COLLECTION
)


def key(n: int) -> str:
    return f"k{n:05d}"


@pytest.fixture
def damaged_job(tmp_path: Path) -> Path:
    job = tmp_path / "job.toml"
    job.write_text(JOB, encoding="utf-8")
    rows = "".join(f"{key(n)},Post number {n}\n" for n in range(ITEMS))
    (tmp_path / "posts.csv").write_text("id,title\n" + rows, encoding="utf-8")
    path = tmp_path / "job" / "checkpoint.sqlite"
    with CheckpointLog.open(path) as log:
        run = log.begin_run()
        for start in range(0, ITEMS, 100):
            batch = log.batches.open(run, "posts", "create", 100)
            chunk = range(start, start + 100)
            log.items.record_acknowledged(
                "posts",
                batch,
                [
                    Acknowledged(key(n), f"wf{n}", f"slug-{n}", f"hash-{n}", "done")
                    for n in chunk
                    if n % 3
                ],
            )
            failures = [ItemFailure(key(n), "name", "too long", "validation") for n in chunk]
            log.record_failures("posts", batch, [f for f in failures if int(f.key[1:]) % 3 == 0])
        log.finish_run(run, "partial", {"posts": {"failed": ITEMS // 3}})
    # Closing the last connection moved the WAL into the file: damage its middle pages,
    # leaving the first (the header and the schema) intact, so the log still opens.
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(size * 2 // 5 // 4096 * 4096)
        file.write(b"\xa5" * (size // 5 // 4096 * 4096))
    return job


def flowport(job: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    code = "from flowport.pipeline.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *arguments[:1], str(job), *arguments[1:]],
        cwd=job.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "400"},
        check=False,
    )


@pytest.mark.parametrize(
    "command", [("status",), ("errors",), ("errors", "--format", "csv"), ("plan",), ("run",)]
)
def test_a_log_damaged_in_the_middle_stops_with_one_line_and_exit_3(
    damaged_job: Path, command: tuple[str, ...]
) -> None:
    result = flowport(damaged_job, *command)

    assert result.returncode == 3, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = [
        line for line in result.stderr.splitlines() if "checkpoint log" in line and line.strip()
    ]
    assert str(damaged_job.parent / "job" / "checkpoint.sqlite") in line
    assert "damaged" in line
    assert "move it away" in line
