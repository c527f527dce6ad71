"""The text of a SQL source's query: refused when it would write, run as written otherwise, and
its failures (at the first fetch or later) reported as clean source errors."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors.sql import SqlSource, SqlSourceConfig
from flowport.pipeline.jobfile import load_job

from .conftest import Backend, chinook_counts, execute_sql
from .test_sql import read, records_of


def query_config(query: str, **options: Any) -> SqlSourceConfig:
    return SqlSourceConfig(url_env="U", query=query, key="id", **options)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM t INTO OUTFILE '/tmp/flowport-leak.csv'",
        "SELECT body INTO DUMPFILE '/tmp/flowport-leak.bin' FROM t",
        "SELECT id INTO @saved FROM t",
        "SELECT id, title FROM t LIMIT 1 INTO @a, @b",
        "select * into new_table from t",  # PostgreSQL: creates the table
        "/* report */ SELECT id FROM t\nINTO OUTFILE '/tmp/x'",
        # MySQL runs what is inside /*! */ and /*M! */.
        "SELECT 1 AS id /*! INTO OUTFILE '/tmp/x' */",
        "SELECT 1 AS id /*M!100000 INTO OUTFILE '/tmp/x' */",
        # A string to PostgreSQL ('a\'), but MySQL reads \' as an escaped quote: INTO is code.
        r"SELECT 'a\' AS id, ' INTO OUTFILE '/tmp/x",
        # A nested comment to PostgreSQL; MySQL's comment ends at the first */.
        "SELECT 1 AS id /* a /* b */ INTO OUTFILE '/tmp/x' -- */",
        # Quoted for one database only (a MySQL name, a PostgreSQL string): the other would read
        # INTO as code, and the check does not know which database the job names.
        "SELECT 1 AS `into`",
        "SELECT $$ into outfile $$ AS id",
    ],
)
def test_select_into_is_refused_with_the_fix(query: str) -> None:
    with pytest.raises(ValidationError, match=r"SELECT \.\.\. INTO writes.*remove the INTO clause"):
        query_config(query)


def test_select_into_in_a_job_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        """
[destination]
api = "sandbox"
site_id = "580e63e98c9a982ac9b8b741"
token_env = "FLOWPORT_TEST_TOKEN"

[collections.books]
target = "Books"
source = { type = "sql", url_env = "DB", query = "SELECT id INTO @x FROM t", key = "id" }

[collections.books.fields]
name = "id"
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_job(job)
    assert raised.value.key == "collections.books.source.query"
    assert "remove the INTO clause" in str(raised.value)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'into outfile' AS id",
        'SELECT 1 AS "into"',
        "SELECT 1 AS id -- into outfile '/tmp/x'",
        "SELECT 1 AS id, 'a;b' AS semicolon",
        # A writable WITH: the read-only transaction refuses it (see the tests below).
        "WITH gone AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM gone",
    ],
)
def test_into_and_semicolons_in_strings_comments_and_names_are_not_code(query: str) -> None:
    assert query_config(query).query == query


@pytest.mark.parametrize(
    "query",
    [
        "-- every genre\nSELECT 1 AS id",
        "/* every genre */ SELECT 1 AS id",
        "/* a /* nested */ comment */\n  WITH x AS (SELECT 1 AS id) SELECT id FROM x",
        "\n-- one\n-- two\n/* three */\nselect 1 as id;",
    ],
)
def test_a_query_may_start_with_comments(query: str) -> None:
    assert query_config(query).query == query.strip().rstrip(";")


@pytest.mark.parametrize(
    "query",
    ["-- only a comment", "/* SELECT */ DELETE FROM t", "SELECT 1; DELETE FROM t", "/*! DELETE */"],
)
def test_what_is_still_refused(query: str) -> None:
    with pytest.raises(ValidationError, match="single"):
        query_config(query)


def backend_source(backend: Backend, query: str, **options: Any) -> SqlSource:
    config = SqlSourceConfig(url_env="U", query=query, **options)
    return config.open(base_dir=Path(), env={"U": backend.url})


