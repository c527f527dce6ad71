"""SQL connector over Chinook loaded into SQLite, PostgreSQL and MariaDB (real servers)."""

from __future__ import annotations

import base64
import re
import sqlite3
from contextlib import aclosing, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import RecordError, SourceItem, SourceRecord
from flowport.connectors.sql import SqlSource, SqlSourceConfig, parse_table_name
from tests.conftest import require_shared

from .conftest import CHINOOK, CHINOOK_TABLES, POSTGRES_PASSWORD, chinook_counts

PRIMARY_KEYS = {
    "Album": ("AlbumId",), "Artist": ("ArtistId",), "Customer": ("CustomerId",),
    "Employee": ("EmployeeId",), "Genre": ("GenreId",), "Invoice": ("InvoiceId",),
    "InvoiceLine": ("InvoiceLineId",), "MediaType": ("MediaTypeId",),
    "Playlist": ("PlaylistId",), "PlaylistTrack": ("PlaylistId", "TrackId"),
    "Track": ("TrackId",),
}  # fmt: skip


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Backend:
    """One database holding Chinook; the PostgreSQL script names everything in snake_case."""

    id: str
    url: str
    snake_case: bool = False

    def ident(self, name: str) -> str:
        return snake(name) if self.snake_case else name

    def source(self, **options: Any) -> SqlSource:
        for option in ("table", "cursor_column"):
            if isinstance(options.get(option), str):
                options[option] = self.ident(options[option])
        key = options.pop("key")
        keys = (key,) if isinstance(key, str) else key
        config = SqlSourceConfig(
            url_env="DB_URL", key=tuple(self.ident(k) for k in keys), **options
        )
        return config.open(base_dir=Path("/nonexistent"), env={"DB_URL": self.url})


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.shared),
        pytest.param("postgres", marks=[pytest.mark.shared, pytest.mark.postgres]),
        pytest.param("mariadb", marks=[pytest.mark.shared, pytest.mark.mariadb]),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "sqlite":
        database: Path = request.getfixturevalue("chinook_sqlite")
        return Backend("sqlite", f"sqlite:///{database}")
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_chinook")
        # A bare backend name: the connector picks the async driver itself.
        return Backend("postgres", url.replace("postgresql+asyncpg://", "postgresql://"), True)
    return Backend("mariadb", request.getfixturevalue("mariadb_chinook"))


async def read(src: SqlSource, since: str | None = None) -> list[SourceItem]:
    async with aclosing(src.records(since)) as items:
        return [item async for item in items]


def records_of(items: list[SourceItem]) -> list[SourceRecord]:
    assert all(isinstance(item, SourceRecord) for item in items), items[:3]
    return [item for item in items if isinstance(item, SourceRecord)]


