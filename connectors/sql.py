"""SQL source: a table or a SELECT read through SQLAlchemy's asyncio layer, streamed.

Supported: SQLite (aiosqlite), PostgreSQL (asyncpg), MySQL and MariaDB (aiomysql). A URL naming
only the backend (``postgresql://``, ``mysql://``, ``mariadb://``, ``sqlite://``) or another driver
is read through the async driver above. The URL comes from an environment variable or a file whose
name the job holds, never from the job itself; its password never appears in ``name``, ``repr``,
logs or errors.

Decisions a job author may want to know:

* Rows come from a server-side cursor, ``batch_size`` a fetch, in a read-only transaction
  (``SET TRANSACTION READ ONLY`` on PostgreSQL, ``START TRANSACTION READ ONLY`` on MySQL/MariaDB,
  ``PRAGMA query_only`` on SQLite), ordered by the cursor column (if any) then the key, so two
  reads give the same order. A ``query`` without a cursor column keeps the query's own order.
* ``query`` is one SELECT (or WITH ... SELECT), sent as written: comments may come before or
  after it, and ``:name`` in it is never taken for a bind parameter. ``SELECT ... INTO``
  (OUTFILE, DUMPFILE, @variables, a table) writes, and is refused when the job is loaded; a
  query the read-only transaction refuses (a writable WITH, ``nextval()``) fails at its first
  fetch. Either failure, like any other of the database's, is a :class:`SourceError` naming the
  source and the database's own message. How the text is read: ``_sql_text``.
* ``table`` is an identifier taken as written, case included (``Album`` is ``"Album"``):
  ``schema.table``, with double quotes around a part holding a dot.
* Values become JSON-like: ``Decimal`` -> exact text (``"0.99"``), date/time -> ISO 8601,
  ``bytes`` -> base64 text (or refused, per ``binary``), UUID/IP/interval -> text, JSON and arrays
  -> lists and dicts. A value of a type not listed makes that row a :class:`RecordError`.
* ``cursor_column`` makes the source incremental: ``records(since=s)`` reads the rows whose cursor
  is at or past ``s``; ``s`` is the text this source put in ``SourceRecord.cursor``, read back as
  the column's type (learnt from one row), so comparisons are the database's own. The bound is
  inclusive because a cursor is coarser than the changes it orders (MariaDB's ``TIMESTAMP`` and
  WordPress keep whole seconds): a row saved in the same second as the last one read would be
  skipped for good by ``>``. The rows at the bound that did not change are read again and the
  runner skips them by their source fingerprint, without a request.
* A row whose key is NULL or empty is a :class:`RecordError`. A row repeating an earlier row's
  key is passed on as read: the runner, which sees every source's keys in flat memory, refuses
  the repeat (the first row wins), so a table of any size is read without a set of its keys.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import enum
import functools
import ipaddress
import math
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
from pydantic import Field, field_validator, model_validator

from flowport.base.errors import ConfigError, FlowportError, SourceError
from flowport.connectors import BatchedRecords, RecordError, SourceItem, SourceRecord
from flowport.connectors._keys import KeyedSourceConfig
from flowport.connectors._sql_text import check_read_only_query, escape_bind_markers

if TYPE_CHECKING:
    # SQLAlchemy is imported where a SQL source is opened, not with the job-file models:
    # it is a fifth of the CLI's start-up time, which jobs without a SQL source need not pay.
    import sqlalchemy as sa
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["SqlSource", "SqlSourceConfig", "iso_duration", "parse_table_name"]

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
}
#: How long closing a cursor, connection or engine may take once a read ends or is cancelled.
_CLEANUP_SECONDS = 10.0
_QUERY_ALIAS = "flowport_query"
_T = TypeVar("_T")


def parse_table_name(text: str) -> tuple[str | None, str]:
    """``Album`` -> (None, "Album"); ``s.Album`` or ``"my.schema"."Album"`` -> (schema, name)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    was_quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if quoted:
            if char == '"' and text[index + 1 : index + 2] == '"':
                current.append('"')
                index += 1
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"' and not current and not was_quoted:
            quoted = was_quoted = True
        elif char == ".":
            parts.append("".join(current))
            current, was_quoted = [], False
        elif was_quoted:
            raise ValueError(f"unexpected {char!r} after a quoted part in table name {text!r}")
        else:
            current.append(char)
        index += 1
    if quoted:
        raise ValueError(f"unterminated quote in table name {text!r}")
    parts.append("".join(current))
    if any(not part.strip() for part in parts) or len(parts) > 2:
        raise ValueError(f"table must be 'table' or 'schema.table', got {text!r}")
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


