"""Fixtures for the connector tests: real files, a real SQLite copy, real PostgreSQL and MariaDB.

The database fixtures load Chinook once per session into a database created for the run and
dropped after it. Outside CI a missing server or a missing ``../shared`` skips with the reason;
with ``CI=true`` it fails instead, so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import ACCEPTANCE, require_shared, unavailable

CHINOOK = ACCEPTANCE / "sql-chinook"
TWEETS = ACCEPTANCE / "csv-fivethirtyeight-tweets"
GHOST_CSV = ACCEPTANCE / "csv-ghost-migrate-platform-exports"

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306
#: PostgreSQL here trusts local connections, so a password in the URL is accepted and ignored:
#: it lets the tests check that a real password never leaks into names, logs or errors.
POSTGRES_PASSWORD = "pg-secret-do-not-print-4f1c"

CHINOOK_TABLES = (
    "Album", "Artist", "Customer", "Employee", "Genre", "Invoice", "InvoiceLine", "MediaType",
    "Playlist", "PlaylistTrack", "Track",
)  # fmt: skip

_T = TypeVar("_T")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def run_async_in_thread(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on its own loop in its own thread, clear of pytest's loops."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        async def main() -> _T:
            return await make()

        try:
            outcome["value"] = asyncio.run(main())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def chinook_counts() -> dict[str, int]:
    """Row counts per table, read from the SQLite file with the standard library."""
    path = require_shared(CHINOOK) / "Chinook_Sqlite.sqlite"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in CHINOOK_TABLES}


def chinook_scalar(sql: str, *params: Any) -> Any:
    path = require_shared(CHINOOK) / "Chinook_Sqlite.sqlite"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchone()[0]


def _script_body(path: Path) -> str:
    # The scripts start by dropping and creating a database named chinook and switching to it;
    # the tests load the tables into a database of their own instead.
    text = path.read_text(encoding="utf-8")
    return text[text.index("CREATE TABLE") :]


@pytest.fixture(scope="session")
def chinook_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the Chinook SQLite file (tests must never touch ../shared)."""
    source = require_shared(CHINOOK) / "Chinook_Sqlite.sqlite"
    target = tmp_path_factory.mktemp("chinook") / "chinook.sqlite"
    shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="session")
def postgres_chinook() -> Iterator[str]:
    """URL (async driver, with a password trust auth ignores) of a fresh database holding Chinook.

    Besides the script's snake_case tables it holds a CamelCase view ``"Music"."Album"``.
    """
    if not _reachable(POSTGRES_HOST, POSTGRES_PORT):
        unavailable(f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}")
    script = _script_body(require_shared(CHINOOK) / "Chinook_PostgreSql.sql")
    database = f"flowport_test_{secrets.token_hex(4)}"
    import asyncpg

    async def create() -> None:
        admin = await asyncpg.connect(
            host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database="test"
        )
        try:
            await admin.execute(
                f"CREATE DATABASE \"{database}\" ENCODING 'UTF8' TEMPLATE template0"
            )
        finally:
            await admin.close()
        conn = await asyncpg.connect(
            host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database=database
        )
        try:
            await conn.execute(script)
            await conn.execute(
                'CREATE SCHEMA "Music"; CREATE VIEW "Music"."Album" AS SELECT album_id AS '
                '"AlbumId", title AS "Title", artist_id AS "ArtistId" FROM album'
            )
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(
            host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", database="test"
        )
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()

    run_async_in_thread(create)
    try:
        yield (
            f"postgresql+asyncpg://postgres:{POSTGRES_PASSWORD}@{POSTGRES_HOST}:{POSTGRES_PORT}"
            f"/{database}"
        )
    finally:
        run_async_in_thread(drop)


@pytest.fixture(scope="session")
def mariadb_chinook() -> Iterator[str]:
    """URL of a fresh MariaDB database holding Chinook (CamelCase tables, as in the script)."""
    if not _reachable(MARIADB_HOST, MARIADB_PORT):
        unavailable(f"MariaDB is not reachable on {MARIADB_HOST}:{MARIADB_PORT}")
    script = _script_body(require_shared(CHINOOK) / "Chinook_MySql.sql")
    database = f"flowport_test_{secrets.token_hex(4)}"
    import pymysql
    from pymysql.constants import CLIENT

    def connect(db: str | None) -> Any:
        return pymysql.connect(
            host=MARIADB_HOST,
            port=MARIADB_PORT,
            user="root",
            password="",
            database=db,
            charset="utf8mb4",
            client_flag=CLIENT.MULTI_STATEMENTS,
        )

    admin = connect(None)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    try:
        loader = connect(database)
        try:
            with loader.cursor() as cursor:
                cursor.execute(script)
                while cursor.nextset():
                    pass
            loader.commit()
        finally:
            loader.close()
        yield f"mysql+aiomysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{database}"
    finally:
        admin = connect(None)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        finally:
            admin.close()


def open_descriptors_to(path: Path) -> list[str]:
    """File descriptors of this process open on ``path`` (Linux /proc), to prove a close."""
    target = str(path.resolve())
    found: list[str] = []
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("no /proc/self/fd on this platform to check open files")
    for entry in fd_dir.iterdir():
        try:
            if str(entry.readlink()) == target:
                found.append(entry.name)
        except OSError:
            continue
    return found
