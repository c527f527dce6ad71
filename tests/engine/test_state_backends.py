"""A job whose state is in PostgreSQL: its lock (a second run anywhere refused with the holder's
host and pid, a SIGKILLed holder's lock taken by the next run), the commands that read its log,
its schema's migrations, and a password that never shows."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flowport.pipeline.checkpoint import _SCHEMA_V1, SCHEMA_VERSION, CheckpointLog
from flowport.pipeline.state import JobLocked, postgres_job_lock
from flowport.pipeline.statedb import to_postgres
from tests.conftest import cli_env, free_port, run_cli
from tests.state_backends import POSTGRES_URL, StateBackend

pytestmark = pytest.mark.postgres

JOB = textwrap.dedent(
    """
    [destination]
    api = "sandbox"

    [collections.authors]
    create_missing = true
    source = { type = "csv", path = "authors.csv", key = "id" }
    slug_from = "name"
    fields = { name = "name" }
    schema = { singular_name = "Author" }
    """
)


@pytest.fixture
def job(tmp_path: Path, postgres_state: StateBackend) -> Path:
    path = tmp_path / "blog.toml"
    path.write_text(postgres_state.toml() + JOB, encoding="utf-8")
    # a1's name is cut to 256 characters (a warning), a2 has none (an item error).
    (tmp_path / "authors.csv").write_text(
        f"id,name\na1,{'Zoë ' * 80}\na2,\na3,Ana\n", encoding="utf-8"
    )
    return path


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from flowport.pipeline.state import postgres_job_lock
    with postgres_job_lock(sys.argv[1], sys.argv[2]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@contextmanager
def lock_holder(state: StateBackend) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the job's lock until the block ends (or it is killed)."""
    assert state.url is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, state.url, state.schema],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_second_run_is_refused_naming_the_holders_host_and_pid(
    job: Path, postgres_state: StateBackend
) -> None:
    with lock_holder(postgres_state) as holder:
        result = run_cli("run", str(job), cwd=job.parent)
    assert result.returncode == 3, result.output
    expected = f"(held by host {socket.gethostname()} pid {holder.pid})"
    assert f"another run of this job is in progress {expected}" in result.stderr
    assert '"event": "run_finished"' in result.stdout  # the summary still ends the output
    assert not postgres_state.has_state(job)  # refused before anything was written


def test_a_sigkilled_holders_lock_is_taken_by_the_next_run(
    job: Path, postgres_state: StateBackend
) -> None:
    assert postgres_state.url is not None
    with lock_holder(postgres_state) as holder:
        with pytest.raises(JobLocked), postgres_job_lock(postgres_state.url, postgres_state.schema):
            pass
        holder.kill()
        holder.wait()
        killed_at = time.monotonic()
    # The kernel closes the dead process's connection; PostgreSQL ends its session and the
    # advisory lock with it, within moments (a vanished machine: the keepalive, ~25 s).
    while True:
        try:
            with postgres_job_lock(postgres_state.url, postgres_state.schema):
                break
        except JobLocked:
            assert time.monotonic() - killed_at < 10, "the killed holder's lock was not released"
            time.sleep(0.02)
    result = run_cli("run", str(job), "--log-format", "json", cwd=job.parent)
    assert result.returncode == 1, result.output  # a2 has no name: one item error
    with postgres_state.open_log(job) as log:
        assert log.counts() == {"authors": {"done": 2, "failed": 1}}