class SqlSourceConfig(KeyedSourceConfig):
    """A database table or SELECT whose rows become items."""

    type: Literal["sql"] = "sql"
    url_env: str | None = Field(
        default=None,
        description=(
            "Name of the environment variable holding the database URL, e.g. CHINOOK_URL "
            "(postgresql://user:pass@host/db, mysql://..., sqlite:///file.db)."
        ),
    )
    url_file: Path | None = Field(
        default=None,
        description="A file holding the database URL on its first line; relative to the job file.",
    )
    table: str | None = Field(
        default=None,
        description=(
            "The table (or view) to read, as written, case included: 'Album', 'public.Album', "
            '\'"my.schema"."Album"\'. Give either table or query.'
        ),
    )
    query: str | None = Field(
        default=None,
        description="A SELECT (or WITH ... SELECT) statement to read. Give either table or query.",
    )
    cursor_column: str | None = Field(
        default=None,
        description=(
            "A column that grows when a row changes (updated_at, a version number); enables "
            "incremental reads of rows past the last cursor seen."
        ),
    )
    binary: Literal["base64", "refuse"] = Field(
        default="base64",
        description="Binary values become base64 text, or make their row a per-item error.",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Rows fetched per round trip (yield_per)."
    )
    connect_timeout_seconds: float = Field(
        default=15.0, gt=0, le=600, description="How long to wait for the database to answer."
    )

    @field_validator("table")
    @classmethod
    def _table_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_table_name(value)
        return value

    @field_validator("query")
    @classmethod
    def _query_is_one_select(cls, value: str | None) -> str | None:
        if value is None:
            return None
        statement = value.strip().rstrip(";").strip()
        check_read_only_query(statement)
        return statement

    @model_validator(mode="after")
    def _one_of_each(self) -> SqlSourceConfig:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give exactly one of url_env (an env var name) or url_file")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (self.key,) if isinstance(self.key, str) else self.key

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> SqlSource:
        return SqlSource(
            url=_async_url(self._read_url(base_dir, env), base_dir),
            table=parse_table_name(self.table) if self.table is not None else None,
            query=self.query,
            key_columns=self.key_columns,
            key_separator=self.key_separator,
            cursor_column=self.cursor_column,
            binary=self.binary,
            batch_size=self.batch_size,
            connect_timeout_seconds=self.connect_timeout_seconds,
        )

    def _read_url(self, base_dir: Path, env: Mapping[str, str]) -> URL:
        if self.url_env is not None:
            raw = env.get(self.url_env, "").strip()
            if not raw:
                raise ConfigError(
                    f"the environment variable {self.url_env} is not set or empty",
                    key="url_env",
                    fix=f"export {self.url_env}='postgresql://user:password@host/database'",
                )
            origin = f"the environment variable {self.url_env}"
        else:
            assert self.url_file is not None
            path = self.url_file if self.url_file.is_absolute() else base_dir / self.url_file
            try:
                lines = path.read_text(encoding="utf-8").strip().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"cannot read the URL file {path}: {exc}", key="url_file"
                ) from None
            raw = lines[0].strip() if lines else ""
            origin = f"the file {path}"
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(raw)
        except ArgumentError:
            # SQLAlchemy's message repeats the URL, password included: say where it came from.
            raise ConfigError(
                f"{origin} does not hold a database URL",
                fix="write it as backend://user:password@host:port/database",
            ) from None


def _async_url(url: URL, base_dir: Path) -> URL:
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(
            f"unsupported database {backend!r}: flowport reads sqlite, postgresql, mysql, mariadb",
            key="url",
        )
    url = url.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        if not database.is_absolute():
            url = url.set(database=str(base_dir / database))
    return url


