"""The two places a job's state can live, for tests that run on both: SQLite beside the job file
and PostgreSQL on 127.0.0.1:5432 (trust auth, database ``test``).

A PostgreSQL backend gets a job id of its own (so its schema is its own: tests and sessions on
one machine share the database) and drops that schema when the test ends. One backend serves one
job file: two jobs given the same backend would share a log.
"""

from __future__ import annotations

import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.state import open_job_log
from flowport.pipeline.statedb import job_schema
from tests.conftest import unavailable

__all__ = ["POSTGRES_URL", "StateBackend", "postgres_backend", "sqlite_backend"]

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
#: No password: the server trusts loopback connections.
POSTGRES_URL = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"


@dataclass(frozen=True)
class StateBackend:
    name: str
    url: str | None = None
    job_id: str | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def schema(self) -> str:
        assert self.job_id is not None
        return job_schema(self.job_id)

    def toml(self) -> str:
        """The job file's ``[state]`` table (nothing for SQLite, the default)."""
        if self.url is None:
            return ""
        return f'\n[state]\nurl = "{self.url}"\njob_id = "{self.job_id}"\n'

    def open_log(self, job: Path) -> CheckpointLog:
        log = open_job_log(load_job(job), create=False)
        assert log is not None, f"{job}: no state in {self}"
        return log

    def has_state(self, job: Path) -> bool:
        log = open_job_log(load_job(job), create=False)
        if log is None:
            return False
        log.close()
        return True

    def forget(self, job: Path) -> None:
        """Lose the job's state, as a user who deleted it would."""
        shutil.rmtree(job.parent / job.stem, ignore_errors=True)
        if self.url is not None:
            drop_schema(self.schema)


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def sqlite_backend() -> StateBackend:
    return StateBackend("sqlite")


@contextmanager
def postgres_backend() -> Iterator[StateBackend]:
    """A backend in a schema of its own, dropped at the end; skipped (failed under CI=true)
    when PostgreSQL is not there."""
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=2):
            pass
    except OSError:
        unavailable(f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}")
    backend = StateBackend("postgres", POSTGRES_URL, f"test-{secrets.token_hex(6)}")
    try:
        yield backend
    finally:
        drop_schema(backend.schema)
