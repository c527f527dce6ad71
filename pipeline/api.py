"""The library's entry points, re-exported by :mod:`flowport`: the same work as the command
line's ``run``, ``plan`` and ``validate``, as coroutines returning typed results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from flowport.pipeline.frames import bind_frames
from flowport.pipeline.jobfile import Job
from flowport.pipeline.jobfile import load_job as _load_job_file
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.runner import RunSummary, run_job, validate_job

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_job", "plan", "run", "validate"]


def load_job(path: str | Path) -> Job:
    """Read and check a job file; :class:`flowport.JobFileError` names the key and a fix."""
    return _load_job_file(Path(path))


def _job(job: Job | str | Path) -> Job:
    return job if isinstance(job, Job) else load_job(job)


async def run(
    job: Job | str | Path,
    *,
    progress: ProgressSink | None = None,
    sources: Mapping[str, pd.DataFrame] | None = None,
) -> RunSummary:
    """Run a job: every record ends created, updated, unchanged, skipped or failed in its
    checkpoint log; a rerun resumes. The caller holds the job's lock if runs may overlap.

    ``sources`` gives each collection whose source is ``type = "dataframe"`` its frame, by
    collection name; a missing one stops the run before anything is written."""
    return await run_job(bind_frames(_job(job), sources), progress)


async def plan(
    job: Job | str | Path, *, sources: Mapping[str, pd.DataFrame] | None = None
) -> RunSummary:
    """What a run would do, writing nothing to Webflow or to the job's state."""
    return await run_job(bind_frames(_job(job), sources), dry_run=True)


async def validate(
    job: Job | str | Path, *, sources: Mapping[str, pd.DataFrame] | None = None
) -> list[str]:
    """Each mapping checked against the schema it would meet online; one line per problem.
    A job with dataframe sources needs its frames: the schema it creates depends on them."""
    return await validate_job(bind_frames(_job(job), sources))