def test_status_errors_warnings_and_plan_read_the_log_in_postgres(
    job: Path, postgres_state: StateBackend
) -> None:
    before = run_cli("status", str(job), cwd=job.parent)
    assert before.returncode == 0, before.output
    assert f"no run yet (state in {POSTGRES_URL}, schema {postgres_state.schema})" in before.stdout
    assert not postgres_state.has_state(job)  # a reader creates nothing

    assert run_cli("run", str(job), cwd=job.parent).returncode == 1
    assert not (job.parent / "blog" / "checkpoint.sqlite").exists()

    status = run_cli("status", str(job), cwd=job.parent)
    assert status.returncode == 0, status.output
    assert "authors" in status.stdout
    assert "outcome partial" in status.stdout
    errors = run_cli("errors", str(job), "--format", "json", cwd=job.parent)
    assert errors.returncode == 0, errors.output
    assert [(row["key"], row["field"]) for row in json.loads(errors.stdout)] == [("a2", "name")]
    warnings = run_cli("warnings", str(job), "--format", "json", cwd=job.parent)
    assert warnings.returncode == 0, warnings.output
    assert {row["key"] for row in json.loads(warnings.stdout)} == {"a1"}
    plan = run_cli("plan", str(job), "--format", "json", cwd=job.parent)
    assert plan.returncode == 1, plan.output  # a2 is still without a name
    assert json.loads(plan.stdout)["collections"]["authors"] == {
        "unchanged": 2,
        "failed": 1,
        "warning:truncated": 1,
    }


def test_a_schema_1_log_in_postgres_migrates_and_keeps_its_creates_in_flight(
    postgres_state: StateBackend,
) -> None:
    assert postgres_state.url is not None
    schema = postgres_state.schema
    with psycopg.connect(postgres_state.url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"SET search_path = {schema}")
        for statement in _SCHEMA_V1.split(";"):
            if statement.strip():
                db.execute(to_postgres(statement))
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute(
            "INSERT INTO items (collection, key, slug, content_hash, state, attempts, batch_id, "
            "first_seen, updated_at) VALUES ('posts', 'a', 'slug-a', 'h-a', 'sending', 1, 7, "
            "'t1', '2026-01-01T00:00:00+00:00')"
        )
    log = CheckpointLog.open_postgres(postgres_state.url, schema)
    assert log is not None
    with log:
        (leftover,) = log.in_state("posts", "sending")
        assert (leftover.key, leftover.slug, leftover.batch_id) == ("a", "slug-a", 7)
        assert log.counts() == {"posts": {"sending": 1}}
    with psycopg.connect(postgres_state.url, autocommit=True) as db:
        row = db.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'")
        assert row.fetchone() == (str(SCHEMA_VERSION),)
        db.execute(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(Exception, match="schema version 99, newer than this flowport"):
        CheckpointLog.open_postgres(postgres_state.url, schema)


def test_a_password_in_the_job_file_is_refused(job: Path) -> None:
    job.write_text(
        job.read_text().replace("postgresql://postgres@", "postgresql://postgres:hunter2-pw@")
    )
    result = run_cli("status", str(job), cwd=job.parent)
    assert result.returncode == 2, result.output
    assert "the password never goes in the job file" in result.stderr
    assert "hunter2-pw" not in result.output


def test_a_password_in_the_environment_never_shows(tmp_path: Path) -> None:
    path = tmp_path / "blog.toml"
    path.write_text(JOB, encoding="utf-8")
    (tmp_path / "authors.csv").write_text("id,name\na1,Zoë\n", encoding="utf-8")
    port = free_port()  # nothing listens there: the connection is refused
    secret = "s3cret-state-pw"
    env = {"FLOWPORT_STATE_URL": f"postgresql://flow:{secret}@127.0.0.1:{port}/state"}
    for command in (("run", str(path)), ("status", str(path))):
        result = run_cli(*command, cwd=tmp_path, env=env)
        assert result.returncode == 3, result.output
        assert f"the state database postgresql://flow@127.0.0.1:{port}/state" in result.stderr
        assert secret not in result.output
    assert not (tmp_path / "blog" / "checkpoint.sqlite").exists()


def test_the_state_database_lost_mid_run_stops_it_with_one_line_and_the_rerun_resumes(
    tmp_path: Path, postgres_state: StateBackend
) -> None:
    assert postgres_state.url is not None
    path = tmp_path / "slow.toml"
    # 20 requests at 5 a second: the run lasts long enough to lose its connection mid-way.
    path.write_text(
        postgres_state.toml()
        + JOB.replace('api = "sandbox"', 'api = "sandbox"\nrate_limit = 5\nrate_window_seconds = 1')
        + "\n[run]\nbatch_size = 10\n",
        encoding="utf-8",
    )
    rows = "".join(f"a{n},Author {n}\n" for n in range(200))
    (tmp_path / "authors.csv").write_text("id,name\n" + rows, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "flowport.pipeline.cli",
        "run",
        str(path),
        "--log-format",
        "json",
    ]
    run = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with psycopg.connect(postgres_state.url, autocommit=True) as db:
            name = f"flowport log {postgres_state.schema}"
            deadline = time.monotonic() + 60
            terminated = 0
            while not terminated and time.monotonic() < deadline and run.poll() is None:
                time.sleep(0.5)
                done = _done_items(db, postgres_state.schema)
                if done >= 20:
                    row = db.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s",
                        (name,),
                    ).fetchone()
                    terminated = int(row[0]) if row else 0
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        run.wait()
    assert terminated == 1, (out, err)
    assert run.returncode == 3, err
    assert f"the state database {POSTGRES_URL} (schema {postgres_state.schema}) failed" in err
    assert "Traceback" not in err
    assert '"event": "run_finished"' in out

    rerun = run_cli("run", str(path), "--log-format", "json", cwd=tmp_path, timeout=180)
    assert rerun.returncode == 0, rerun.output
    with postgres_state.open_log(path) as log:
        assert log.counts() == {"authors": {"done": 200}}


