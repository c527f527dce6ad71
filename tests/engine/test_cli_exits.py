"""Every exit of ``flowport run`` ends with the run's summary and an exit code from the documented
set: SIGTERM (systemd stopping a unit), SIGINT, and a bug alike; no traceback reaches the user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from tests.engine.conftest import POSTS_COLLECTION

JOB = (
    textwrap.dedent(
        """
    [destination]
    api = "sandbox"
    rate_limit = 600
    rate_window_seconds = 60
    concurrency = 1

    [run]
    batch_size = 5
    """
    )
    + POSTS_COLLECTION
)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(JOB, encoding="utf-8")
    rows = "".join(f"p{n},Post number {n}\n" for n in range(400))
    (tmp_path / "posts.csv").write_text("id,title\n" + rows, encoding="utf-8")
    return path


def start(job: Path, *prelude: str) -> subprocess.Popen[str]:
    code = "; ".join([*prelude, "from flowport.pipeline.cli import main", "main()"])
    return subprocess.Popen(
        [sys.executable, "-c", code, "run", str(job), "--log-format", "json"],
        cwd=job.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


def wait_for_writes(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Read events until the first items were written (the run is mid-way)."""
    assert process.stdout is not None
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "the run ended before it wrote anything"
        events.append(json.loads(line))
        if events[-1].get("event") == "progress" and events[-1].get("done", 0) > 0:
            return events
    raise AssertionError(f"no progress within a minute: {events[-3:]}")


def finish(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    out, err = process.communicate(timeout=60)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return process.returncode, events, err


def done_count(job: Path) -> int:
    with CheckpointLog.open(job.parent / job.stem / "checkpoint.sqlite") as log:
        return log.counts().get("posts", {}).get("done", 0)


def last_run(job: Path) -> dict[str, Any]:
    with CheckpointLog.open(job.parent / job.stem / "checkpoint.sqlite") as log:
        found = log.last_run()
    assert found is not None
    return found


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_ends_with_its_summary_and_exit_3(job: Path, stop: signal.Signals) -> None:
    process = start(job)
    wait_for_writes(process)
    process.send_signal(stop)
    code, events, err = finish(process)

    assert code == 3, err
    assert "Traceback" not in err
    finished = events[-1]
    assert finished["event"] == "run_finished"
    assert finished["exit_code"] == 3
    assert stop.name in finished["aborted"]
    assert last_run(job)["outcome"] == "aborted"
    done_before = done_count(job)
    assert 0 < done_before < 400
    # The summary holds what was done up to the stop, batch by batch.
    assert finished["collections"]["posts"]["created"] == done_before
    # What was acknowledged stays done: the rerun resumes and creates only the rest.
    again = start(job)
    code, events, err = finish(again)
    assert code == 0, err
    assert events[-1]["collections"]["posts"].get("created", 0) == 400 - done_before


def test_a_bug_leaves_a_summary_and_a_crash_file_not_a_traceback(job: Path) -> None:
    # A bug stands in for any unexpected exception: the runner's first step raises.
    process = start(
        job,
        "import flowport.pipeline.runner as runner",
        "runner._Run.execute = lambda self, site_id: 1 / 0",
    )
    code, events, err = finish(process)

    assert code == 3
    assert "Traceback" not in err
    assert "ZeroDivisionError" in err
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["exit_code"] == 3
    [report] = (job.parent / job.stem).glob("crash-*.log")
    assert str(report) in err
    assert report.stat().st_mode & 0o777 == 0o600
    assert "ZeroDivisionError" in report.read_text(encoding="utf-8")
