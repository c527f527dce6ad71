"""The connector cases the conformance suite runs: one factory per (connector, real data set).

A factory gets the pytest request (to reach fixtures such as a loaded database) and a private
temporary folder, and returns a :class:`ConnectorCase`: a real source over real data plus what a
full read must show. Expected figures are derived independently of the connector under test (the
standard library's csv module, the SQLite file through sqlite3), never copied from its output.

To add a connector, append ``pytest.param(factory, id="...", marks=[...])`` to :data:`CASES`.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flowport.connectors import Source
from flowport.connectors.csv_source import CsvSourceConfig
from flowport.connectors.dataframe import DataFrameSourceConfig
from flowport.connectors.sql import SqlSourceConfig
from tests.conftest import require_shared

from .conftest import (
    GHOST_CSV,
    POSTGRES_PASSWORD,
    TWEETS,
    chinook_counts,
    chinook_scalar,
    open_descriptors_to,
    run_async_in_thread,
)
from .wordpress_fixture import (
    rest_fixture_posts_case,
    rest_wordpress_posts_case,
    wxr_categories_case,
    wxr_posts_case,
)

__all__ = ["CASES", "ConnectorCase", "ReleaseCheck"]

#: Called after a read was closed early; raises AssertionError if the source still holds anything.
ReleaseCheck = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ConnectorCase:
    source: Source
    #: SourceRecords and RecordErrors a full read yields.
    expected_records: int
    sample_key: str
    #: A subset of the sample record's fields, with their exact values.
    sample_fields: Mapping[str, Any]
    expected_errors: int = 0
    #: For incremental sources: a ``since`` and how many records a read past it must yield.
    since: str | None = None
    expected_since_records: int | None = None
    #: Whether a read from ``since`` includes the records at it: SQL and WordPress (REST, WXR) do
    #: (their cursors keep whole seconds, so an equal cursor may be a later change).
    since_is_inclusive: bool = False
    #: Strings that must never appear in the source's name or repr (passwords).
    secrets: tuple[str, ...] = ()
    release_check: ReleaseCheck | None = None
    notes: dict[str, Any] = field(default_factory=dict)


CaseFactory = Callable[[pytest.FixtureRequest, Path], ConnectorCase]


def _csv_rows(path: Path, encoding: str) -> list[dict[str, str]]:
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        return list(csv.DictReader(handle))


def _file_released(path: Path) -> ReleaseCheck:
    async def check() -> None:
        assert open_descriptors_to(path) == [], f"{path} is still open after an early close"

    return check


def csv_tweets(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    # A private copy so the early-close check can look for descriptors on a path only it uses.
    path = tmp / "tweets.csv"
    shutil.copyfile(require_shared(TWEETS) / "mayweather-mcgregor__tweets.csv", path)
    rows = _csv_rows(path, "utf-8")
    sample = rows[7]
    return ConnectorCase(
        source=CsvSourceConfig(path=Path("tweets.csv"), key="id").open(base_dir=tmp, env={}),
        expected_records=len(rows),
        sample_key=sample["id"],
        sample_fields={"screen_name": sample["screen_name"], "text": sample["text"]},
        release_check=_file_released(path),
    )


def csv_cp1252_tweets(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    path = tmp / "obama.csv"
    shutil.copyfile(require_shared(TWEETS) / "twitter-ratio__BarackObama.csv", path)
    rows = _csv_rows(path, "cp1252")
    sample = rows[0]
    return ConnectorCase(
        source=CsvSourceConfig(path=path, key="url").open(base_dir=tmp, env={}),
        expected_records=len(rows),
        sample_key=sample["url"],
        sample_fields={"text": sample["text"], "favorites": sample["favorites"]},
        release_check=_file_released(path),
    )


def csv_wix_json_cells(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    path = tmp / "wix.csv"
    shutil.copyfile(require_shared(GHOST_CSV) / "mg-wix-csv" / "posts.csv", path)
    rows = _csv_rows(path, "utf-8")
    return ConnectorCase(
        source=CsvSourceConfig(path=path, key="ID").open(base_dir=tmp, env={}),
        expected_records=len(rows),
        sample_key=rows[0]["ID"],
        sample_fields={"Rich Content": rows[0]["Rich Content"], "Tags": '["tag-id"]'},
        release_check=_file_released(path),
    )


def _sqlite_released(path: Path) -> ReleaseCheck:
    async def check() -> None:
        # aiosqlite closes the file from its own thread once the engine is disposed.
        assert open_descriptors_to(path) == [], f"{path} is still open after an early close"

    return check


def sqlite_playlist_track(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    database: Path = request.getfixturevalue("chinook_sqlite")
    config = SqlSourceConfig(
        url_env="CHINOOK_URL", table="PlaylistTrack", key=("PlaylistId", "TrackId")
    )
    return ConnectorCase(
        source=config.open(base_dir=tmp, env={"CHINOOK_URL": f"sqlite:///{database}"}),
        expected_records=chinook_counts()["PlaylistTrack"],
        sample_key="1:3402",
        sample_fields={"PlaylistId": 1, "TrackId": 3402},
        release_check=_sqlite_released(database),
    )


INVOICE_SINCE_SQLITE = "2025-01-01 00:00:00"


def _invoices_after_2025() -> int:
    return int(
        chinook_scalar("SELECT COUNT(*) FROM Invoice WHERE InvoiceDate > ?", INVOICE_SINCE_SQLITE)
    )


def sqlite_invoice_incremental(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    database: Path = request.getfixturevalue("chinook_sqlite")
    url_file = tmp / "chinook.url"
    url_file.write_text(f"sqlite+aiosqlite:///{database}\n", encoding="utf-8")
    config = SqlSourceConfig(
        url_file=Path("chinook.url"), table="Invoice", key="InvoiceId", cursor_column="InvoiceDate"
    )
    return ConnectorCase(
        source=config.open(base_dir=tmp, env={}),
        expected_records=chinook_counts()["Invoice"],
        sample_key="1",
        sample_fields={"BillingAddress": "Theodor-Heuss-Straße 34", "BillingState": None},
        since=INVOICE_SINCE_SQLITE,
        expected_since_records=_invoices_after_2025(),
        since_is_inclusive=True,
        release_check=_sqlite_released(database),
    )


def _postgres_released(url: str) -> ReleaseCheck:
    async def check() -> None:
        import asyncpg

        database = url.rsplit("/", 1)[1]

        async def others() -> int:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=5432, user="postgres", database="test"
            )
            try:
                return int(
                    await conn.fetchval(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1", database
                    )
                )
            finally:
                await conn.close()

        assert run_async_in_thread(others) == 0, "a connection to the database is still open"

    return check


def postgres_invoice_incremental(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    url: str = request.getfixturevalue("postgres_chinook")
    config = SqlSourceConfig(
        url_env="PG_URL", table="invoice", key="invoice_id", cursor_column="invoice_date"
    )
    return ConnectorCase(
        source=config.open(base_dir=tmp, env={"PG_URL": url}),
        expected_records=chinook_counts()["Invoice"],
        sample_key="1",
        sample_fields={
            "billing_address": "Theodor-Heuss-Straße 34",
            "billing_state": None,
            "total": "1.98",
            "invoice_date": "2021-01-01T00:00:00",
        },
        since="2025-01-01T00:00:00",
        expected_since_records=_invoices_after_2025(),
        since_is_inclusive=True,
        secrets=(POSTGRES_PASSWORD,),
        release_check=_postgres_released(url),
    )


def _mariadb_released(url: str) -> ReleaseCheck:
    async def check() -> None:
        import pymysql

        database = url.rsplit("/", 1)[1]
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE DB = %s AND ID <> CONNECTION_ID()",
                    (database,),
                )
                (count,) = cursor.fetchone()
        finally:
            conn.close()
        assert count == 0, "a connection to the database is still open"

    return check


def mariadb_invoice_incremental(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    url: str = request.getfixturevalue("mariadb_chinook")
    config = SqlSourceConfig(
        url_env="MARIADB_URL", table="Invoice", key="InvoiceId", cursor_column="InvoiceDate"
    )
    return ConnectorCase(
        source=config.open(base_dir=tmp, env={"MARIADB_URL": url}),
        expected_records=chinook_counts()["Invoice"],
        sample_key="1",
        sample_fields={"BillingAddress": "Theodor-Heuss-Straße 34", "Total": "1.98"},
        since="2025-01-01T00:00:00",
        expected_since_records=_invoices_after_2025(),
        since_is_inclusive=True,
        release_check=_mariadb_released(url),
    )


def _chinook_frame(database: Path, query: str, **options: Any) -> Any:
    import pandas as pd

    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return pd.read_sql_query(query, db, **options)


def dataframe_tweets(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    # pandas' own reader makes the frame (ids as int64); the figures come from the csv module.
    import pandas as pd

    path = require_shared(TWEETS) / "mayweather-mcgregor__tweets.csv"
    rows = _csv_rows(path, "utf-8")
    sample = rows[7]
    frame = pd.read_csv(path)
    return ConnectorCase(
        source=DataFrameSourceConfig(key="id")
        .bind(frame, label="tweets")
        .open(base_dir=tmp, env={}),
        expected_records=len(rows),
        sample_key=sample["id"],
        sample_fields={
            "id": int(sample["id"]),
            "screen_name": sample["screen_name"],
            "text": sample["text"],
        },
    )


def dataframe_invoice_by_index(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    # No key: the index (InvoiceId) is the key and, being named, a field too.
    database: Path = request.getfixturevalue("chinook_sqlite")
    frame = _chinook_frame(
        database, "SELECT * FROM Invoice", index_col="InvoiceId", parse_dates=["InvoiceDate"]
    )
    return ConnectorCase(
        source=DataFrameSourceConfig().bind(frame, label="invoices").open(base_dir=tmp, env={}),
        expected_records=chinook_counts()["Invoice"],
        sample_key="1",
        sample_fields={
            "InvoiceId": 1,
            "BillingAddress": "Theodor-Heuss-Straße 34",
            "BillingState": None,
            "Total": 1.98,
            "InvoiceDate": "2021-01-01T00:00:00",
        },
    )


def dataframe_customer_by_company(request: pytest.FixtureRequest, tmp: Path) -> ConnectorCase:
    # Most customers have no Company: each of those rows is a RecordError, the read goes on.
    database: Path = request.getfixturevalue("chinook_sqlite")
    frame = _chinook_frame(database, "SELECT * FROM Customer ORDER BY CustomerId")
    with_company = int(chinook_scalar("SELECT COUNT(Company) FROM Customer"))
    first = chinook_scalar("SELECT Company FROM Customer WHERE CustomerId = 1")
    return ConnectorCase(
        source=DataFrameSourceConfig(key="Company")
        .bind(frame, label="customers")
        .open(base_dir=tmp, env={}),
        expected_records=with_company,
        expected_errors=chinook_counts()["Customer"] - with_company,
        sample_key=first,
        sample_fields={"CustomerId": 1, "Company": first, "Fax": "+55 (12) 3923-5566"},
    )


CASES: list[Any] = [
    pytest.param(csv_tweets, id="csv-tweets-utf8", marks=pytest.mark.shared),
    pytest.param(csv_cp1252_tweets, id="csv-tweets-cp1252", marks=pytest.mark.shared),
    pytest.param(csv_wix_json_cells, id="csv-wix-json-cells", marks=pytest.mark.shared),
    pytest.param(sqlite_playlist_track, id="sqlite-playlisttrack", marks=pytest.mark.shared),
    pytest.param(sqlite_invoice_incremental, id="sqlite-invoice", marks=pytest.mark.shared),
    pytest.param(
        postgres_invoice_incremental,
        id="postgres-invoice",
        marks=[pytest.mark.shared, pytest.mark.postgres],
    ),
    pytest.param(
        mariadb_invoice_incremental,
        id="mariadb-invoice",
        marks=[pytest.mark.shared, pytest.mark.mariadb],
    ),
    pytest.param(wxr_posts_case, id="wxr-theme-posts", marks=pytest.mark.shared),
    pytest.param(wxr_categories_case, id="wxr-theme-categories", marks=pytest.mark.shared),
    pytest.param(rest_fixture_posts_case, id="wordpress-rest-fixture", marks=pytest.mark.shared),
    pytest.param(
        rest_wordpress_posts_case,
        id="wordpress-rest-real",
        marks=[pytest.mark.shared, pytest.mark.wordpress],
    ),
    pytest.param(dataframe_tweets, id="dataframe-tweets", marks=pytest.mark.shared),
    pytest.param(
        dataframe_invoice_by_index, id="dataframe-invoice-index", marks=pytest.mark.shared
    ),
    pytest.param(
        dataframe_customer_by_company, id="dataframe-customer-company", marks=pytest.mark.shared
    ),
]
