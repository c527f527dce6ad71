"""Where a job's state lives, and the lock that gives one run at a time the right to write it.

Two backends (README, "State backends"):

* **SQLite**, the default: ``checkpoint.sqlite`` in the job's state folder beside the job file,
  locked by an ``fcntl.flock`` on ``lock`` in that folder (``flowport.pipeline.cli.job_lock``).
* **PostgreSQL**, named by ``[state] url`` in the job file or else by the environment variable
  ``FLOWPORT_STATE_URL``: the checkpoint log and the run history live in one schema per job
  (:func:`flowport.pipeline.statedb.job_schema` of ``[state] job_id``, by default the job file's
  name), so any machine can resume a job another one started. The lock is a session-level
  advisory lock keyed by that schema: PostgreSQL releases it when the holder's session ends,
  whether the run finished, was SIGKILLed (its connection closes at once) or its machine
  vanished (the connection's TCP keepalive finds it dead in about 25 s). The holder's host and
  pid are kept in a row beside it, so a refused run can name them.

The password is never in the job file (the job file refuses one); libpq reads ``PGPASSWORD`` or
a ``.pgpass`` file, and a password inside ``FLOWPORT_STATE_URL`` is registered as a secret so no
message shows it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import psycopg

from flowport.base.errors import ConfigError, FatalError
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import Job
from flowport.pipeline.logging import redact, register_secret
from flowport.pipeline.statedb import (
    StateUnavailable,
    connect_postgres,
    display_url,
    job_schema,
)

__all__ = [
    "CHECKPOINT_FILE",
    "STATE_URL_ENV",
    "JobLocked",
    "StateLocation",
    "lock_key",
    "open_job_log",
    "postgres_job_lock",
    "state_location",
]

#: The environment variable naming a PostgreSQL URL for every job that does not name its own.
STATE_URL_ENV: Final = "FLOWPORT_STATE_URL"
#: Inside the job's state folder (the SQLite backend).
CHECKPOINT_FILE: Final = "checkpoint.sqlite"
#: The table beside a job's log that names the run holding its lock.
LOCK_TABLE: Final = "run_lock"


class JobLocked(FatalError):
    def __init__(self, pid: str, host: str | None = None) -> None:
        holder = (
            f"held by host {host} pid {pid or 'unknown'}"
            if host is not None
            else f"pid {pid or 'unknown'}"
        )
        super().__init__(f"another run of this job is in progress ({holder})")
        self.pid = pid
        self.host = host


@dataclass(frozen=True, slots=True)
class StateLocation:
    """A job's state: the SQLite file (``url`` None), or a schema of a PostgreSQL database."""

    path: Path
    url: str | None = None
    schema: str | None = None

    def describe(self) -> str:
        if self.url is None:
            return f"state folder {self.path.parent}"
        return f"state in {display_url(self.url)}, schema {self.schema}"


def state_location(job: Job, env: Mapping[str, str] | None = None) -> StateLocation:
    """Where ``job`` keeps its state: ``[state] url``, else ``FLOWPORT_STATE_URL``, else the
    SQLite file in its state folder."""
    environ = os.environ if env is None else env
    path = job.state_dir / CHECKPOINT_FILE
    url = job.state.url
    if url is None:
        url = environ.get(STATE_URL_ENV, "").strip() or None
        if url is None:
            return StateLocation(path)
        _check_env_url(url)
    job_id = job.state.job_id or job.name
    return StateLocation(path, url, job_schema(job_id))


def _check_env_url(url: str) -> None:
    import psycopg  # only when a PostgreSQL URL is set (see statedb's imports)

    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        parts = {}
    password = parts.get("password")
    if password is not None:
        register_secret(str(password))
    if not url.startswith(("postgresql://", "postgres://")) or not parts:
        raise ConfigError(
            "is not a PostgreSQL URL",
            key=STATE_URL_ENV,
            fix="set it to postgresql://user@host:5432/database, or unset it to keep the "
            "state in a SQLite file beside the job",
        )


def open_job_log(job: Job, *, create: bool) -> CheckpointLog | None:
    """The job's checkpoint log; with ``create`` false, None when the job has no state yet."""
    location = state_location(job)
    if location.url is None or location.schema is None:
        if not create and not location.path.exists():
            return None
        location.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return CheckpointLog.open(location.path)
    return CheckpointLog.open_postgres(location.url, location.schema, create=create)


def lock_key(schema: str) -> int:
    """The advisory lock's key: 64 bits of a hash of the job's schema (PostgreSQL's single-key
    form, a signed bigint)."""
    digest = hashlib.sha256(f"flowport-job-lock:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def postgres_job_lock(url: str, schema: str) -> Iterator[None]:
    """Hold the job's advisory lock for the block, or raise :class:`JobLocked` at once, naming
    the holder's host and pid. The lock has a connection of its own, idle while the run lasts,
    so the checkpoint's transactions never touch it."""
    import psycopg  # connect_postgres imported it

    connection = connect_postgres(url, schema=None, purpose=f"lock {schema}")
    where = display_url(url)
    try:
        key = lock_key(schema)
        with _unavailable_as_fatal(where):
            taken = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (taken and taken[0]):
                host, pid = _holder(connection, schema)
                raise JobLocked(pid, host)
            _record_holder(connection, schema)
        try:
            yield
        finally:
            # Ending the session would release it too; this leaves no stale holder row.
            with contextlib.suppress(psycopg.Error):
                connection.execute(f"DELETE FROM {schema}.{LOCK_TABLE}")
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        connection.close()


@contextlib.contextmanager
def _unavailable_as_fatal(where: str) -> Iterator[None]:
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        reason = redact(" ".join(str(exc).split()) or type(exc).__name__)
        raise StateUnavailable(f"the job lock in {where} failed: {reason}") from None


def _holder(connection: psycopg.Connection[Any], schema: str) -> tuple[str, str]:
    """(host, pid) of the run holding the lock, as it recorded them; ``unknown`` while the
    holder has not written its row yet."""
    exists = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{LOCK_TABLE}",)
    ).fetchone()
    row = None
    if exists and exists[0]:
        row = connection.execute(f"SELECT host, pid FROM {schema}.{LOCK_TABLE}").fetchone()
    if row is None:
        return "unknown", ""
    return str(row[0]), str(row[1])


def _record_holder(connection: psycopg.Connection[Any], schema: str) -> None:
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.{LOCK_TABLE} ("
        "id INTEGER PRIMARY KEY CHECK (id = 1), host TEXT NOT NULL, pid INTEGER NOT NULL, "
        "backend_pid INTEGER NOT NULL, since TEXT NOT NULL)"
    )
    connection.execute(
        f"INSERT INTO {schema}.{LOCK_TABLE} (id, host, pid, backend_pid, since) "
        "VALUES (1, %s, %s, pg_backend_pid(), %s) ON CONFLICT (id) DO UPDATE SET "
        "host = excluded.host, pid = excluded.pid, backend_pid = excluded.backend_pid, "
        "since = excluded.since",
        (socket.gethostname(), os.getpid(), datetime.now(UTC).isoformat(timespec="seconds")),
    )
