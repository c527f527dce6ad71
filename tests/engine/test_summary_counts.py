"""A run's summary counts each record once: its per-collection counts add up to the records read,
also when creates whose answers were lost are found again in Webflow by reading back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from tests.conftest import TOKEN, run_cli_async, write_csv
from tests.engine.conftest import posts_job_text, sandbox_stats, set_faults

ROWS = 300


def job_text(sandbox: Sandbox) -> str:
    return posts_job_text(
        sandbox.base_url, sandbox.site_id, destination="concurrency = 4", run="batch_size = 10"
    )


def write_posts(job_dir: Path, n: int) -> None:
    write_csv(job_dir / "posts.csv", ["id", "title"], [(str(i), f"Post {i}") for i in range(n)])


@pytest.fixture
def job_path(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    path = tmp_path / "job.toml"
    path.write_text(job_text(sandbox), encoding="utf-8")
    return path


def log_counts(path: Path) -> dict[str, int]:
    with CheckpointLog.open(path.parent / "job" / "checkpoint.sqlite") as log:
        return log.counts()["posts"]


async def test_creates_whose_answers_were_lost_in_the_run_count_once_as_created(
    sandbox: Sandbox, job_path: Path
) -> None:
    write_posts(job_path.parent, ROWS // 2)
    assert (await run_job(load_job(job_path))).exit_code == 0
    write_posts(job_path.parent, ROWS)
    # Half the creates land without an answer: the writer reads them back within the run.
    await set_faults(
        sandbox, FaultConfig(commit_then_drop_rate=0.5, commit_then_drop_methods=("POST",))
    )

    summary = await run_job(load_job(job_path))

    assert (await sandbox_stats(sandbox))["totals"]["faults"]["commit_then_drop"] > 0
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["posts"] == {"unchanged": ROWS // 2, "created": ROWS // 2}
    assert log_counts(job_path) == {"done": ROWS}


async def test_creates_a_killed_run_left_unanswered_count_once_in_the_next_runs_summary(
    sandbox: Sandbox, job_path: Path
) -> None:
    write_posts(job_path.parent, ROWS)
    # Killed after Webflow answered its third create and before the log heard of it.
    killed = await run_cli_async(
        "run", str(job_path), "-q", cwd=job_path.parent, env={"FLOWPORT_CRASH_AT": "after-answer:3"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.output
    left = log_counts(job_path)
    assert left.get("sending", 0) > 0, left

    summary = await run_job(load_job(job_path))

    assert summary.exit_code == 0, summary.as_dict()
    counts = summary.collections["posts"]
    # Each record once: the ones read back are unchanged (the killed run created them).
    assert sum(counts.values()) == ROWS, counts
    assert counts == {"unchanged": ROWS - counts["created"], "created": counts["created"]}
    assert counts["created"] <= ROWS - left["sending"]
    # What was read back is said, outside the counts.
    (note,) = [n for n in summary.notes if n.startswith("posts:")]
    assert f"{left['sending']} " in note
    assert "read back" in note
    assert log_counts(job_path) == {"done": ROWS}
