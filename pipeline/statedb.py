"""The checkpoint log's two engines behind one connection: SQLite (the embedded default) and
PostgreSQL (state shared by many machines).

The log's SQL is written once, in SQLite's dialect, and :func:`to_postgres` rewrites each
statement the first time it is seen (then cached): placeholders ``?`` become ``%s``,
``INSERT OR IGNORE`` an ``ON CONFLICT DO NOTHING``, ``json_each`` PostgreSQL's
``json_array_elements_text``, ``IS NOT`` (SQLite's null-safe comparison) ``IS DISTINCT FROM``,
``AUTOINCREMENT`` an identity column, ``temp.`` the session's ``pg_temp`` schema; ``INDEXED BY``
hints and ``WITHOUT ROWID`` are SQLite's only and go. The few statements whose meaning differs
more than their spelling (one ``INSERT … SELECT`` that meets the same key twice) are written for
each engine where they stand, asking :func:`is_postgres`.

:class:`PostgresConnection` answers the part of :class:`sqlite3.Connection` the log uses
(``execute``, ``executemany``, ``in_transaction``, ``close``), synchronously through psycopg 3:
the runner calls the log from the event loop, and a round trip to a nearby server costs
100-200 µs, less than a hop to a thread and back. It runs in autocommit mode, so that the
log's own ``BEGIN`` … ``COMMIT`` make its transactions exactly as they do on SQLite.

Every text that names the database passes through :func:`display_url`: user, host, port and
database, never a password.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    import psycopg

# psycopg is imported where a PostgreSQL log is used, not here: importing it costs about
# 0.18 s of CPU, which every run with a SQLite log (the default) paid for nothing.

from flowport.base.errors import FatalError
from flowport.pipeline.logging import redact

__all__ = [
    "KEEPALIVE_COUNT",
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "PostgresConnection",
    "StateConnection",
    "StateRows",
    "StateUnavailable",
    "connect_postgres",
    "display_url",
    "is_postgres",
    "job_schema",
    "to_postgres",
]

#: TCP keepalive on both ends of every connection, in seconds: a machine that vanishes (power,
#: network) without closing its connection is found dead after idle + interval * count, about
#: 25 s, and PostgreSQL then ends its session, which releases its lock. Without them Linux
#: waits two hours before the first probe.
KEEPALIVE_IDLE: Final = 10
KEEPALIVE_INTERVAL: Final = 5
KEEPALIVE_COUNT: Final = 3
#: Seconds to wait for the server before giving up on a connection.
CONNECT_TIMEOUT: Final = 10


class StateRows(Protocol):
    """What a statement answers: a sqlite3 cursor or a psycopg one."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class StateConnection(Protocol):
    """The part of a :class:`sqlite3.Connection` the checkpoint log uses."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> StateRows: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object: ...

    def close(self) -> None: ...


class StateUnavailable(FatalError):
    """The state database could not be reached, or the connection to it was lost."""


def display_url(url: str) -> str:
    """``postgresql://user@host:port/database``: the URL with no password and no options, for
    every message that names the database."""
    import psycopg

    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(a URL that does not parse)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname', '')}"


def job_schema(job_id: str) -> str:
    """The PostgreSQL schema holding one job's state: ``flowport_<slug>_<hash>``. The slug makes
    it recognisable in ``\\dn``; the hash of the whole id keeps two ids that slug alike apart.
    At most 63 characters, PostgreSQL's limit for a name, and never in need of quoting."""
    slug = re.sub(r"[^a-z0-9]+", "_", job_id.lower()).strip("_")[:30] or "job"
    digest = hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:12]
    return f"flowport_{slug}_{digest}"


