"""The library's entry points, re-exported by :mod:`flowport`: the same work as the command
line's ``run``, ``plan`` and ``validate``, as coroutines returning typed results, each with a
``*_sync`` twin for code that has no event loop of its own (a script, a cron job, a Django
view); jobs from a file, a dict or TOML text; a job's per-item errors and warnings."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flowport.base.errors import FatalError
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.frames import bind_frames
from flowport.pipeline.jobfile import Job, job_from_dict, job_from_toml
from flowport.pipeline.jobfile import load_job as _load_job_file
from flowport.pipeline.logging import CallbackSink, ProgressEvent, ProgressSink
from flowport.pipeline.results import (
    ItemError,
    StandingWarning,
    iter_item_errors,
    iter_item_warnings,
)
from flowport.pipeline.runner import RunSummary, run_job, validate_job
from flowport.pipeline.state import open_job_log, state_location

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "item_errors",
    "item_warnings",
    "job_from_dict",
    "job_from_toml",
    "load_job",
    "plan",
    "plan_sync",
    "run",
    "run_sync",
    "validate",
    "validate_sync",
]

T = TypeVar("T")

#: Called with each :class:`ProgressEvent` of a run.
ProgressCallback = Callable[[ProgressEvent], object]


def load_job(path: str | Path) -> Job:
    """Read and check a job file; :class:`flowport.JobFileError` names the key and a fix."""
    return _load_job_file(Path(path))


def _job(job: Job | str | Path) -> Job:
    return job if isinstance(job, Job) else load_job(job)


def _sink(
    progress: ProgressSink | None, on_progress: ProgressCallback | None, interval: float
) -> ProgressSink | None:
    if progress is not None and on_progress is not None:
        raise TypeError("give progress (a ProgressSink) or on_progress (a function), not both")
    if on_progress is not None:
        return CallbackSink(on_progress, interval=interval)
    return progress


async def run(
    job: Job | str | Path,
    *,
    progress: ProgressSink | None = None,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 1.0,
    sources: Mapping[str, pd.DataFrame] | None = None,
) -> RunSummary:
    """Run a job: every record ends created, updated, unchanged, skipped or failed in its
    checkpoint log; a rerun resumes. The caller holds the job's lock if runs may overlap.

    ``on_progress`` is called with a :class:`ProgressEvent` when a collection changes phase
    and at most once a ``progress_interval`` seconds per collection in between; it runs in
    the event loop, so it must return at once. ``sources`` gives each collection whose source
    is ``type = "dataframe"`` its frame, by collection name; a missing one stops the run before
    anything is written."""
    sink = _sink(progress, on_progress, progress_interval)
    return await run_job(bind_frames(_job(job), sources), sink)


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


def _run_sync(name: str, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine in an event loop of its own. Inside a running loop (Jupyter, an async
    web framework) that is impossible: say what to await instead, before creating anything."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # Ctrl-C cancels the coroutine (asyncio.run's own handling), so a run's final flush of
        # the checkpoint log happens, as in the command line.
        return asyncio.run(make())
    raise RuntimeError(
        f"flowport.{name}_sync() was called inside a running event loop; "
        f"use `await flowport.{name}(...)` there instead"
    )


def run_sync(
    job: Job | str | Path,
    *,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 1.0,
    sources: Mapping[str, pd.DataFrame] | None = None,
) -> RunSummary:
    """:func:`run`, for code without an event loop."""
    return _run_sync(
        "run",
        lambda: run(
            job, on_progress=on_progress, progress_interval=progress_interval, sources=sources
        ),
    )


def plan_sync(
    job: Job | str | Path, *, sources: Mapping[str, pd.DataFrame] | None = None
) -> RunSummary:
    """:func:`plan`, for code without an event loop."""
    return _run_sync("plan", lambda: plan(job, sources=sources))


def validate_sync(
    job: Job | str | Path, *, sources: Mapping[str, pd.DataFrame] | None = None
) -> list[str]:
    """:func:`validate`, for code without an event loop."""
    return _run_sync("validate", lambda: validate(job, sources=sources))


def item_errors(job: Job | str | Path) -> list[ItemError]:
    """Every per-item error the job's checkpoint log holds (what ``flowport errors`` lists),
    and the last run's records gone from the source whose items are kept. Reads the log only:
    no network. A job that never ran has none."""
    return _read_log(_job(job), lambda log: list(iter_item_errors(log)))


def item_warnings(job: Job | str | Path) -> list[StandingWarning]:
    """Every standing per-item warning (what ``flowport warnings`` lists)."""
    return _read_log(_job(job), lambda log: list(iter_item_warnings(log)))


def _read_log(job: Job, read: Callable[[CheckpointLog], list[T]]) -> list[T]:
    """What ``read`` finds in the job's log, wherever its state is kept (a SQLite file beside
    the job, or PostgreSQL: ``[state]``); a job that never ran has nothing."""
    try:
        log = open_job_log(job, create=False)
        if log is None:
            return []
        with log:
            return read(log)
    except sqlite3.DatabaseError as exc:
        # As `flowport errors` says it: the file and what to do, not SQLite's words alone.
        path = state_location(job).path
        raise FatalError(
            f"the checkpoint log {path} cannot be read ({exc}); restore it from a backup, or "
            "move it away and run the job again: adoption rebuilds it from what is in Webflow"
        ) from exc