def _scrub(text: str, url: URL) -> str:
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def _describe(exc: BaseException, url: URL) -> str:
    # A DBAPIError's text carries the whole statement and its parameters; the driver's own
    # message is the part that says what went wrong.
    original = getattr(exc, "orig", None)
    cause = original if isinstance(original, BaseException) else exc
    message = str(cause).strip() or type(cause).__name__
    return _scrub(f"{type(cause).__name__}: {message}", url)


@functools.cache
def _read_errors() -> tuple[type[BaseException], ...]:
    """What a failed read raises: SQLAlchemy's errors, and the drivers' own, which SQLAlchemy's
    asyncio adapters let through unwrapped from a server-side cursor's fetches (asyncpg's
    ReadOnlySQLTransactionError from the first fetch of a query calling nextval(), for one)."""
    import sqlite3

    import aiomysql
    import asyncpg
    from sqlalchemy.exc import SQLAlchemyError

    return (
        SQLAlchemyError,
        OSError,
        TimeoutError,
        sqlite3.Error,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        aiomysql.MySQLError,
    )


class _Unconvertible(Exception):
    pass


def _json_value(value: Any, binary: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        if binary == "refuse":
            raise _Unconvertible("binary data (the job sets binary = 'refuse')")
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, enum.Enum):
        return _json_value(value.value, binary)
    if isinstance(value, Mapping):
        return {str(key): _json_value(item, binary) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item, binary) for item in value]
    raise _Unconvertible(f"a value of type {type(value).__module__}.{type(value).__qualname__}")


