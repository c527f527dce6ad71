"""Nightly SQL reads on PostgreSQL and MariaDB: nothing saved at the cursor's second is lost.

MariaDB's ``TIMESTAMP`` keeps whole seconds, so a row saved in the same second as the last row a
run read compares equal to the saved cursor. The source reads ``>=`` the cursor; the rows at the
cursor that did not change are recognised by their source fingerprint and cost no request.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from tests.conftest import TOKEN
from tests.connectors.conftest import (
    MARIADB_HOST,
    MARIADB_PORT,
    POSTGRES_HOST,
    POSTGRES_PORT,
    execute_sql,
    require_reachable,
)
from tests.engine.test_nightly import collection_id, items, job_text, writes


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
async def books_table(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str, str]]:
    """(database URL, table, timestamp type) of a fresh table in the servers' `test` database."""
    if request.param == "postgres":
        require_reachable("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
        url = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
        stamp = "TIMESTAMP(0)"  # whole seconds, as MariaDB's TIMESTAMP
    else:
        require_reachable("MariaDB", MARIADB_HOST, MARIADB_PORT)
        url = f"mysql://root@{MARIADB_HOST}:{MARIADB_PORT}/test"
        stamp = "TIMESTAMP NULL"
    table = f"flowport_books_{secrets.token_hex(4)}"
    await execute_sql(
        url,
        f"CREATE TABLE {table} (id VARCHAR(10) PRIMARY KEY, title VARCHAR(100), "
        f"pages VARCHAR(10), updated_at {stamp})",
    )
    try:
        yield url, table, stamp
    finally:
        await execute_sql(url, f"DROP TABLE {table}")


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    return tmp_path


def saved_cursor(job_dir: Path) -> str | None:
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        return log.cursor("books")


async def test_an_edit_in_the_cursors_second_is_synced_and_the_rows_at_it_cost_nothing(
    sandbox: Sandbox,
    job_dir: Path,
    books_table: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, table, _ = books_table
    # Books 8 and 9 were saved in the same second, the last one the first run reads.
    stamps = [f"2026-01-01 00:00:0{n}" for n in range(8)] + ["2026-01-01 00:00:09"] * 2
    rows = ", ".join(f"('{n}', 'Book {n}', '{100 + n}', '{stamps[n]}')" for n in range(10))
    await execute_sql(url, f"INSERT INTO {table} VALUES {rows}")
    monkeypatch.setenv("BOOKS_URL", url)
    source = (
        f'{{ type = "sql", url_env = "BOOKS_URL", table = "{table}", key = "id", '
        'cursor_column = "updated_at" }'
    )
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id, source, extra="incremental = true"))

    first = await run_job(load_job(path))
    assert first.collections["books"] == {"created": 10}, first.as_dict()
    assert saved_cursor(job_dir) == "2026-01-01T00:00:09"

    # Someone edits book 4 within that same second.
    await execute_sql(
        url,
        f"UPDATE {table} SET title = 'Book 4, revised', updated_at = '2026-01-01 00:00:09' "
        "WHERE id = '4'",
    )
    before = await writes(sandbox)
    second = await run_job(load_job(path))
    assert second.collections["books"] == {"updated": 1, "unchanged": 2}, second.as_dict()
    assert await writes(sandbox) == before + 1  # one PATCH, for book 4 alone
    stored = await items(sandbox, collection_id(job_dir), live=True)
    names = {i.field_data["source-key"]: i.field_data["name"] for i in stored}
    assert names["4"] == "Book 4, revised"
    assert saved_cursor(job_dir) == "2026-01-01T00:00:09"

    third = await run_job(load_job(path))
    assert third.collections["books"] == {"unchanged": 3}, third.as_dict()
    assert await writes(sandbox) == before + 1