def _done_items(db: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    exists = db.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.items",)).fetchone()
    if not (exists and exists[0]):
        return 0
    row = db.execute(f"SELECT count(*) FROM {schema}.items").fetchone()
    return int(row[0]) if row else 0


def test_a_state_url_that_is_not_postgresql_is_a_bad_job(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text(JOB, encoding="utf-8")
    result = run_cli(
        "run", str(plain), cwd=tmp_path, env={"FLOWPORT_STATE_URL": "mysql://root@db/state"}
    )
    assert result.returncode == 2, result.output
    assert "FLOWPORT_STATE_URL: is not a PostgreSQL URL" in result.stderr


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        (
            "SELECT a FROM t WHERE k = ? AND j IN (?, ?)",
            "SELECT a FROM t WHERE k = %s AND j IN (%s, %s)",
        ),
        (
            "INSERT OR IGNORE INTO temp.k (a) SELECT value FROM json_each(?)",
            "INSERT INTO pg_temp.k (a) SELECT value FROM json_array_elements_text(%s::json) "
            "AS each(value) ON CONFLICT DO NOTHING",
        ),
        (
            "SELECT 1 FROM json_each(?) AS j WHERE i.h IS NOT substr(j.value, 1, 32)",
            "SELECT 1 FROM json_array_elements_text(%s::json) AS j(value) "
            "WHERE i.h IS DISTINCT FROM substr(j.value, 1, 32)",
        ),
        (
            "SELECT x IS NOT NULL FROM items INDEXED BY items_slug WHERE substr(h, -2) = ?",
            "SELECT x IS NOT NULL FROM items WHERE right(h, 2) = %s",
        ),
        (
            "CREATE TABLE r (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL) WITHOUT ROWID",
            "CREATE TABLE r (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            'v TEXT COLLATE "C" NOT NULL)',
        ),
        (
            "ALTER TABLE items ADD COLUMN f TEXT",
            "ALTER TABLE items ADD COLUMN IF NOT EXISTS f TEXT",
        ),
        ("BEGIN IMMEDIATE", "BEGIN"),
        ("SELECT '5%' LIKE ?", "SELECT '5%%' LIKE %s"),
    ],
)
def test_the_log_s_sqlite_statements_are_rewritten_for_postgresql(
    sqlite: str, postgres: str
) -> None:
    assert to_postgres(sqlite) == postgres
