"""flowport on Celery: a job file runs as one task on any worker, and a worker lost mid-run has
its job finished by another.

    celery -A flowport.integrations.celery worker --concurrency 1 -n w1@%h
    app.send_task("flowport.run_job", args=["/srv/flowport/runs/shop.toml"])

The task ``flowport.run_job`` takes the job file's absolute path, takes the job's lock (the one
``flowport run`` takes), runs the job through the library facade and returns the run's summary
as a JSON object: the ``run_finished`` line of ``flowport run --log-format json``, with
``exit_code`` as the command's, plus ``celery`` (worker, redelivered, retries, times).

Why a redelivered task is safe, and what each setting below is for (Celery's docs: the
``task_acks_late``, ``task_reject_on_worker_lost`` and ``worker_prefetch_multiplier`` settings,
and the glossary's "late acknowledgment"):

- ``task_acks_late``: the message is acknowledged after the run, not before, so a worker that
  dies mid-run (SIGKILL, a lost machine) leaves it unacknowledged and the broker hands it to
  another worker: RabbitMQ as soon as the dead worker's connection drops, Redis once its
  ``visibility_timeout`` (an hour by default) has passed.
- ``task_reject_on_worker_lost``: without it Celery acknowledges a message whose pool process
  died (the OOM killer, a SIGKILL of the child), and the job would wait for the next schedule.
- ``worker_prefetch_multiplier = 1``: a worker reserves no second job while it runs one, so
  a queued job goes to a free worker instead of waiting behind a long run.

Running a job twice is harmless by design: the job's lock lets one run at a time, and the
checkpoint log (intent before each create, the outcome after Webflow answers) makes the second
run resume where the first stopped, reconciling any create whose answer was lost by reading it
back. A redelivered task that finds the lock held by a live run (a Redis visibility timeout
shorter than the run, two schedules overlapping) retries later instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from celery import Celery
from celery.utils.log import get_task_logger

import flowport
from flowport.base.errors import ConfigError, FlowportError
from flowport.pipeline.cli import EXIT_ABORTED, EXIT_BAD_JOB, JobLocked, lock_job
from flowport.pipeline.frames import dataframe_collections
from flowport.pipeline.jobfile import Job
from flowport.pipeline.logging import redact, redact_value
from flowport.pipeline.runner import RunSummary

__all__ = [
    "DEFAULT_QUEUE",
    "LOCK_GRACE_SECONDS",
    "LOCK_RETRIES",
    "LOCK_RETRY_SECONDS",
    "QUEUE_ENV",
    "TASK_NAME",
    "app",
    "create_app",
]

#: The task's registered name: what ``send_task`` and a beat schedule name.
TASK_NAME = "flowport.run_job"
#: The queue the app sends to and its workers consume, unless ``create_app(queue=...)`` says.
QUEUE_ENV = "FLOWPORT_CELERY_QUEUE"
DEFAULT_QUEUE = "flowport"
#: A redelivered task can reach the next worker a few milliseconds after a SIGKILL, while the
#: kernel is still tearing the dead run down and its lock is not yet released: a lock held this
#: long is waited for in the task, before a Celery retry (and its countdown) is paid.
LOCK_GRACE_SECONDS = 5.0
#: A task whose job is locked by a live run (a Redis visibility timeout shorter than the run, two
#: schedules overlapping) tries again this often, this many times (an hour), then reports the
#: lock and gives up.
LOCK_RETRY_SECONDS = 10.0
LOCK_RETRIES = 360

_CONFIG_PREFIX = "flowport_"
logger = get_task_logger(__name__)


def create_app(
    *,
    broker: str | None = None,
    backend: str | None = None,
    queue: str | None = None,
    lock_grace_seconds: float = LOCK_GRACE_SECONDS,
    lock_retry_seconds: float = LOCK_RETRY_SECONDS,
    lock_retries: int = LOCK_RETRIES,
) -> Any:
    """A Celery app with the task ``flowport.run_job`` registered.

    ``broker`` and ``backend`` default to Celery's own (``CELERY_BROKER_URL`` and
    ``CELERY_RESULT_BACKEND`` from the environment, else RabbitMQ on localhost and no result
    store); ``queue`` to ``$FLOWPORT_CELERY_QUEUE`` or ``flowport``. Further settings (a beat
    schedule, Redis's ``visibility_timeout``) go on ``app.conf`` as usual."""
    app = Celery("flowport", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue or os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Celery 5's default, said aloud: without it, each start warns that 6.0 changes it.
        broker_connection_retry_on_startup=True,
        # Only the settings Celery knows are validated; these are read by the task.
        flowport_lock_grace_seconds=lock_grace_seconds,
        flowport_lock_retry_seconds=lock_retry_seconds,
        flowport_lock_retries=lock_retries,
    )
    app.task(name=TASK_NAME, bind=True)(run_job)
    return app


def run_job(task: Any, job_path: str) -> dict[str, Any]:
    """The task's body: run the job at ``job_path``; its summary, as ``flowport run`` ends."""
    request = task.request
    delivery: dict[str, Any] = {
        "worker": request.hostname,
        "redelivered": bool((request.delivery_info or {}).get("redelivered")),
        "retries": request.retries,
        "started_at": round(time.time(), 3),
    }
    path = Path(job_path)
    if not path.is_absolute():
        return _finished(
            RunSummary(job=path.stem),
            EXIT_BAD_JOB,
            f"error: {job_path}: a job path must be absolute: a worker's working folder is not "
            "the sender's",
            delivery,
        )
    try:
        job = flowport.load_job(path)
        if names := dataframe_collections(job):
            raise ConfigError(
                f"{path}: {', '.join(names)}: a dataframe source is for library use; a worker "
                "has no DataFrame to give it"
            )
    except ConfigError as exc:
        return _finished(RunSummary(job=path.stem), EXIT_BAD_JOB, f"error: {exc}", delivery)
    grace = float(task.app.conf[_CONFIG_PREFIX + "lock_grace_seconds"])
    try:
        with contextlib.ExitStack() as held:
            _hold_lock(held, job, grace)
            delivery["locked_at"] = round(time.time(), 3)
            summary = asyncio.run(flowport.run(job))
    except JobLocked as exc:
        return _locked(task, job.path.stem, exc, delivery)
    except ConfigError as exc:
        return _finished(RunSummary(job=job.path.stem), EXIT_BAD_JOB, f"error: {exc}", delivery)
    except FlowportError as exc:
        return _finished(RunSummary(job=job.path.stem), EXIT_ABORTED, f"aborted: {exc}", delivery)
    except Exception as exc:
        # The traceback goes to the worker's log, redacted; the summary names the error's type.
        logger.error("flowport job %s: %s", path, redact(traceback.format_exc()))
        problem = f"aborted by an unexpected error ({type(exc).__name__}); the next run resumes"
        return _finished(RunSummary(job=job.path.stem), EXIT_ABORTED, problem, delivery)
    return _finished(summary, summary.exit_code, "", delivery)


def _hold_lock(stack: contextlib.ExitStack, job: Job, grace: float) -> None:
    """Enter the job's lock on ``stack``, waiting up to ``grace`` seconds for a dying holder;
    :class:`JobLocked` after that."""
    deadline = time.monotonic() + grace
    while True:
        try:
            stack.enter_context(lock_job(job))
            return
        except JobLocked:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _locked(task: Any, job: str, locked: JobLocked, delivery: dict[str, Any]) -> dict[str, Any]:
    """Another run holds the job's lock: try again later, up to the app's limit."""
    conf = task.app.conf
    retries = int(conf[_CONFIG_PREFIX + "lock_retries"])
    seconds = float(conf[_CONFIG_PREFIX + "lock_retry_seconds"])
    if task.request.retries >= retries:
        problem = f"error: {locked}; gave up after {retries} tries {seconds:g} s apart"
        return _finished(RunSummary(job=job), EXIT_ABORTED, problem, delivery)
    logger.info("flowport job %s: %s; trying again in %g s", job, locked, seconds)
    # Celery's limit is set to ours, which the check above meets first: the last try ends in a
    # summary naming the lock's holder, not in Celery's MaxRetriesExceededError.
    raise task.retry(countdown=seconds, max_retries=retries)


def _finished(
    summary: RunSummary, code: int, problem: str, delivery: dict[str, Any]
) -> dict[str, Any]:
    """The summary as ``flowport run`` ends it (``run_finished``), and where the task ran."""
    if problem:
        summary.aborted = problem.removeprefix("error: ").removeprefix("aborted: ")
    result: dict[str, Any] = redact_value(summary.as_dict())
    result["exit_code"] = code
    result["celery"] = {**delivery, "finished_at": round(time.time(), 3)}
    logger.info("flowport run finished: %s", json.dumps(result, sort_keys=True))
    return result


#: ``celery -A flowport.integrations.celery worker`` finds this app.
app = create_app()