def iso_duration(value: dt.timedelta) -> str:
    """``P1DT7200S``: an interval as ISO 8601, the way every source writes one."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    seconds = value.seconds + value.microseconds / 1_000_000
    return f"{sign}P{value.days}DT{seconds:g}S"


def _since_value(since: str, sample: Any, column: str) -> Any:
    """Read ``since`` back as the type the cursor column holds, so the database compares it."""
    try:
        if isinstance(sample, bool):
            raise _Unconvertible("bool")
        if isinstance(sample, int):
            return int(since)
        if isinstance(sample, decimal.Decimal):
            return decimal.Decimal(since)
        if isinstance(sample, float):
            return float(since)
        if isinstance(sample, dt.datetime):
            moment = dt.datetime.fromisoformat(since)
            if (moment.tzinfo is None) != (sample.tzinfo is None):
                raise ValueError("one has a UTC offset and the other has none")
            return moment
        if isinstance(sample, dt.date):
            return dt.date.fromisoformat(since)
        if isinstance(sample, dt.time):
            return dt.time.fromisoformat(since)
        if isinstance(sample, str):
            return since
        raise _Unconvertible(type(sample).__name__)
    except _Unconvertible as exc:
        raise ConfigError(
            f"cursor_column {column!r} holds {exc} values, which cannot order incremental reads",
            key="cursor_column",
        ) from None
    except (ValueError, decimal.InvalidOperation) as exc:
        raise ConfigError(
            f"since={since!r} does not read as a {type(sample).__name__} like the values of "
            f"cursor_column {column!r}: {exc}"
        ) from None


class SqlSource(BatchedRecords):
    """Reads one table or query; see the module docstring for what it decides."""

    def __init__(
        self,
        *,
        url: URL,
        table: tuple[str | None, str] | None = None,
        query: str | None = None,
        key_columns: tuple[str, ...],
        key_separator: str = ":",
        cursor_column: str | None = None,
        binary: Literal["base64", "refuse"] = "base64",
        batch_size: int = 1000,
        connect_timeout_seconds: float = 15.0,
    ) -> None:
        if (table is None) == (query is None):
            raise ConfigError("give exactly one of table or query")
        self._url = url
        self._table = table
        self._query = query
        self._key_columns = key_columns
        self._key_separator = key_separator
        self._cursor_column = cursor_column
        self._binary = binary
        self._batch_size = batch_size
        self._connect_timeout = connect_timeout_seconds

    @property
    def name(self) -> str:
        where = self._url.set(query={}).render_as_string(hide_password=True)
        if self._table is not None:
            schema, table = self._table
            what = f"{schema}.{table}" if schema else table
        else:
            what = "query"
        return f"sql:{where}#{what}"

    @property
    def incremental(self) -> bool:
        return self._cursor_column is not None

    def __repr__(self) -> str:
        return f"SqlSource({self.name!r})"

    async def record_batches(
        self, since: str | None = None
    ) -> AsyncGenerator[list[SourceItem], None]:
        """The rows ``records()`` yields, one list per fetch from the server-side cursor."""
        if since is not None and self._cursor_column is None:
            raise ConfigError(
                f"{self.name} cannot read incrementally: it has no cursor_column",
                key="cursor_column",
                fix="name a column that grows when a row changes, e.g. updated_at",
            )
        async with self._read_only_connection() as connection:
            statement = await self._run("prepare the read", self._statement(connection, since))
            if statement is None:
                return
            result = await self._run("run the read", connection.stream(statement))
            try:
                async for batch in self._batches(result):
                    yield batch
            finally:
                with anyio.move_on_after(_CLEANUP_SECONDS, shield=True):
                    await result.close()

    async def estimated_total(self, since: str | None = None) -> int | None:
        """How many rows the read will yield, counted by the database."""
        import sqlalchemy as sa

        async with self._read_only_connection() as connection:
            statement = await self._run("prepare the count", self._statement(connection, since))
            if statement is None:
                return 0
            if not isinstance(statement, sa.Select):
                statement = sa.select(sa.literal_column("*")).select_from(
                    self._query_clause().columns().subquery(_QUERY_ALIAS)
                )
            counted = sa.select(sa.func.count()).select_from(
                statement.order_by(None).subquery("flowport_count")
            )
            total = await self._run("count the rows", connection.execute(counted))
            return int(total.scalar_one())

    @contextlib.asynccontextmanager
    async def _read_only_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read-only transaction, closed (with its engine) however the
        read ends, a cancellation included."""
        await self._check_sqlite_file()
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        engine = create_async_engine(
            self._url, poolclass=NullPool, connect_args=self._connect_args()
        )
        try:
            connection = await self._run("connect", engine.connect())
            try:
                await self._run("start a read-only transaction", self._read_only(connection))
                yield connection
            finally:
                with anyio.move_on_after(_CLEANUP_SECONDS, shield=True):
                    await connection.close()
        finally:
            with anyio.move_on_after(_CLEANUP_SECONDS, shield=True):
                await engine.dispose()

    async def _run(self, doing: str, step: Awaitable[_T]) -> _T:
        try:
            return await step
        except FlowportError:
            raise
        except _read_errors() as exc:
            raise SourceError(f"{self.name}: cannot {doing}: {_describe(exc, self._url)}") from None

    async def _check_sqlite_file(self) -> None:
        # SQLite creates a missing file on connect: refuse before it does, it is surely a typo.
        database = self._url.database
        if self._url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return
        if not await anyio.Path(database).is_file():
            raise SourceError(f"{self.name}: the SQLite file {database} does not exist")

    def _connect_args(self) -> dict[str, Any]:
        backend = self._url.get_backend_name()
        if backend == "postgresql":
            return {"timeout": self._connect_timeout}
        if backend in ("mysql", "mariadb"):
            return {"connect_timeout": self._connect_timeout}
        return {}

    async def _read_only(self, connection: AsyncConnection) -> None:
        dialect = connection.dialect.name
        if dialect == "sqlite":
            await connection.exec_driver_sql("PRAGMA query_only = ON")
        elif dialect == "postgresql":
            await connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif dialect in ("mysql", "mariadb"):
            await connection.exec_driver_sql("START TRANSACTION READ ONLY")

    def _from_clause(self) -> sa.FromClause:
        import sqlalchemy as sa
        from sqlalchemy.sql.elements import quoted_name

        if self._table is not None:
            schema, table = self._table
            return sa.table(
                quoted_name(table, quote=True),
                schema=quoted_name(schema, quote=True) if schema else None,
            )
        return self._query_clause().columns().subquery(_QUERY_ALIAS)

    def _query_clause(self) -> sa.TextClause:
        import sqlalchemy as sa

        assert self._query is not None
        # The newline ends a "-- comment" closing the query, which would otherwise swallow the
        # ")" of the subquery the query is wrapped in.
        return sa.text(escape_bind_markers(self._query) + "\n")

    async def _statement(
        self, connection: AsyncConnection, since: str | None
    ) -> sa.Executable | None:
        import sqlalchemy as sa

        options = {"yield_per": self._batch_size}
        if self._query is not None and self._cursor_column is None:
            return self._query_clause().execution_options(**options)
        source = self._from_clause()
        order = [_column(name) for name in self._key_columns]
        statement: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(source)
        if self._cursor_column is not None:
            cursor = _column(self._cursor_column)
            order.insert(0, cursor)
            if since is not None:
                probe = sa.select(cursor).select_from(source).where(cursor.is_not(None)).limit(1)
                sample = (await connection.execute(probe)).scalar()
                if sample is None:
                    return None
                threshold = _since_value(since, sample, self._cursor_column)
                statement = statement.where(cursor >= sa.bindparam("since", threshold))
        return statement.order_by(*order).execution_options(**options)

    async def _batches(self, result: Any) -> AsyncIterator[list[SourceItem]]:
        columns = list(result.keys())
        self._require_columns(columns)
        key_indices = [columns.index(name) for name in self._key_columns]
        cursor_index = (
            columns.index(self._cursor_column) if self._cursor_column is not None else None
        )
        row_number = 0
        # The size is given here, not only as the statement's yield_per: SQLAlchemy applies
        # yield_per to compiled SELECTs but not to text(), so a query read without a cursor
        # column came back whole, server-side cursor or not. Its docs: "a specific partition
        # size should be passed to Result.partitions() to avoid fetching the entire result"
        # (Core, "Using Server Side Cursors (a.k.a. stream results)").
        partitions = result.partitions(self._batch_size)
        while True:
            try:
                rows = await anext(partitions)
            except StopAsyncIteration:
                return
            except _read_errors() as exc:
                raise SourceError(
                    f"{self.name}: reading stopped after row {row_number}: "
                    f"{_describe(exc, self._url)}"
                ) from None
            batch: list[SourceItem] = []
            for row in rows:
                row_number += 1
                batch.append(self._to_item(row, row_number, columns, key_indices, cursor_index))
            if batch:
                yield batch

    def _require_columns(self, columns: Sequence[str]) -> None:
        wanted = [*self._key_columns]
        if self._cursor_column is not None:
            wanted.append(self._cursor_column)
        for name in wanted:
            if name not in columns:
                raise SourceError(
                    f"{self.name}: column {name!r} is not in the result. "
                    f"Columns found: {', '.join(repr(column) for column in columns)}"
                )

    def _to_item(
        self,
        row: Sequence[Any],
        row_number: int,
        columns: list[str],
        key_indices: list[int],
        cursor_index: int | None,
    ) -> SourceItem:
        position = f"row {row_number}"
        parts: list[str] = []
        for index in key_indices:
            value = row[index]
            text = "" if value is None else str(_json_value(value, "base64"))
            if not text:
                state = "NULL" if value is None else "empty"
                return RecordError(
                    key=position,
                    reason=f"the key column {columns[index]!r} is {state}",
                    position=position,
                )
            parts.append(text)
        key = self._key_separator.join(parts)
        fields: dict[str, Any] = {}
        for name, value in zip(columns, row, strict=True):
            try:
                fields[name] = _json_value(value, self._binary)
            except _Unconvertible as exc:
                return RecordError(
                    key=key, reason=f"column {name!r} holds {exc}", position=position
                )
        cursor = None
        if cursor_index is not None and row[cursor_index] is not None:
            cursor = str(fields[columns[cursor_index]])
        return SourceRecord(key=key, fields=fields, cursor=cursor, position=position)


def _column(name: str) -> sa.ColumnClause[Any]:
    import sqlalchemy as sa
    from sqlalchemy.sql.elements import quoted_name

    return sa.column(quoted_name(name, quote=True))