@pytest.mark.parametrize("cursor", [False, True])
async def test_comments_around_the_query_on_every_database(backend: Backend, cursor: bool) -> None:
    genre, genre_id = backend.ident("Genre"), backend.ident("GenreId")
    # The trailing comment would swallow the ")" of the subquery the cursor's read wraps it in.
    query = f"-- every genre\n/* all of them */ SELECT * FROM {genre} -- to the last one"
    options = {"cursor_column": genre_id} if cursor else {}
    src = backend_source(backend, query, key=genre_id, **options)
    assert len(records_of(await read(src))) == chinook_counts()["Genre"]
    assert await src.estimated_total() == chinook_counts()["Genre"]
    if cursor:
        assert len(records_of(await read(src, since="20"))) == chinook_counts()["Genre"] - 19


@pytest.mark.parametrize("cursor", [False, True])
async def test_colons_in_string_literals_are_not_bind_parameters(
    backend: Backend, cursor: bool
) -> None:
    genre, genre_id = backend.ident("Genre"), backend.ident("GenreId")
    query = (
        f"SELECT {genre_id}, ':1' AS positional, 'at :name' AS named, '10:30:00' AS clock "
        f"FROM {genre} WHERE {genre_id} = 1"
    )
    options = {"cursor_column": genre_id} if cursor else {}
    src = backend_source(backend, query, key=genre_id, **options)
    (record,) = records_of(await read(src))
    assert {k: record.fields[k] for k in ("positional", "named", "clock")} == {
        "positional": ":1",
        "named": "at :name",
        "clock": "10:30:00",
    }
    assert await src.estimated_total() == 1


@pytest.mark.postgres
@pytest.mark.shared
async def test_postgres_casts_are_left_alone(postgres_chinook: str) -> None:
    query = "SELECT genre_id::text AS id, ':x'::text AS marker FROM genre WHERE genre_id = 2"
    src = query_config(query).open(base_dir=Path(), env={"U": postgres_chinook})
    (record,) = records_of(await read(src))
    assert record.fields == {"id": "2", "marker": ":x"}


def assert_clean(error: SourceError) -> None:
    # Raised "from None": the driver's traceback is not chained onto the source error.
    assert error.__cause__ is None
    assert error.__suppress_context__


@pytest.mark.postgres
@pytest.mark.shared
async def test_postgres_refusals_at_the_first_fetch_are_source_errors(
    postgres_chinook: str,
) -> None:
    sequence = f"seq_{secrets.token_hex(3)}"
    await execute_sql(postgres_chinook, f"CREATE SEQUENCE {sequence}")
    env = {"U": postgres_chinook}
    nextval = query_config(f"SELECT nextval('{sequence}') AS id").open(base_dir=Path(), env=env)
    with pytest.raises(SourceError, match=r"cannot execute nextval\(\) in a read-only") as raised:
        await read(nextval)
    assert_clean(raised.value)
    writable = query_config(
        "WITH gone AS (DELETE FROM genre RETURNING genre_id AS id) SELECT id FROM gone"
    ).open(base_dir=Path(), env=env)
    with pytest.raises(SourceError, match="read-only transaction") as raised:
        await read(writable)
    assert_clean(raised.value)
    genres = query_config("SELECT genre_id AS id FROM genre").open(base_dir=Path(), env=env)
    assert len(await read(genres)) == chinook_counts()["Genre"]


@pytest.mark.postgres
@pytest.mark.shared
async def test_a_failure_after_some_rows_says_where_the_read_stopped(
    postgres_chinook: str,
) -> None:
    query = "SELECT g AS id, 1 / (500 - g) AS x FROM generate_series(1, 1000) AS g"
    src = query_config(query, batch_size=200).open(base_dir=Path(), env={"U": postgres_chinook})
    with pytest.raises(SourceError, match="reading stopped after row 400: Division") as raised:
        await read(src)
    assert_clean(raised.value)


@pytest.mark.mariadb
@pytest.mark.shared
async def test_mariadb_refusals_are_source_errors(mariadb_chinook: str) -> None:
    sequence = f"seq_{secrets.token_hex(3)}"
    await execute_sql(mariadb_chinook, f"CREATE SEQUENCE {sequence}")
    src = query_config(f"SELECT NEXTVAL({sequence}) AS id").open(
        base_dir=Path(), env={"U": mariadb_chinook}
    )
    with pytest.raises(SourceError, match="READ ONLY transaction") as raised:
        await read(src)
    assert_clean(raised.value)