def reference(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    path = require_shared(CHINOOK) / "Chinook_Sqlite.sqlite"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


@pytest.mark.parametrize("table", CHINOOK_TABLES)
async def test_every_table_has_its_known_row_count(backend: Backend, table: str) -> None:
    records = records_of(await read(backend.source(table=table, key=PRIMARY_KEYS[table])))
    assert len(records) == chinook_counts()[table]
    assert len({record.key for record in records}) == len(records)


async def test_non_ascii_names_survive_exactly(backend: Backend) -> None:
    records = records_of(await read(backend.source(table="Artist", key="ArtistId")))
    names = {int(r.key): r.fields[backend.ident("Name")] for r in records}
    expected = dict(reference('SELECT "ArtistId", "Name" FROM "Artist"'))
    assert names == expected
    assert any(not name.isascii() for name in names.values() if name)


async def test_nulls_and_the_self_reference(backend: Backend) -> None:
    records = records_of(await read(backend.source(table="Employee", key="EmployeeId")))
    by_key = {record.key: record.fields for record in records}
    reports_to = backend.ident("ReportsTo")
    assert by_key["1"][reports_to] is None
    assert by_key["2"][reports_to] == 1
    assert {key: fields[reports_to] for key, fields in by_key.items()} == {
        str(employee): boss
        for employee, boss in reference("SELECT EmployeeId, ReportsTo FROM Employee")
    }


async def test_composite_key_joins_both_columns(backend: Backend) -> None:
    src = backend.source(table="PlaylistTrack", key=("PlaylistId", "TrackId"), key_separator="/")
    records = records_of(await read(src))
    expected = {f"{p}/{t}" for p, t in reference("SELECT PlaylistId, TrackId FROM PlaylistTrack")}
    assert {record.key for record in records} == expected


async def test_values_are_json_like(backend: Backend) -> None:
    records = records_of(await read(backend.source(table="Invoice", key="InvoiceId")))
    first = records[0].fields
    assert records[0].key == "1"
    date, total = first[backend.ident("InvoiceDate")], first[backend.ident("Total")]
    if backend.id == "sqlite":
        # SQLite has no date or decimal types: it returns what it stored.
        assert (date, total) == ("2021-01-01 00:00:00", 1.98)
    else:
        assert (date, total) == ("2021-01-01T00:00:00", "1.98")


async def test_incremental_read_with_a_cursor_column(backend: Backend) -> None:
    src = backend.source(table="Invoice", key="InvoiceId", cursor_column="InvoiceDate")
    assert src.incremental
    full = records_of(await read(src))
    cursors = [record.cursor for record in full if record.cursor is not None]
    assert len(cursors) == len(full), "every record has a cursor"
    assert cursors == sorted(cursors), "ordered by the cursor"
    since = full[299].cursor
    assert since is not None
    later = records_of(await read(src, since=since))
    stored_since = full[299].fields[backend.ident("InvoiceDate")]
    expected = reference(
        "SELECT COUNT(*) FROM Invoice WHERE InvoiceDate > ?", str(stored_since).replace("T", " ")
    )[0][0]
    assert len(later) == expected
    assert 0 < len(later) < len(full)
    assert all(record.cursor is not None and record.cursor > since for record in later)


async def test_query_with_cursor_is_wrapped_as_a_subquery(backend: Backend) -> None:
    invoice, total, date = (backend.ident(n) for n in ("Invoice", "Total", "InvoiceDate"))
    query = f"SELECT * FROM {invoice} WHERE {total} > 10"
    src = backend.source(query=query, key="InvoiceId", cursor_column="InvoiceDate")
    full = records_of(await read(src))
    assert len(full) == reference("SELECT COUNT(*) FROM Invoice WHERE Total > 10")[0][0]
    since = full[len(full) // 2].cursor
    assert since is not None
    later = records_of(await read(src, since=since))
    assert {r.key for r in later} == {r.key for r in full if r.cursor and r.cursor > since}
    assert date in later[0].fields


async def test_camel_case_schema_qualified_relation_on_postgres(
    postgres_chinook: str,
) -> None:
    config = SqlSourceConfig(url_env="U", table='"Music"."Album"', key="AlbumId")
    src = config.open(base_dir=Path(), env={"U": postgres_chinook})
    records = records_of(await read(src))
    assert len(records) == chinook_counts()["Album"]
    assert set(records[0].fields) == {"AlbumId", "Title", "ArtistId"}
    assert POSTGRES_PASSWORD not in src.name
    assert "***" in src.name


async def test_the_read_runs_in_a_read_only_transaction(
    chinook_sqlite: Path, postgres_chinook: str
) -> None:
    sqlite = SqlSourceConfig(
        url_env="U", query="SELECT * FROM pragma_query_only()", key="query_only"
    )
    items = await read(sqlite.open(base_dir=Path(), env={"U": f"sqlite:///{chinook_sqlite}"}))
    assert records_of(items)[0].fields == {"query_only": 1}
    postgres = SqlSourceConfig(
        url_env="U", query="SELECT current_setting('transaction_read_only') AS ro", key="ro"
    )
    items = await read(postgres.open(base_dir=Path(), env={"U": postgres_chinook}))
    assert records_of(items)[0].key == "on"


async def test_null_keys_are_per_row_errors_and_repeats_are_passed_on(backend: Backend) -> None:
    # Refusing a repeated key is the runner's (in flat memory, for every source): the SQL
    # source passes the repeat on with its row number, so the error can name it.
    employee, boss, ident = backend.ident("Employee"), backend.ident("ReportsTo"), backend.ident
    query = f"SELECT {boss} AS boss, {ident('EmployeeId')} AS id FROM {employee}"
    items = await read(backend.source(query=query, key="boss"))
    errors = [item for item in items if isinstance(item, RecordError)]
    records = [item for item in items if isinstance(item, SourceRecord)]
    bosses = [b for (b,) in reference("SELECT ReportsTo FROM Employee")]
    assert sorted(r.key for r in records) == sorted(str(b) for b in bosses if b)
    assert len({r.key for r in records}) < len(records)  # the repeats are there
    assert len(errors) == bosses.count(None)
    assert all("is NULL" in e.reason for e in errors)
    assert all(e.position and e.position.startswith("row ") for e in errors)
    assert all(r.position and r.position.startswith("row ") for r in records)


async def test_binary_values_become_base64_or_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "blobs.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB)")
        db.execute("INSERT INTO files VALUES (1, ?), (2, NULL)", (b"\x00\xffbin",))
        db.commit()
    env = {"U": f"sqlite:///{path}"}
    items = await read(
        SqlSourceConfig(url_env="U", table="files", key="id").open(base_dir=tmp_path, env=env)
    )
    assert [dict(r.fields) for r in records_of(items)] == [
        {"id": 1, "data": base64.b64encode(b"\x00\xffbin").decode()},
        {"id": 2, "data": None},
    ]
    refusing = SqlSourceConfig(url_env="U", table="files", key="id", binary="refuse")
    items = await read(refusing.open(base_dir=tmp_path, env=env))
    assert isinstance(items[0], RecordError)
    assert items[0].key == "1"
    assert "binary" in items[0].reason
    assert isinstance(items[1], SourceRecord)


async def test_relative_sqlite_path_resolves_against_the_job_folder(chinook_sqlite: Path) -> None:
    config = SqlSourceConfig(url_env="U", table="Genre", key="GenreId")
    src = config.open(base_dir=chinook_sqlite.parent, env={"U": f"sqlite:///{chinook_sqlite.name}"})
    assert len(records_of(await read(src))) == chinook_counts()["Genre"]


@pytest.mark.mariadb
async def test_wrong_password_is_a_source_error_without_the_password() -> None:
    secret = "wrong-secret-9d2e"
    config = SqlSourceConfig(url_env="U", table="Album", key="AlbumId")
    src = config.open(base_dir=Path(), env={"U": f"mysql://root:{secret}@127.0.0.1:3306/test"})
    try:
        await read(src)
    except SourceError as exc:
        message = str(exc)
    else:
        pytest.skip("this MariaDB accepts any password for root")
    assert secret not in message
    assert "Access denied" in message
    assert secret not in src.name
    assert secret not in repr(src)


async def test_unreachable_server_and_missing_things_are_clear_errors(
    tmp_path: Path, chinook_sqlite: Path
) -> None:
    def open_with(url: str, **options: Any) -> SqlSource:
        options.setdefault("table", "Album")
        config = SqlSourceConfig(url_env="U", key=options.pop("key", "AlbumId"), **options)
        return config.open(base_dir=tmp_path, env={"U": url})

    with pytest.raises(SourceError, match="cannot connect") as refused:
        await read(open_with("postgresql://u:pw-7781@127.0.0.1:1/db"))
    assert "pw-7781" not in str(refused.value)
    with pytest.raises(SourceError, match="does not exist"):
        await read(open_with("sqlite:///no-such.sqlite"))
    assert not (tmp_path / "no-such.sqlite").exists(), "a typo must not create a database"
    with pytest.raises(SourceError, match="no such table"):
        await read(open_with(f"sqlite:///{chinook_sqlite}", table="Albums"))
    with pytest.raises(SourceError, match=r"'album_id' is not in the result.*'AlbumId'"):
        await read(open_with(f"sqlite:///{chinook_sqlite}", key="album_id"))
    with pytest.raises(ConfigError, match="cannot read incrementally"):
        await read(open_with(f"sqlite:///{chinook_sqlite}"), since="1")
    src = open_with(f"sqlite:///{chinook_sqlite}", cursor_column="AlbumId")
    with pytest.raises(ConfigError, match="does not read as a int"):
        await read(src, since="yesterday")


def test_url_comes_from_env_or_file_and_is_never_echoed(tmp_path: Path) -> None:
    config = SqlSourceConfig(url_env="MISSING_URL", table="t", key="id")
    with pytest.raises(ConfigError, match="MISSING_URL is not set"):
        config.open(base_dir=tmp_path, env={})
    garbage = "not a url with pass=hunter2"
    with pytest.raises(ConfigError, match="does not hold a database URL") as raised:
        config.open(base_dir=tmp_path, env={"MISSING_URL": garbage})
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError, match="unsupported database 'oracle'"):
        config.open(base_dir=tmp_path, env={"MISSING_URL": "oracle://u:p@h/db"})
    (tmp_path / "db.url").write_text("postgresql://app:s3cr3t@db.example/prod?sslmode=require\n")
    from_file = SqlSourceConfig(url_file=Path("db.url"), table="public.Post", key="id")
    src = from_file.open(base_dir=tmp_path, env={})
    assert src.name == "sql:postgresql+asyncpg://app:***@db.example/prod#public.Post"
    assert "s3cr3t" not in repr(src)
    with pytest.raises(ConfigError, match="cannot read the URL file"):
        SqlSourceConfig(url_file=Path("nope.url"), table="t", key="id").open(
            base_dir=tmp_path, env={}
        )


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="exactly one of url_env"):
        SqlSourceConfig(table="t", key="id")
    with pytest.raises(ValidationError, match="exactly one of table or query"):
        SqlSourceConfig(url_env="U", table="t", query="SELECT 1", key="id")
    with pytest.raises(ValidationError, match="single SELECT"):
        SqlSourceConfig(url_env="U", query="DELETE FROM t", key="id")
    with pytest.raises(ValidationError, match="single statement"):
        SqlSourceConfig(url_env="U", query="SELECT 1; DROP TABLE t", key="id")
    assert (
        SqlSourceConfig(url_env="U", query="  select 1 as id;\n", key="id").query
        == "select 1 as id"
    )
    with pytest.raises(ValidationError):
        SqlSourceConfig.model_validate(
            {"type": "sql", "url_env": "U", "table": "t", "key": "id", "url": "x"}
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Album", (None, "Album")),
        ("public.Album", ("public", "Album")),
        ('"Music"."Album"', ("Music", "Album")),
        ('"my.schema"."odd ""name"""', ("my.schema", 'odd "name"')),
    ],
)
def test_parse_table_name(text: str, expected: tuple[str | None, str]) -> None:
    assert parse_table_name(text) == expected


@pytest.mark.parametrize("text", ["", "a.b.c", '"open', '"a"b', "a."])
def test_parse_table_name_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_table_name(text)