def connect_postgres(url: str, *, schema: str | None, purpose: str) -> psycopg.Connection[Any]:
    """An autocommit connection whose search path is the job's schema (the schema may not exist
    yet), with keepalives on both ends. ``pg_stat_activity`` shows it as ``flowport <purpose>``
    (which says whose it is). Raises :class:`StateUnavailable` with the redacted URL."""
    options = (
        f"-c tcp_keepalives_idle={KEEPALIVE_IDLE} "
        f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL} "
        f"-c tcp_keepalives_count={KEEPALIVE_COUNT}"
    )
    if schema is not None:
        options += f" -c search_path={schema}"
    import psycopg

    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            # PostgreSQL keeps 63 bytes of it.
            application_name=f"flowport {purpose}"[:63],
            options=options,
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE,
            keepalives_interval=KEEPALIVE_INTERVAL,
            keepalives_count=KEEPALIVE_COUNT,
        )
    except psycopg.Error as exc:
        raise StateUnavailable(
            f"cannot connect to the state database {display_url(url)}: {_reason(exc)}"
        ) from None


def _reason(exc: BaseException) -> str:
    # libpq's message may quote the connection string's host but never its password; the
    # registered secrets are masked all the same.
    return redact(" ".join(str(exc).split()) or type(exc).__name__)


class PostgresConnection:
    """A psycopg connection that takes the log's SQLite-dialect statements (see the module)."""

    __slots__ = ("_raw", "where")

    def __init__(self, raw: psycopg.Connection[Any], where: str) -> None:
        self._raw = raw
        #: The database as messages name it (:func:`display_url` and the schema).
        self.where = where

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._raw.info.transaction_status is not TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        if any(type(value) is bytes for value in parameters):
            # The log passes JSON as UTF-8 bytes to SQLite; psycopg would send them as bytea.
            parameters = [v.decode() if type(v) is bytes else v for v in parameters]
        import psycopg

        try:
            return self._raw.execute(to_postgres(sql), parameters)
        except psycopg.OperationalError as exc:
            raise self._lost(exc) from None

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object:
        # psycopg 3 sends the rows in pipeline mode: one round trip, not one per row.
        import psycopg

        try:
            with self._raw.cursor() as cursor:
                cursor.executemany(to_postgres(sql), parameters)
        except psycopg.OperationalError as exc:
            raise self._lost(exc) from None
        return None

    def close(self) -> None:
        self._raw.close()

    def _lost(self, exc: psycopg.OperationalError) -> StateUnavailable:
        return StateUnavailable(f"the state database {self.where} failed: {_reason(exc)}")


def is_postgres(connection: StateConnection) -> bool:
    return isinstance(connection, PostgresConnection)


_REWRITES: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\bINDEXED BY \w+ ", ""),
        (r"\s*\bWITHOUT ROWID\b", ""),
        (r"\bBEGIN IMMEDIATE\b", "BEGIN"),
        (r"\btemp\.", "pg_temp."),
        (r"\bINSERT OR IGNORE\b", "INSERT"),
        (r"\bIS NOT (?!NULL\b)", "IS DISTINCT FROM "),
        (r"\bsubstr\(([\w.]+), -(\d+)\)", r"right(\1, \2)"),
        (r"\bjson_each\(\?\) AS (\w+)", r"json_array_elements_text(?::json) AS \1(value)"),
        (r"\bjson_each\(\?\)", "json_array_elements_text(?::json) AS each(value)"),
        (r"\bjson_group_array\(json_array\(", "json_agg(json_build_array("),
        (
            r"\bINTEGER PRIMARY KEY(?: AUTOINCREMENT)?",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        ),
        (r"\bADD COLUMN (?!IF NOT EXISTS)", "ADD COLUMN IF NOT EXISTS "),
        (r"%", "%%"),
        (r"\?", "%s"),
    )
)
#: Text columns compare byte by byte, as in SQLite: the log's keyset pages and its listings
#: (``ORDER BY key``) then come out in the same order on both engines, whatever the database's
#: locale.
_TEXT_COLUMN: Final = re.compile(r"\bTEXT\b")
_CREATES_TABLE: Final = re.compile(r"^\s*CREATE (?:TEMP )?TABLE", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def to_postgres(sql: str) -> str:
    """One statement of the log, rewritten for PostgreSQL (see the module)."""
    ignores = "INSERT OR IGNORE" in sql
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    if ignores:
        sql += " ON CONFLICT DO NOTHING"
    if _CREATES_TABLE.match(sql):
        sql = _TEXT_COLUMN.sub('TEXT COLLATE "C"', sql)
    return sql
