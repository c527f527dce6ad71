"""The checkpoint log: what each source record became in Webflow, kept in one SQLite file
beside the job, or in one PostgreSQL schema per job (see :mod:`flowport.pipeline.statedb`).

The log is the only memory a run has of the ones before it. Its rules:

* A row is written only after Webflow acknowledged the write (``record_acknowledged``), per item,
  because batches finish out of order.
* Before a create is sent its *intent* is recorded: one row per batch in ``intents`` (each item's
  key, slug and content hash), which makes those items state ``sending``. An intent left by a
  killed run means "the creates may have landed": they are reconciled by reading Webflow back,
  never by sending again blindly. An intent is settled (removed) once every item in it is
  acknowledged, refused, or read back as missing; acknowledged items are never ``sending``.
* Every call is one short transaction (``executemany`` for batches), or joins the caller's
  :meth:`CheckpointLog.transaction`. WAL with ``synchronous=NORMAL`` loses nothing committed
  when the process is killed (what we guard against); only a power cut may drop the last few
  commits, which the next run reconciles or resends. PostgreSQL commits durably as it is
  configured (``synchronous_commit``), and a killed client's open transaction is rolled back.
* The calls are synchronous and fast (a few hundred µs), so the runner makes them straight from the
  event loop rather than paying for a thread hop. On PostgreSQL each statement is a round trip
  and each commit waits for the server's WAL flush: a batch's two commits cost a few ms
  (README, "State backends"), still small beside a request to Webflow.
* No secret is stored: error texts pass through :func:`flowport.pipeline.logging.redact` first.

Item states::

    sending  in an intent, outcome unknown until acknowledged (no item row of its own)
    staged   exists in Webflow, awaiting publish
    done     acknowledged and, where the mode asks, published
    failed   a per-item error; retried next run
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import orjson

from flowport.base.errors import FatalError
from flowport.pipeline.logging import redact
from flowport.pipeline.statedb import (
    PostgresConnection,
    StateConnection,
    connect_postgres,
    display_url,
    is_postgres,
)

__all__ = [
    "EXCERPT_CHARS",
    "FINGERPRINT_CHARS",
    "SCHEMA_VERSION",
    "Acknowledged",
    "AssetRow",
    "AssetRows",
    "BatchRecord",
    "Batches",
    "CheckpointLog",
    "ChunkCheck",
    "CollectionBindings",
    "DeferredReferences",
    "Intents",
    "ItemFailure",
    "ItemState",
    "ItemWarning",
    "ItemWarnings",
    "Items",
    "RunHistory",
    "RunScratch",
    "State",
    "WebflowEdits",
]

State = Literal["sending", "staged", "done", "failed", "archived", "unpublished"]
STATES: Final = ("sending", "staged", "done", "failed", "archived", "unpublished")

SCHEMA_VERSION: Final = 8

#: Keys per ``IN (...)`` query: well under SQLite's historical limit of 999 bound variables.
LOOKUP_CHUNK: Final = 500
#: RETURNING arrived in SQLite 3.35 (2021); json_each is built in since 3.38 and was usual before.
MIN_SQLITE: Final = (3, 35, 0)
#: Characters of a source fingerprint (a 16-byte digest in hex), as ``check_chunk`` expects.
FINGERPRINT_CHARS: Final = 32
#: Rows fetched per page when streaming, so writes can interleave with a long read.
STREAM_PAGE: Final = 500

_SCHEMA_V1: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    collection TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    http_status INTEGER,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS batches_run ON batches (run_id);
CREATE TABLE IF NOT EXISTS items (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    webflow_id TEXT,
    slug TEXT,
    content_hash TEXT,
    state TEXT NOT NULL CHECK (
        state IN ('sending', 'staged', 'done', 'failed', 'archived', 'unpublished')
    ),
    last_error TEXT,
    error_field TEXT,
    error_kind TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    batch_id INTEGER,
    first_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_slug ON items (collection, slug);
CREATE INDEX IF NOT EXISTS items_state ON items (collection, state);
CREATE INDEX IF NOT EXISTS items_webflow_id ON items (collection, webflow_id);
CREATE TABLE IF NOT EXISTS cursors (
    collection TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    webflow_id TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

#: Index i upgrades a database at schema version i to version i + 1.
#: A fingerprint of the source record an item was last written from: a rerun whose record is
#: the same skips mapping it again.
_SCHEMA_V2 = "ALTER TABLE items ADD COLUMN source_hash TEXT"

#: Creates in flight are recorded one row per batch (the intent), not one row per item, so an
#: acknowledged create costs one row write instead of two; rows left 'sending' by an older
#: flowport become intents. Indexes on state and Webflow id leave out the rows they never serve
#: (done items, items not in Webflow), which most writes then skip.
_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS intents (
    batch_id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    items TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO intents (batch_id, collection, items, created_at)
    SELECT batch_id, collection, json_group_array(json_array(key, slug, content_hash)),
        min(updated_at)
    FROM items WHERE state = 'sending' GROUP BY batch_id, collection;
DELETE FROM items WHERE state = 'sending';
DROP INDEX IF EXISTS items_state;
CREATE INDEX items_state ON items (collection, state) WHERE state <> 'done';
DROP INDEX IF EXISTS items_webflow_id;
CREATE INDEX items_webflow_id ON items (collection, webflow_id) WHERE webflow_id IS NOT NULL
"""

#: The items table again, with its check on ``state`` written as comparisons: SQLite checks an
#: ``IN (...)`` list by building a temporary index of the list for every row written, which
#: cost more than the row itself (2 µs of ~5 µs an acknowledged item).
_SCHEMA_V4 = """
CREATE TABLE items_v4 (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    webflow_id TEXT,
    slug TEXT,
    content_hash TEXT,
    state TEXT NOT NULL CHECK (
        state = 'done' OR state = 'staged' OR state = 'failed' OR state = 'sending'
        OR state = 'archived' OR state = 'unpublished'
    ),
    last_error TEXT,
    error_field TEXT,
    error_kind TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    batch_id INTEGER,
    first_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    source_hash TEXT,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
INSERT INTO items_v4 (collection, key, webflow_id, slug, content_hash, state, last_error,
        error_field, error_kind, attempts, batch_id, first_seen, updated_at, source_hash)
    SELECT collection, key, webflow_id, slug, content_hash, state, last_error, error_field,
        error_kind, attempts, batch_id, first_seen, updated_at, source_hash
    FROM items;
DROP TABLE items;
ALTER TABLE items_v4 RENAME TO items;
CREATE INDEX items_slug ON items (collection, slug);
CREATE INDEX items_state ON items (collection, state) WHERE state <> 'done';
CREATE INDEX items_webflow_id ON items (collection, webflow_id) WHERE webflow_id IS NOT NULL
"""

#: What mapping or reading changed in each record (a rewritten embed, a fallback codec), so a
#: user can act on it item by item; a record's rows are replaced whenever it is mapped again.
_SCHEMA_V5 = """
CREATE TABLE IF NOT EXISTS warnings (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    field TEXT,
    kind TEXT NOT NULL,
    excerpt TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (collection, key, seq)
) WITHOUT ROWID
"""

#: The Webflow site each collection was written to, beside the collection's id: a log whose
#: site or collection changed (a recreated collection, the same job file pointed at another
#: site) must not count its ``done`` items as present there. Logs from before leave it NULL:
#: the next run records it. The table is rebuilt rather than altered, in the way of schema 4.
_SCHEMA_V6 = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    webflow_id TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE collections_v6 (
    name TEXT PRIMARY KEY,
    webflow_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    site_id TEXT
);
INSERT INTO collections_v6 (name, webflow_id, updated_at)
    SELECT name, webflow_id, updated_at FROM collections;
DROP TABLE collections;
ALTER TABLE collections_v6 RENAME TO collections
"""

#: What guards an editor's work in Webflow (issue 13): per item, Webflow's ``lastUpdated`` from
#: the answer to flowport's last write of it, a hash of each field it wrote (which fields the
#: source changed since, for ``conflicts = "merge"``; which ones the editor changed), and the
#: edit someone else made since (Webflow's ``lastUpdated`` of it and the fields, as JSON), kept
#: until flowport writes the item again. Per collection, the newest ``lastUpdated`` the last
#: check met (where the next one starts listing) and the one the first check met (the stand-in
#: for items written before this schema). Webflow's timestamps are only compared with Webflow's.
_SCHEMA_V7 = """
ALTER TABLE items ADD COLUMN webflow_updated TEXT;
ALTER TABLE items ADD COLUMN field_hashes TEXT;
ALTER TABLE items ADD COLUMN webflow_edit TEXT;
CREATE TABLE IF NOT EXISTS edit_horizons (
    collection TEXT PRIMARY KEY,
    horizon TEXT NOT NULL,
    baseline TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""

#: Media moved into the site's assets (issue 15): one row per site and file content (SHA-256),
#: its state ``intent`` (committed before the create leaves), ``created`` (Webflow answered the
#: create; the upload to storage may not have landed), ``uploaded`` or ``failed``; and which
#: source URL gave which content, so a rerun fetches nothing it already moved. Rows are per
#: site: a log pointed at another site does not reuse assets that are not there.
_SCHEMA_V8 = """
CREATE TABLE IF NOT EXISTS assets (
    site_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    source_url TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state = 'intent' OR state = 'created' OR state = 'uploaded'
        OR state = 'failed'),
    asset_id TEXT,
    hosted_url TEXT,
    failure_kind TEXT,
    detail TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (site_id, sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS assets_pending ON assets (site_id, state) WHERE state <> 'uploaded';
CREATE TABLE IF NOT EXISTS asset_sources (
    site_id TEXT NOT NULL,
    source_url TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (site_id, source_url)
) WITHOUT ROWID
"""

_MIGRATIONS: Final[tuple[str, ...]] = (
    _SCHEMA_V1,
    _SCHEMA_V2,
    _SCHEMA_V3,
    _SCHEMA_V4,
    _SCHEMA_V5,
    _SCHEMA_V6,
    _SCHEMA_V7,
    _SCHEMA_V8,
)

#: Characters of a warning's message kept in the log: enough to find the spot, not a copy of
#: the body.
EXCERPT_CHARS: Final = 200

_ITEM_COLUMNS: Final = (
    "collection, key, webflow_id, slug, content_hash, state, last_error, error_field, "
    "error_kind, attempts, batch_id, updated_at, source_hash, webflow_updated, field_hashes, "
    "webflow_edit"
)


_ACKNOWLEDGED_COLUMNS: Final = (
    "collection, key, webflow_id, slug, content_hash, state, attempts, batch_id, first_seen, "
    "updated_at, source_hash, webflow_updated, field_hashes"
)
#: An acknowledged item's fields as :meth:`Items.record_acknowledged` passes them.
_ACKNOWLEDGED_FIELDS: Final = (
    "key", "webflow_id", "slug", "content_hash", "state", "source_hash", "webflow_updated",
    "field_hashes",
)  # fmt: skip
_ACKNOWLEDGED_UPSERT: Final = (
    # The old row's columns are named with the table's name: PostgreSQL finds a bare name
    # ambiguous between it and ``excluded``.
    "ON CONFLICT (collection, key) DO UPDATE SET attempts = items.attempts + 1, "
    "webflow_id = excluded.webflow_id, slug = excluded.slug, "
    "content_hash = excluded.content_hash, state = excluded.state, "
    "source_hash = excluded.source_hash, "
    # A write of ours (its answer's lastUpdated) settles any edit made before it.
    "webflow_edit = CASE WHEN excluded.webflow_updated IS NULL THEN items.webflow_edit END, "
    "webflow_updated = coalesce(excluded.webflow_updated, items.webflow_updated), "
    "field_hashes = coalesce(excluded.field_hashes, items.field_hashes), "
    "last_error = NULL, error_field = NULL, error_kind = NULL, "
    "batch_id = excluded.batch_id, updated_at = excluded.updated_at"
)

#: Failure kinds that arise before anything is sent: they do not count as attempts.
_NEVER_SENT: Final = ("mapping", "source", "conflict", "media")


@dataclass(frozen=True, slots=True)
class ItemState:
    collection: str
    key: str
    webflow_id: str | None
    slug: str | None
    content_hash: str | None
    state: State
    last_error: str | None
    error_field: str | None
    error_kind: str | None
    attempts: int
    batch_id: int | None
    updated_at: str
    source_hash: str | None = None
    #: Webflow's ``lastUpdated`` in the answer to flowport's last write of the item.
    webflow_updated: str | None = None
    #: JSON: field slug (``cmsLocaleId/slug`` for a secondary locale) -> hash of the value
    #: flowport last wrote.
    field_hashes: str | None = None
    #: JSON ``{"at": lastUpdated, "fields": [...]}``: someone else changed the item in Webflow
    #: after flowport's last write of it.
    webflow_edit: str | None = None


@dataclass(frozen=True, slots=True)
class ItemWarning:
    """One thing reading or mapping a record changed or dropped: ``kind`` is the source's or
    the mapping's stable word (``encoding_fallback``, ``truncated``), ``excerpt`` its message."""

    key: str
    field: str | None
    kind: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class ChunkCheck:
    """What :meth:`RunScratch.check_chunk` found: keys read before this chunk, and the keys
    to map again, each with whether the log has a row for it."""

    repeated: set[str]
    changed: dict[str, bool]


# Not frozen: one is built per item written, and frozen doubles what that costs.
@dataclass(slots=True)
class Acknowledged:
    """Webflow confirmed this item: it exists with that id, slug and content."""

    key: str
    webflow_id: str
    slug: str
    content_hash: str
    state: Literal["staged", "done"]
    source_hash: str | None = None
    #: Webflow's ``lastUpdated`` in the write's answer (None: no write, or not said: kept).
    webflow_updated: str | None = None
    #: The written fields' hashes (None: not all fields were written: kept).
    field_hashes: str | None = None


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """A per-item error. ``kind`` is ``mapping``, ``validation``, ``publish``, ``source``,
    ``conflict``...; ``field`` is the Webflow field slug at fault, when known."""

    key: str
    field: str | None
    reason: str
    kind: str


class BatchRecord:
    """A batch of the log while it is open: what is recorded through it is kept, and written
    with the batch's close in one commit when its ``with`` block ends (see
    :meth:`CheckpointLog.batch`).

    Kept rather than written at once because the log's connection is shared by every worker:
    a transaction held open across a request would swallow the others' writes. The close's
    outcome follows from what was recorded: ``rejected`` or ``unknown`` when the request was
    refused or its answer lost, ``failed`` when only failures were recorded, ``partial`` when
    some items failed and some were acknowledged, ``ok`` otherwise, and ``aborted`` when the
    block ended on an exception (cancellation included).
    """

    __slots__ = ("_answer", "_failed", "_log", "_succeeded", "_writes", "collection", "detail",
                 "http_status", "id")  # fmt: skip

    def __init__(self, log: CheckpointLog, batch_id: int, collection: str) -> None:
        self._log = log
        self.id = batch_id
        self.collection = collection
        self.http_status: int | None = None
        self.detail: str | None = None
        self._answer: Literal["rejected", "unknown"] | None = None
        self._succeeded = False
        self._failed = False
        self._writes: list[Callable[[], None]] = []

    def acknowledge(self, items: Sequence[Acknowledged]) -> None:
        self._succeeded = True
        self._writes.append(
            functools.partial(self._log.items.record_acknowledged, self.collection, self.id, items)
        )

    def fail(self, failures: Sequence[ItemFailure]) -> None:
        self._failed = True
        self._writes.append(
            functools.partial(self._log.items.record_failures, self.collection, self.id, failures)
        )

    def mark_removed(self, keys: Sequence[str], state: Literal["archived", "unpublished"]) -> None:
        self._succeeded = True
        self._writes.append(
            functools.partial(self._log.items.mark_removed, self.collection, self.id, keys, state)
        )

    def forget(self, keys: Sequence[str]) -> None:
        self._succeeded = True
        self._writes.append(functools.partial(self._log.items.forget, self.collection, keys))
        # A deleted item's record is gone from the source: nothing is left to act on.
        self._writes.append(functools.partial(self._log.warnings.forget, self.collection, keys))

    def settle_intent(self, still_unknown: Sequence[tuple[str, str, str]] = ()) -> None:
        """This batch's own intent (see :meth:`Intents.settle`)."""
        self._writes.append(functools.partial(self._log.intents.settle, self.id, still_unknown))

    def settle_intents(self, batch_ids: Sequence[int]) -> None:
        """Intents of earlier batches of the collection, read back through this one."""
        self._writes.append(
            functools.partial(self._log.intents.settle_many, self.collection, batch_ids)
        )

    def rejected(self, detail: str, *, http_status: int | None = None) -> None:
        """Webflow refused the request whole."""
        self._answer = "rejected"
        self.detail, self.http_status = detail, http_status

    def unknown(self, detail: str, *, http_status: int | None = None) -> None:
        """The request's answer was lost: it may or may not have landed."""
        self._answer = "unknown"
        self.detail, self.http_status = detail, http_status

    def outcome(self, *, aborted: bool = False) -> str:
        if aborted:
            return "aborted"
        if self._answer is not None:
            return self._answer
        if self._failed:
            return "partial" if self._succeeded else "failed"
        return "ok"

    def _close(self, *, aborted: bool) -> None:
        for write in self._writes:
            write()
        self._writes.clear()
        self._log.batches.close(
            self.id,
            self.outcome(aborted=aborted),
            http_status=self.http_status,
            detail=self.detail,
        )


@dataclass(frozen=True, slots=True)
class DeferredReferences:
    """An item written without its references into a collection not written yet (a cycle, or
    itself): they are set by the second pass, by source key."""

    collection: str
    key: str
    target: str
    digest: str
    references: Mapping[str, tuple[str, ...]]
    source_hash: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _item(row: tuple[Any, ...]) -> ItemState:
    # The row's columns are _ITEM_COLUMNS, in ItemState's field order.
    return ItemState(*row)


_ADD_COLUMN: Final = re.compile(r"^\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE)


def _column_exists(db: StateConnection, statement: str) -> bool:
    """Whether ``statement`` adds a column the table has already (SQLite's ADD COLUMN has no
    IF NOT EXISTS; PostgreSQL's statement gets one): a log whose version was set back keeps its
    columns."""
    match = _ADD_COLUMN.match(statement)
    if match is None or is_postgres(db):
        return False
    table, column = match.groups()
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


def _has_table(db: StateConnection, name: str) -> bool:
    if is_postgres(db):
        # The search path holds the job's schema only (and pg_catalog, where no 'meta' is).
        row = db.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


def _create_private(path: Path) -> None:
    """Create (or tighten) a file readable by its owner only, before SQLite opens it."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _transaction(db: StateConnection) -> Iterator[None]:
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class _Part:
    """A share of the log's tables, on the connection its :class:`CheckpointLog` owns."""

    def __init__(self, db: StateConnection) -> None:
        self._db = db

    def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with _transaction(self._db):
            self._db.executemany(sql, rows)


class RunHistory(_Part):
    """The runs: when each began and ended, how, and its summary."""

    def begin(self) -> int:
        row = self._db.execute(
            "INSERT INTO runs (started_at) VALUES (?) RETURNING id", (_now(),)
        ).fetchone()
        return int(row[0])

    def finish(self, run_id: int, outcome: str, summary: Mapping[str, Any]) -> None:
        text = redact(json.dumps(dict(summary), default=str, sort_keys=True))
        self._db.execute(
            "UPDATE runs SET finished_at = ?, outcome = ?, summary = ? WHERE id = ?",
            (_now(), outcome, text, run_id),
        )

    def last(self) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT id, started_at, finished_at, outcome, summary FROM runs "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "started_at": row[1],
            "finished_at": row[2],
            "outcome": row[3],
            "summary": json.loads(row[4]) if row[4] else None,
        }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` runs, oldest first, each as :meth:`last` gives one (the run
        report's history)."""
        rows = self._db.execute(
            "SELECT id, started_at, finished_at, outcome, summary FROM runs "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {
                "id": row[0],
                "started_at": row[1],
                "finished_at": row[2],
                "outcome": row[3],
                "summary": json.loads(row[4]) if row[4] else None,
            }
            for row in reversed(rows)
        ]


class CollectionBindings(_Part):
    """Each job collection's Webflow collection id, and its incremental cursor."""

    def set_collection_id(self, collection: str, webflow_id: str) -> None:
        self._db.execute(
            "INSERT INTO collections (name, webflow_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET webflow_id = excluded.webflow_id, "
            "updated_at = excluded.updated_at",
            (collection, webflow_id, _now()),
        )

    def collection_id(self, collection: str) -> str | None:
        row = self._db.execute(
            "SELECT webflow_id FROM collections WHERE name = ?", (collection,)
        ).fetchone()
        return str(row[0]) if row else None

    def binding(self, collection: str) -> tuple[str, str | None] | None:
        """The Webflow collection id and site id (None before schema 5) it is bound to."""
        row = self._db.execute(
            "SELECT webflow_id, site_id FROM collections WHERE name = ?", (collection,)
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), (str(row[1]) if row[1] is not None else None)

    def bind_site(self, collections: Sequence[str], site_id: str) -> None:
        self._write_many(
            "UPDATE collections SET site_id = ? WHERE name = ?",
            [(site_id, name) for name in collections],
        )

    def cursor(self, collection: str) -> str | None:
        row = self._db.execute(
            "SELECT value FROM cursors WHERE collection = ?", (collection,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_cursor(self, collection: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO cursors (collection, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (collection) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (collection, value, _now()),
        )


class Batches(_Part):
    """The batches' rows. The engine opens and closes one with :meth:`CheckpointLog.batch`;
    :meth:`open` and :meth:`close` are what that is made of."""

    def open(self, run_id: int, collection: str, kind: str, size: int) -> int:
        row = self._db.execute(
            "INSERT INTO batches (run_id, collection, kind, size, started_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (run_id, collection, kind, size, _now()),
        ).fetchone()
        return int(row[0])

    def close(
        self,
        batch_id: int,
        outcome: str,
        *,
        http_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE batches SET finished_at = ?, outcome = ?, http_status = ?, detail = ? "
            "WHERE id = ?",
            (_now(), outcome, http_status, redact(detail) if detail else None, batch_id),
        )

    def list(self, run_id: int | None = None) -> Iterator[dict[str, Any]]:
        columns = (
            "id",
            "run_id",
            "collection",
            "kind",
            "size",
            "started_at",
            "finished_at",
            "outcome",
            "http_status",
            "detail",
        )
        where = "" if run_id is None else "AND run_id = ?"
        after = 0
        while True:
            params: tuple[Any, ...] = (after,) if run_id is None else (after, run_id)
            rows = self._db.execute(
                f"SELECT {', '.join(columns)} FROM batches WHERE id > ? {where} "
                f"ORDER BY id LIMIT {STREAM_PAGE}",
                params,
            ).fetchall()
            for row in rows:
                yield dict(zip(columns, row, strict=True))
            if len(rows) < STREAM_PAGE:
                return
            after = rows[-1][0]


class Intents(_Part):
    """Creates about to be sent, one row per batch, until each is settled (see the module's
    rules)."""

    def record(self, collection: str, batch_id: int, items: Sequence[tuple[str, str, str]]) -> None:
        """Record that these creates are about to be sent: ``(key, slug, content_hash)``.

        One row for the batch, committed before the request leaves: until the creates are
        settled (acknowledged, refused, or found missing), they are state ``sending``, and a
        run that finds them so reads Webflow back rather than sending them again blindly.
        """
        self._db.execute(
            "INSERT INTO intents (batch_id, collection, items, created_at) VALUES (?, ?, ?, ?)",
            (batch_id, collection, orjson.dumps(list(items)).decode(), _now()),
        )

    def settle(self, batch_id: int, still_unknown: Sequence[tuple[str, str, str]] = ()) -> None:
        """The batch's creates are accounted for (acknowledged, refused, or read back), except
        ``still_unknown``, which stay ``sending``."""
        if still_unknown:
            self._db.execute(
                "UPDATE intents SET items = ? WHERE batch_id = ?",
                (orjson.dumps(list(still_unknown)).decode(), batch_id),
            )
        else:
            self._db.execute("DELETE FROM intents WHERE batch_id = ?", (batch_id,))

    def settle_many(self, collection: str, batch_ids: Sequence[int]) -> None:
        self._write_many(
            "DELETE FROM intents WHERE collection = ? AND batch_id = ?",
            [(collection, batch_id) for batch_id in batch_ids],
        )

    def in_flight(self, collection: str) -> Iterator[ItemState]:
        """Creates whose intent was recorded and whose outcome was not: state ``sending``."""
        seen: set[str] = set()
        intents = self._db.execute(
            "SELECT batch_id, items, created_at FROM intents WHERE collection = ? "
            "ORDER BY batch_id",
            (collection,),
        ).fetchall()
        for batch_id, body, created_at in intents:
            entries = [entry for entry in orjson.loads(body) if entry[0] not in seen]
            acknowledged = self._acknowledged(collection, [entry[0] for entry in entries])
            for key, slug, content_hash in entries:
                if key in acknowledged:
                    continue
                seen.add(key)
                yield ItemState(
                    collection, key, None, slug, content_hash, "sending",
                    None, None, None, 0, batch_id, created_at,
                )  # fmt: skip

    def _acknowledged(self, collection: str, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(keys, LOOKUP_CHUNK):
            marks = ",".join("?" * len(chunk))
            found.update(
                str(row[0])
                for row in self._db.execute(
                    f"SELECT key FROM items WHERE collection = ? AND key IN ({marks}) "
                    "AND webflow_id IS NOT NULL",
                    (collection, *chunk),
                )
            )
        return found

    def collections(self) -> list[str]:
        """Collections with an intent left."""
        return [
            str(row[0])
            for row in self._db.execute(
                "SELECT DISTINCT collection FROM intents ORDER BY collection"
            ).fetchall()
        ]


class Items(_Part):
    """What each source record became: lookups, states, counts, and the acknowledged writes and
    per-item errors that change them."""

    def __init__(self, db: StateConnection, intents: Intents) -> None:
        super().__init__(db)
        # Items in flight (state ``sending``) live in the intents, not in the items table.
        self._intents = intents

    def lookup(self, collection: str, keys: Sequence[str]) -> dict[str, ItemState]:
        found: dict[str, ItemState] = {}
        for chunk in _chunks(keys, LOOKUP_CHUNK):
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE collection = ? AND key IN ({marks})",
                (collection, *chunk),
            ):
                found[row[1]] = _item(row)
        return found

    def by_webflow_ids(self, collection: str, ids: Sequence[str]) -> dict[str, ItemState]:
        found: dict[str, ItemState] = {}
        for chunk in _chunks(ids, LOOKUP_CHUNK):
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items INDEXED BY items_webflow_id "
                f"WHERE collection = ? AND webflow_id IN ({marks})",
                (collection, *chunk),
            ):
                found[row[2]] = _item(row)
        return found

    def _stream(self, where: str, params: tuple[Any, ...]) -> Iterator[ItemState]:
        # Keyset pages rather than one open cursor: the caller may write to the log while it
        # iterates, and a page never sees half of someone else's transaction.
        after: tuple[str, str] = ("", "")
        while True:
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE {where} "
                f"AND (collection, key) > (?, ?) ORDER BY collection, key LIMIT {STREAM_PAGE}",
                (*params, *after),
            ).fetchall()
            for row in rows:
                yield _item(row)
            if len(rows) < STREAM_PAGE:
                return
            after = (rows[-1][0], rows[-1][1])

    def in_state(self, collection: str, state: str) -> Iterator[ItemState]:
        if state not in STATES:
            raise ValueError(f"unknown item state {state!r}; expected one of {', '.join(STATES)}")
        return self._in_state(collection, state)

    def _in_state(self, collection: str, state: str) -> Iterator[ItemState]:
        if state == "sending":
            yield from self._intents.in_flight(collection)
            return
        if state == "done":
            yield from self._stream("collection = ? AND state = ?", (collection, state))
            return
        # Pages by key inside the state's (partial) index, which holds the key. The planner,
        # left to itself, walks the whole collection by primary key, and every run asks for its
        # staged items, usually to find none among many done ones.
        after = ""
        while True:
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items INDEXED BY items_state "
                "WHERE collection = ? AND state = ? AND state <> 'done' AND key > ? "
                f"ORDER BY key LIMIT {STREAM_PAGE}",
                (collection, state, after),
            ).fetchall()
            for row in rows:
                yield _item(row)
            if len(rows) < STREAM_PAGE:
                return
            after = rows[-1][1]

    def errors(self) -> Iterator[ItemState]:
        return self._stream("last_error IS NOT NULL", ())

    def counts(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for collection, state, count in self._db.execute(
            "SELECT collection, state, COUNT(*) FROM items GROUP BY collection, state "
            "ORDER BY collection, state"
        ):
            result.setdefault(collection, {})[state] = count
        for collection in self._intents.collections():
            sending = sum(1 for _ in self._intents.in_flight(collection))
            if sending:
                result.setdefault(collection, {})["sending"] = sending
        return result

    def error_counts(self) -> dict[str, dict[str, int]]:
        """Items with an error, per collection and kind (the run report's summary of them)."""
        result: dict[str, dict[str, int]] = {}
        for collection, kind, count in self._db.execute(
            "SELECT collection, COALESCE(error_kind, 'error'), COUNT(*) FROM items "
            "WHERE last_error IS NOT NULL GROUP BY collection, COALESCE(error_kind, 'error') "
            "ORDER BY collection"
        ):
            result.setdefault(collection, {})[kind] = count
        return result

    def has_items(self, collection: str) -> bool:
        """Whether the log holds any item row of the collection (in flight ones aside)."""
        row = self._db.execute(
            "SELECT 1 FROM items WHERE collection = ? LIMIT 1", (collection,)
        ).fetchone()
        return row is not None

    def count_in_webflow(self, collection: str) -> int:
        """Items this log knows in Webflow (with an id), whatever their state."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM items INDEXED BY items_webflow_id "
            "WHERE collection = ? AND webflow_id IS NOT NULL",
            (collection,),
        ).fetchone()
        return int(row[0])

    def record_acknowledged(
        self, collection: str, batch_id: int, items: Sequence[Acknowledged]
    ) -> None:
        now = _now()
        rows = [
            (
                ack.key, ack.webflow_id, ack.slug, ack.content_hash, ack.state, ack.source_hash,
                ack.webflow_updated, ack.field_hashes,
            )
            for ack in items
        ]  # fmt: skip
        if is_postgres(self._db) and len({row[0] for row in rows}) == len(rows):
            # One statement for the batch: PostgreSQL runs an executemany row by row (a round
            # of the executor each, 100-200 µs), which made this the run's costliest write.
            # One statement may not meet a key twice, hence the test above.
            self._db.execute(
                f"INSERT INTO items ({_ACKNOWLEDGED_COLUMNS}) "
                "SELECT ?, r.key, r.webflow_id, r.slug, r.content_hash, r.state, 1, ?, ?, ?, "
                "r.source_hash, r.webflow_updated, r.field_hashes "
                "FROM json_to_recordset(?::json) AS r(key text, webflow_id text, slug text, "
                "content_hash text, state text, source_hash text, webflow_updated text, "
                f"field_hashes text) {_ACKNOWLEDGED_UPSERT}",
                (collection, batch_id, now, now, orjson.dumps(
                    [dict(zip(_ACKNOWLEDGED_FIELDS, row, strict=True)) for row in rows]
                )),
            )  # fmt: skip
            return
        self._write_many(
            f"INSERT INTO items ({_ACKNOWLEDGED_COLUMNS}) "
            f"VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?) {_ACKNOWLEDGED_UPSERT}",
            [(collection, *row[:5], batch_id, now, now, *row[5:]) for row in rows],
        )

    def record_failures(
        self, collection: str, batch_id: int | None, failures: Sequence[ItemFailure]
    ) -> None:
        """Store per-item errors.

        A ``publish`` failure leaves the item ``staged`` (it exists; the next run publishes it
        again). Any other failure of an item that already exists in Webflow is a failed update:
        the item keeps its state, and its acknowledged content hash keeps it marked as changed.
        Otherwise the item becomes ``failed``.
        """
        now = _now()
        rows = [
            (
                collection,
                failure.key,
                failure.kind,
                redact(failure.reason),
                failure.field,
                int(failure.kind not in _NEVER_SENT),
                batch_id,
                now,
                now,
            )
            for failure in failures
        ]
        self._write_many(
            "INSERT INTO items (collection, key, state, error_kind, last_error, "
            "error_field, attempts, batch_id, first_seen, updated_at) "
            "VALUES (?, ?, 'failed', ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (collection, key) DO UPDATE SET "
            # A failure Webflow answered is one more time the item was sent.
            f"attempts = items.attempts + CASE WHEN excluded.error_kind IN {_NEVER_SENT!r} "
            "THEN 0 ELSE 1 END, "
            "state = CASE "
            "  WHEN items.webflow_id IS NULL THEN 'failed' "
            "  WHEN excluded.error_kind = 'publish' THEN 'staged' "
            "  WHEN items.state = 'sending' THEN 'staged' "
            "  ELSE items.state END, "
            "last_error = excluded.last_error, error_field = excluded.error_field, "
            "error_kind = excluded.error_kind, "
            "batch_id = coalesce(excluded.batch_id, items.batch_id), "
            "updated_at = excluded.updated_at",
            rows,
        )

    def clear_error(self, collection: str, keys: Sequence[str]) -> None:
        now = _now()
        self._write_many(
            "UPDATE items SET last_error = NULL, error_field = NULL, error_kind = NULL, "
            "updated_at = ? WHERE collection = ? AND key = ? AND last_error IS NOT NULL",
            [(now, collection, key) for key in keys],
        )

    def mark_removed(
        self,
        collection: str,
        batch_id: int,
        keys: Sequence[str],
        state: Literal["archived", "unpublished"],
    ) -> None:
        """The source record is gone and its item was archived or unpublished in Webflow."""
        now = _now()
        self._write_many(
            "UPDATE items SET state = ?, batch_id = ?, updated_at = ? "
            "WHERE collection = ? AND key = ?",
            [(state, batch_id, now, collection, key) for key in keys],
        )

    def forget(self, collection: str, keys: Sequence[str]) -> None:
        self._write_many(
            "DELETE FROM items WHERE collection = ? AND key = ?",
            [(collection, key) for key in keys],
        )


class ItemWarnings(_Part):
    """The standing warnings of each record: those of the last time it was mapped."""

    def replace(
        self, collection: str, keys: Sequence[str], warnings: Sequence[ItemWarning]
    ) -> None:
        """``keys`` were mapped again: their old warnings go, ``warnings`` (of those keys) stay."""
        now = _now()
        seq: dict[str, int] = {}
        rows = []
        for warning in warnings:
            seq[warning.key] = seq.get(warning.key, -1) + 1
            excerpt = redact(warning.excerpt)[:EXCERPT_CHARS]
            rows.append(
                (
                    collection,
                    warning.key,
                    seq[warning.key],
                    warning.field,
                    warning.kind,
                    excerpt,
                    now,
                )
            )
        if not rows and not self._holds_any(collection):
            # Nothing to remove and nothing to add (most chunks of most runs): a delete per key
            # and a commit per chunk saved.
            return
        with _transaction(self._db):
            if is_postgres(self._db):
                # One statement, not one per key (see Items.record_acknowledged).
                self._db.execute(
                    "DELETE FROM warnings WHERE collection = ? AND key = ANY(?)",
                    (collection, list(keys)),
                )
            else:
                self._db.executemany(
                    "DELETE FROM warnings WHERE collection = ? AND key = ?",
                    [(collection, key) for key in keys],
                )
            if rows:
                self._db.executemany("INSERT INTO warnings VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _holds_any(self, collection: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM warnings WHERE collection = ? LIMIT 1", (collection,)
        ).fetchone()
        return row is not None

    def add(self, collection: str, warnings: Sequence[ItemWarning]) -> None:
        """More warnings of records mapped in this run (the assets stage's, after mapping's)."""
        now = _now()
        with _transaction(self._db):
            for warning in warnings:
                self._db.execute(
                    "INSERT INTO warnings SELECT ?, ?, coalesce(max(seq) + 1, 0), ?, ?, ?, ? "
                    "FROM warnings WHERE collection = ? AND key = ?",
                    (
                        collection,
                        warning.key,
                        warning.field,
                        warning.kind,
                        redact(warning.excerpt)[:EXCERPT_CHARS],
                        now,
                        collection,
                        warning.key,
                    ),
                )

    def of_keys(self, collection: str, keys: Sequence[str]) -> list[ItemWarning]:
        found: list[ItemWarning] = []
        for chunk in _chunks(keys, LOOKUP_CHUNK):
            marks = ",".join("?" * len(chunk))
            found.extend(
                ItemWarning(*row)
                for row in self._db.execute(
                    "SELECT key, field, kind, excerpt FROM warnings "
                    f"WHERE collection = ? AND key IN ({marks}) ORDER BY key, seq",
                    (collection, *chunk),
                )
            )
        return found

    def all(self) -> Iterator[tuple[str, ItemWarning, str]]:
        """Every standing warning as (collection, warning, updated_at), by collection and key."""
        after: tuple[str, str, int] = ("", "", -1)
        while True:
            rows = self._db.execute(
                "SELECT collection, key, seq, field, kind, excerpt, updated_at FROM warnings "
                "WHERE (collection, key, seq) > (?, ?, ?) ORDER BY collection, key, seq "
                f"LIMIT {STREAM_PAGE}",
                after,
            ).fetchall()
            for collection, key, _seq, field, kind, excerpt, updated_at in rows:
                yield collection, ItemWarning(key, field, kind, excerpt), updated_at
            if len(rows) < STREAM_PAGE:
                return
            after = (rows[-1][0], rows[-1][1], rows[-1][2])

    def of_kind(self, collection: str, kind: str) -> list[ItemWarning]:
        """The collection's standing warnings of one kind."""
        return [
            ItemWarning(*row)
            for row in self._db.execute(
                "SELECT key, field, kind, excerpt FROM warnings "
                "WHERE collection = ? AND kind = ? ORDER BY key, seq",
                (collection, kind),
            )
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """Standing warnings per collection and kind."""
        result: dict[str, dict[str, int]] = {}
        for collection, kind, count in self._db.execute(
            "SELECT collection, kind, COUNT(*) FROM warnings GROUP BY collection, kind "
            "ORDER BY collection, kind"
        ):
            result.setdefault(collection, {})[kind] = count
        return result

    def forget(self, collection: str, keys: Sequence[str]) -> None:
        self._write_many(
            "DELETE FROM warnings WHERE collection = ? AND key = ?",
            [(collection, key) for key in keys],
        )


#: An ``assets`` row as :class:`AssetRows` answers it.
_ASSET_COLUMNS: Final = (
    "sha256, md5, source_url, file_name, content_type, size, state, asset_id, hosted_url, "
    "failure_kind, detail"
)


@dataclass(frozen=True, slots=True)
class AssetRow:
    sha256: str
    md5: str
    source_url: str
    file_name: str
    content_type: str
    size: int
    state: Literal["intent", "created", "uploaded", "failed"]
    asset_id: str | None
    hosted_url: str | None
    failure_kind: str | None
    detail: str | None


class AssetRows(_Part):
    """The assets flowport made in each site, by content; each write is its own commit, so an
    intent is durable before the create it announces leaves."""

    def by_sha256(self, site_id: str, sha256: str) -> AssetRow | None:
        row = self._db.execute(
            f"SELECT {_ASSET_COLUMNS} FROM assets WHERE site_id = ? AND sha256 = ?",
            (site_id, sha256),
        ).fetchone()
        return AssetRow(*row) if row else None

    def by_source_url(self, site_id: str, source_url: str) -> AssetRow | None:
        columns = ", ".join("a." + c.strip() for c in _ASSET_COLUMNS.split(","))
        row = self._db.execute(
            f"SELECT {columns} FROM asset_sources s JOIN assets a "
            "ON a.site_id = s.site_id AND a.sha256 = s.sha256 "
            "WHERE s.site_id = ? AND s.source_url = ?",
            (site_id, source_url),
        ).fetchone()
        return AssetRow(*row) if row else None

    def record_intent(self, site_id: str, row: AssetRow) -> None:
        now = _now()
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO assets (site_id, sha256, md5, source_url, file_name, content_type, "
                "size, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?) "
                "ON CONFLICT (site_id, sha256) DO UPDATE SET state = 'intent', asset_id = NULL, "
                "hosted_url = NULL, failure_kind = NULL, detail = NULL, "
                "file_name = excluded.file_name, updated_at = excluded.updated_at",
                (site_id, row.sha256, row.md5, row.source_url, row.file_name, row.content_type,
                 row.size, now, now),
            )  # fmt: skip

    def record_created(self, site_id: str, sha256: str, asset_id: str, hosted_url: str) -> None:
        with _transaction(self._db):
            self._db.execute(
                "UPDATE assets SET state = 'created', asset_id = ?, hosted_url = ?, "
                "updated_at = ? WHERE site_id = ? AND sha256 = ?",
                (asset_id, hosted_url, _now(), site_id, sha256),
            )

    def record_uploaded(
        self, site_id: str, sha256: str, asset_id: str, hosted_url: str, source_urls: Sequence[str]
    ) -> None:
        with _transaction(self._db):
            self._db.execute(
                "UPDATE assets SET state = 'uploaded', asset_id = ?, hosted_url = ?, "
                "failure_kind = NULL, detail = NULL, updated_at = ? "
                "WHERE site_id = ? AND sha256 = ?",
                (asset_id, hosted_url, _now(), site_id, sha256),
            )
            self.link_sources(site_id, sha256, source_urls)

    def link_sources(self, site_id: str, sha256: str, source_urls: Sequence[str]) -> None:
        now = _now()
        self._write_many(
            "INSERT INTO asset_sources (site_id, source_url, sha256, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (site_id, source_url) DO UPDATE SET "
            "sha256 = excluded.sha256, updated_at = excluded.updated_at",
            [(site_id, url, sha256, now) for url in source_urls],
        )

    def record_failed(self, site_id: str, sha256: str, kind: str, detail: str) -> None:
        with _transaction(self._db):
            self._db.execute(
                "UPDATE assets SET state = 'failed', failure_kind = ?, detail = ?, "
                "updated_at = ? WHERE site_id = ? AND sha256 = ? AND state <> 'uploaded'",
                (kind, redact(detail)[:EXCERPT_CHARS], _now(), site_id, sha256),
            )

    def forget(self, site_id: str, sha256: str) -> None:
        """An announced create that never landed (or was deleted): the content starts over."""
        with _transaction(self._db):
            self._db.execute(
                "DELETE FROM assets WHERE site_id = ? AND sha256 = ?", (site_id, sha256)
            )

    def pending(self, site_id: str) -> list[AssetRow]:
        """Creates whose outcome a killed run left unknown: ``intent`` and ``created`` rows."""
        return self._rows_where(
            "site_id = ? AND (state = 'intent' OR state = 'created') ORDER BY sha256", (site_id,)
        )

    def any_in(self, site_id: str) -> bool:
        """Whether the log holds any asset of the site, in any state."""
        row = self._db.execute("SELECT 1 FROM assets WHERE site_id = ? LIMIT 1", (site_id,))
        return row.fetchone() is not None

    def counts(self) -> dict[str, int]:
        """Assets per state, every site together."""
        rows = self._db.execute("SELECT state, COUNT(*) FROM assets GROUP BY state")
        return {str(state): int(count) for state, count in rows.fetchall()}

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Files and bytes per state, every site together (the run report's assets)."""
        rows = self._db.execute(
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM assets GROUP BY state"
        )
        return {str(state): (int(count), int(size)) for state, count, size in rows.fetchall()}

    def failed(self, limit: int) -> list[AssetRow]:
        """Up to ``limit`` files that could not be moved, every site together."""
        return self._rows_where("state = 'failed' ORDER BY source_url LIMIT ?", (limit,))

    def _rows_where(self, condition: str, parameters: tuple[object, ...]) -> list[AssetRow]:
        """The asset rows ``WHERE condition`` (which may go on with ORDER BY and LIMIT)."""
        return [
            AssetRow(*row)
            for row in self._db.execute(
                f"SELECT {_ASSET_COLUMNS} FROM assets WHERE {condition}", parameters
            )
        ]


class WebflowEdits(_Part):
    """Edits made in Webflow by someone else since flowport's last write of each item, and where
    each collection's next look for them starts (Webflow's own ``lastUpdated`` values only)."""

    def horizon(self, collection: str) -> tuple[str, str] | None:
        """(where the next listing starts, the first check's newest ``lastUpdated``), if any."""
        row = self._db.execute(
            "SELECT horizon, baseline FROM edit_horizons WHERE collection = ?", (collection,)
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def set_horizon(self, collection: str, horizon: str, baseline: str) -> None:
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO edit_horizons (collection, horizon, baseline, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (collection) DO UPDATE SET "
                "horizon = excluded.horizon, updated_at = excluded.updated_at",
                (collection, horizon, baseline, _now()),
            )

    def oldest_write(self, collection: str) -> str | None:
        """The earliest ``lastUpdated`` of flowport's writes the log holds for the collection."""
        row = self._db.execute(
            "SELECT min(webflow_updated) FROM items WHERE collection = ?", (collection,)
        ).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def newest_write(self, collection: str) -> str | None:
        """The latest ``lastUpdated`` of flowport's writes the log holds for the collection."""
        row = self._db.execute(
            "SELECT max(webflow_updated) FROM items WHERE collection = ?", (collection,)
        ).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def writes_since(self, collection: str, since: str) -> int:
        """How many of the collection's items flowport last wrote at or after ``since``."""
        row = self._db.execute(
            "SELECT count(*) FROM items WHERE collection = ? AND webflow_updated >= ?",
            (collection, since),
        ).fetchone()
        return int(row[0])

    def record(self, collection: str, edits: Mapping[str, str]) -> None:
        """``edits``: source key -> the edit as JSON, kept until flowport writes the item."""
        self._write_many(
            "UPDATE items SET webflow_edit = ? WHERE collection = ? AND key = ?",
            [(edit, collection, key) for key, edit in edits.items()],
        )


#: Item states that are, or may turn out to be (an unknown create), an item in Webflow.
_POSSIBLY_WRITTEN = "('done', 'staged', 'sending')"


class RunScratch(_Part):
    """This run's scratch: keys read and slugs claimed, in TEMP tables so memory stays flat and
    the log's file is not written."""

    def __init__(self, db: StateConnection) -> None:
        super().__init__(db)
        #: Chunks this run's scratch has noted; the chunk number tells repeats from first reads.
        self._chunks_checked = 0
        #: Per collection, items that were or could become items in Webflow when its first
        #: chunk was checked, and how many of them this run's read has met since. Equal counts
        #: mean no such item went unread: :meth:`count_unseen` is then 0 without its anti-join
        #: over every item (~0.1 s at 100,000 items, on every nightly run).
        self._written_at_start: dict[str, int] = {}
        self._written_seen: dict[str, int] = {}

    def start(self) -> None:
        """An empty scratch for a run; a TEMP table, so the log's file is not written."""
        db = self._db
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS run_keys ("
            "collection TEXT NOT NULL, key TEXT NOT NULL, chunk INTEGER NOT NULL, "
            "planned INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (collection, key)) WITHOUT ROWID"
        )
        # Apart from run_keys, so that noting a key (every record) updates one B-tree only.
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS run_slugs ("
            "collection TEXT NOT NULL, slug TEXT NOT NULL, key TEXT NOT NULL, "
            "PRIMARY KEY (collection, slug)) WITHOUT ROWID"
        )
        # Items whose deferred references wait for the second pass, in the order they came.
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS run_deferred ("
            "seq INTEGER PRIMARY KEY, collection TEXT NOT NULL, key TEXT NOT NULL, "
            "target TEXT NOT NULL, digest TEXT NOT NULL, refs TEXT NOT NULL, source_hash TEXT)"
        )
        db.execute("DELETE FROM temp.run_keys")
        db.execute("DELETE FROM temp.run_slugs")
        db.execute("DELETE FROM temp.run_deferred")
        self._chunks_checked = 0
        self._written_at_start.clear()
        self._written_seen.clear()

    def check_chunk(
        self,
        collection: str,
        records: Sequence[tuple[str, str]],
        *,
        pending_marks: Sequence[str] = (),
        all_new: bool = False,
    ) -> ChunkCheck:
        """Note a chunk of records read in this run, given as (key, source fingerprint), and
        sort them: keys an earlier chunk already had, and keys whose item was not written from
        this very record (absent, not in Webflow, another fingerprint, or a content hash ending
        in one of ``pending_marks``).

        A rerun asks this of every record, so it is two statements whatever the chunk's size,
        and the rows it returns are the exceptions, not the rule. ``all_new`` says the
        collection had no item in the log when the run began (see :meth:`Items.has_items`): then
        every key not repeated is new, and the second statement is not needed.
        """
        if any(len(fingerprint) != FINGERPRINT_CHARS for _, fingerprint in records):
            raise ValueError(f"a source fingerprint has {FINGERPRINT_CHARS} characters")
        # Fingerprint and key in one string (the fingerprint has a fixed width) so that SQLite
        # reads one JSON array of strings, its fastest path.
        packed = orjson.dumps([fingerprint + key for key, fingerprint in records])
        keys = {key for key, _ in records}
        repeated = self._note_keys(collection, packed, len(keys))
        if all_new:
            self._written_at_start.setdefault(collection, 0)
            return ChunkCheck(repeated=repeated, changed=dict.fromkeys(keys - repeated, False))
        if collection not in self._written_at_start:
            self._written_at_start[collection] = self._count_possibly_written(collection)
        marks = "".join(f" OR substr(i.content_hash, -{len(mark)}) = ?" for mark in pending_marks)
        changed: dict[str, bool] = {}
        not_written: set[str] = set()
        for key, known, written in self._db.execute(
            f"SELECT substr(j.value, {FINGERPRINT_CHARS + 1}), i.key IS NOT NULL, "
            f"i.state IN {_POSSIBLY_WRITTEN} "
            "FROM json_each(?) AS j LEFT JOIN items AS i "
            f"ON i.collection = ? AND i.key = substr(j.value, {FINGERPRINT_CHARS + 1}) "
            "WHERE i.key IS NULL OR i.state NOT IN ('done', 'staged') OR i.webflow_id IS NULL "
            f"OR i.source_hash IS NOT substr(j.value, 1, {FINGERPRINT_CHARS}){marks}",
            (packed, collection, *pending_marks),
        ):
            changed[key] = bool(known)
            if not written:
                not_written.add(key)
        # A key not returned is an item written from this very record: one that was written.
        first_reads = keys - repeated
        self._written_seen[collection] = self._written_seen.get(collection, 0) + len(
            first_reads - not_written
        )
        return ChunkCheck(repeated=repeated, changed=changed)

    def _note_keys(self, collection: str, packed: bytes, distinct: int) -> set[str]:
        """Note a chunk's keys as read; answer those an earlier chunk of this run had."""
        self._chunks_checked += 1
        chunk = self._chunks_checked
        noted = self._db.execute(
            "INSERT OR IGNORE INTO temp.run_keys (collection, key, chunk) "
            f"SELECT ?, substr(value, {FINGERPRINT_CHARS + 1}), ? FROM json_each(?)",
            (collection, chunk, packed),
        ).rowcount
        if noted == distinct:
            return set()
        # Some key was there already: the rows an earlier chunk wrote say which.
        return {
            str(row[0])
            for row in self._db.execute(
                "SELECT r.key FROM json_each(?) AS j JOIN temp.run_keys AS r "
                f"ON r.collection = ? AND r.key = substr(j.value, {FINGERPRINT_CHARS + 1}) "
                "WHERE r.chunk != ?",
                (packed, collection, chunk),
            )
        }

    def _count_possibly_written(self, collection: str) -> int:
        # The state index alone answers it (no webflow_id test): counting more is safe.
        row = self._db.execute(
            f"SELECT COUNT(*) FROM items WHERE collection = ? AND state IN {_POSSIBLY_WRITTEN}",
            (collection,),
        ).fetchone()
        return int(row[0])

    def claim_slugs(self, collection: str, claims: Sequence[tuple[str, str]]) -> None:
        """Note (key, slug) claims made in this run."""
        self._write_many(
            "INSERT INTO temp.run_slugs (collection, slug, key) VALUES (?, ?, ?) "
            "ON CONFLICT (collection, slug) DO UPDATE SET key = excluded.key",
            [(collection, slug, key) for key, slug in claims],
        )

    def slug_holders(self, collection: str, slug: str) -> tuple[str | None, str | None]:
        """Who has ``slug``: the key that claimed it in this run, and the key holding it in the
        log. Should two rows of the log hold it (one renamed since), the one that exists in
        Webflow wins, then the latest."""
        row = self._db.execute(
            "SELECT (SELECT key FROM temp.run_slugs WHERE collection = ? AND slug = ?), "
            # INDEXED BY: the planner otherwise walks the whole collection by primary key.
            "(SELECT key FROM items INDEXED BY items_slug WHERE collection = ? AND slug = ? "
            "ORDER BY webflow_id IS NULL, updated_at DESC LIMIT 1)",
            (collection, slug, collection, slug),
        ).fetchone()
        return (
            str(row[0]) if row[0] is not None else None,
            str(row[1]) if row[1] is not None else None,
        )

    def claim_free_slugs(self, collection: str, claims: Sequence[tuple[str, str]]) -> set[str]:
        """Note the (key, slug) claims whose slug is free, in order, in one statement; return
        the keys that got theirs. A slug is taken when another key claimed it in this run (an
        earlier claim of the same call included) or holds it in the log."""
        if not claims:
            return set()
        if is_postgres(self._db):
            return self._claim_free_slugs_postgres(collection, claims)
        accepted = self._db.execute(
            "INSERT INTO temp.run_slugs (collection, slug, key) "
            "SELECT ?1, json_extract(j.value, '$[1]'), json_extract(j.value, '$[0]') "
            "FROM json_each(?2) AS j "
            "WHERE NOT EXISTS (SELECT 1 FROM items INDEXED BY items_slug "
            "WHERE collection = ?1 AND slug = json_extract(j.value, '$[1]') "
            "AND key != json_extract(j.value, '$[0]')) "
            "ON CONFLICT (collection, slug) DO UPDATE SET key = excluded.key "
            "WHERE key = excluded.key "
            "RETURNING key",
            (collection, orjson.dumps([[key, slug] for key, slug in claims])),
        ).fetchall()
        return {str(row[0]) for row in accepted}

    def _claim_free_slugs_postgres(
        self, collection: str, claims: Sequence[tuple[str, str]]
    ) -> set[str]:
        # SQLite inserts row by row, so the second claim of a slug in one call meets the first
        # and loses. PostgreSQL refuses an upsert that meets its own row, so one claim per slug
        # goes in, the one SQLite's order would let win: the key that claimed the slug earlier
        # in the run, else the first of this call (claims failing the log's test left out).
        accepted = self._db.execute(
            "INSERT INTO temp.run_slugs (collection, slug, key) "
            "SELECT DISTINCT ON (c.slug) ?, c.slug, c.key FROM ("
            "SELECT j.value::json->>0 AS key, j.value::json->>1 AS slug, j.n "
            "FROM json_array_elements_text(?::json) WITH ORDINALITY AS j(value, n)) AS c "
            "LEFT JOIN temp.run_slugs AS r ON r.collection = ? AND r.slug = c.slug "
            "WHERE NOT EXISTS (SELECT 1 FROM items "
            "WHERE collection = ? AND slug = c.slug AND key != c.key) "
            "ORDER BY c.slug, r.key IS DISTINCT FROM c.key, c.n "
            "ON CONFLICT (collection, slug) DO UPDATE SET key = excluded.key "
            "WHERE run_slugs.key = excluded.key "
            "RETURNING key",
            (
                collection,
                orjson.dumps([[key, slug] for key, slug in claims]),
                collection,
                collection,
            ),
        ).fetchall()
        return {str(row[0]) for row in accepted}

    def defer_references(self, items: Sequence[DeferredReferences]) -> None:
        """Keep items for the second pass on disk: a run of 500,000 self-referencing records
        held them in a list of 381 MB."""
        self._write_many(
            "INSERT INTO temp.run_deferred (collection, key, target, digest, refs, source_hash) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    item.collection,
                    item.key,
                    item.target,
                    item.digest,
                    orjson.dumps(dict(item.references)).decode(),
                    item.source_hash,
                )
                for item in items
            ],
        )

    def deferred_references(self, chunk: int = 500) -> Iterator[list[DeferredReferences]]:
        """The items kept by :meth:`defer_references`, in the order they came, a chunk at a
        time; each chunk is read when asked for, so the table may grow meanwhile."""
        after = 0
        while True:
            rows = self._db.execute(
                "SELECT seq, collection, key, target, digest, refs, source_hash "
                "FROM temp.run_deferred WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, chunk),
            ).fetchall()
            if not rows:
                return
            after = int(rows[-1][0])
            yield [
                DeferredReferences(
                    collection=str(collection),
                    key=str(key),
                    target=str(target),
                    digest=str(digest),
                    references={slug: tuple(keys) for slug, keys in orjson.loads(refs).items()},
                    source_hash=source_hash,
                )
                for _seq, collection, key, target, digest, refs, source_hash in rows
            ]

    def mark_planned(self, collection: str, keys: Sequence[str]) -> None:
        """In a plan: these records would become items (references to them resolve)."""
        self._write_many(
            "UPDATE temp.run_keys SET planned = 1 WHERE collection = ? AND key = ?",
            [(collection, key) for key in keys],
        )

    def is_planned(self, collection: str, key: str) -> bool:
        row = self._db.execute(
            "SELECT planned FROM temp.run_keys WHERE collection = ? AND key = ?",
            (collection, key),
        ).fetchone()
        return bool(row and row[0])

    def count_unseen(self, collection: str) -> int:
        """Items in Webflow whose key this run's read did not meet (see :meth:`unseen`)."""
        # An item unread in this run is not written by it: only those counted at the first
        # check can be unseen, and when the read met all of them there is none. ('sending'
        # is counted as written there: an unknown create may turn out to exist.)
        at_start = self._written_at_start.get(collection)
        if at_start is not None and at_start == self._written_seen.get(collection, 0):
            return 0
        row = self._db.execute(
            "SELECT COUNT(*) FROM items WHERE collection = ? "
            "AND state IN ('done', 'staged') AND webflow_id IS NOT NULL "
            "AND key NOT IN (SELECT key FROM temp.run_keys WHERE collection = ?)",
            (collection, collection),
        ).fetchone()
        return int(row[0])

    def unseen(self, collection: str) -> list[ItemState]:
        """Items in Webflow whose key this run's read did not meet."""
        return [
            _item(row)
            for row in self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE collection = ? "
                "AND state IN ('done', 'staged') AND webflow_id IS NOT NULL "
                "AND key NOT IN (SELECT key FROM temp.run_keys WHERE collection = ?) "
                "ORDER BY key",
                (collection, collection),
            )
        ]


class CheckpointLog:
    """One job's checkpoint log. Not shared between threads; one writer process at a time
    (the CLI's lock sees to that), any number of readers (``flowport status``).

    It owns the connection, the schema and the transactions, and is made of parts by
    responsibility, all on its connection: :attr:`runs`, :attr:`bindings` (collection ids and
    cursors), :attr:`batches`, :attr:`intents`, :attr:`items`, the items' :attr:`warnings` and
    the media's :attr:`assets` and this run's :attr:`scratch`.
    A batch is opened and closed through :meth:`batch` only.
    """

    def __init__(
        self, path: Path | None, connection: StateConnection, where: str | None = None
    ) -> None:
        #: The SQLite file; None when the log is in PostgreSQL.
        self.path = path
        #: The log's place as messages name it: the file, or the database and schema.
        self.where = where if where is not None else str(path)
        self._db = connection
        self.runs = RunHistory(connection)
        self.bindings = CollectionBindings(connection)
        self.batches = Batches(connection)
        self.intents = Intents(connection)
        self.items = Items(connection, self.intents)
        self.warnings = ItemWarnings(connection)
        self.edits = WebflowEdits(connection)
        self.scratch = RunScratch(connection)
        self.assets = AssetRows(connection)
        # The surface the runner, the writer and the CLI call, re-exposed from the parts.
        self.begin_run = self.runs.begin
        self.finish_run = self.runs.finish
        self.last_run = self.runs.last
        self.set_collection_id = self.bindings.set_collection_id
        self.cursor = self.bindings.cursor
        self.set_cursor = self.bindings.set_cursor
        self.lookup = self.items.lookup
        self.by_webflow_ids = self.items.by_webflow_ids
        self.in_state = self.items.in_state
        self.errors = self.items.errors
        self.counts = self.items.counts
        self.has_items = self.items.has_items
        self.count_in_webflow = self.items.count_in_webflow
        self.record_failures = self.items.record_failures
        self.settle_intent = self.intents.settle
        self.start_scratch = self.scratch.start
        self.check_chunk = self.scratch.check_chunk
        self.claim_slugs = self.scratch.claim_slugs
        self.slug_holders = self.scratch.slug_holders
        self.claim_free_slugs = self.scratch.claim_free_slugs
        self.mark_planned = self.scratch.mark_planned
        self.is_planned = self.scratch.is_planned
        self.count_unseen = self.scratch.count_unseen
        self.unseen = self.scratch.unseen
        self.defer_references = self.scratch.defer_references
        self.deferred_references = self.scratch.deferred_references

    @classmethod
    def open(cls, path: Path) -> CheckpointLog:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # SQLite gives the -wal and -shm files the mode of the database file, so a 0600
        # database keeps its journal private too; leftovers from an older run are tightened.
        _create_private(path)
        for suffix in ("-wal", "-shm"):
            sidecar = path.with_name(path.name + suffix)
            if sidecar.exists():
                sidecar.chmod(0o600)
        try:
            connection = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise FatalError(f"cannot open the checkpoint log {path}: {exc}") from None
        log = cls(path, connection)
        try:
            log._prepare()
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise FatalError(
                f"the checkpoint log {path} is unreadable ({exc}); move it aside to start over"
            ) from None
        except BaseException:
            connection.close()
            raise
        return log

    @classmethod
    def open_postgres(cls, url: str, schema: str, *, create: bool = True) -> CheckpointLog | None:
        """The log in ``schema`` of the PostgreSQL database at ``url``; with ``create`` false,
        None when the job has no state there yet (a reader leaves no trace)."""
        import psycopg  # here, not at the top: see statedb's imports

        where = f"{display_url(url)} (schema {schema})"
        raw = connect_postgres(url, schema=schema, purpose=f"log {schema}")
        log = cls(None, PostgresConnection(raw, where), where)
        try:
            if create:
                log._db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            elif not _has_table(log._db, "meta"):
                log.close()
                return None
            log._migrate()
        except psycopg.Error as exc:
            log.close()
            raise FatalError(
                f"the checkpoint log in {where} is unusable ({redact(str(exc).strip())})"
            ) from None
        except BaseException:
            log.close()
            raise
        return log

    def _prepare(self) -> None:
        db = self._db
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise FatalError(
                f"the checkpoint log needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer "
                f"(RETURNING, json_each); this Python has {sqlite3.sqlite_version}"
            )
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise FatalError(f"the checkpoint log {self.path} cannot use WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`, the same steps on either engine."""
        db = self._db
        version = self._schema_version()
        if version > SCHEMA_VERSION:
            raise FatalError(
                f"the checkpoint log {self.where} has schema version {version}, newer than this "
                f"flowport understands ({SCHEMA_VERSION}); upgrade flowport"
            )
        if version == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            if is_postgres(db):
                # BEGIN IMMEDIATE's write lock, on PostgreSQL: one migration at a time per job.
                db.execute(
                    "SELECT pg_advisory_xact_lock("
                    "hashtext('flowport-migrate:' || current_schema()))"
                )
            # Another process may have migrated while we waited for the write lock.
            version = self._schema_version()
            for step in _MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip() and not _column_exists(db, statement):
                        db.execute(statement)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def rehome(self, collection: str) -> None:
        """Forget what the log knows of a collection's items in Webflow, so the next run
        creates or adopts (by slug or external key) each of them in the collection it now
        finds, instead of assuming them there. The other collections' records are mapped again
        (their source fingerprints are cleared): their references to this collection's items
        change with the items' new ids."""
        with self.transaction():
            db = self._db
            db.execute("DELETE FROM items WHERE collection = ?", (collection,))
            db.execute("DELETE FROM intents WHERE collection = ?", (collection,))
            db.execute("DELETE FROM cursors WHERE collection = ?", (collection,))
            db.execute("DELETE FROM edit_horizons WHERE collection = ?", (collection,))
            db.execute("DELETE FROM collections WHERE name = ?", (collection,))
            db.execute("UPDATE items SET source_hash = NULL WHERE collection <> ?", (collection,))

    def _schema_version(self) -> int:
        if not _has_table(self._db, "meta"):
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The calls inside commit together (or not at all); inside another, it joins that one.

        The writer groups what it records about one request: a batch opened with its intent,
        then the acknowledgement with the intent settled and the batch closed, two commits a
        request instead of five.
        """
        with _transaction(self._db):
            yield

    @contextlib.contextmanager
    def batch(
        self,
        run_id: int,
        collection: str,
        kind: str,
        size: int,
        *,
        intent: Sequence[tuple[str, str, str]] = (),
    ) -> Iterator[BatchRecord]:
        """``with log.batch(...) as batch:`` opens a batch and closes it when the block ends.

        Two commits: the batch's row (with the intent of its creates, if any, committed before
        the request leaves) when it opens, and everything recorded through it with its close
        when the block ends, on an exception too (then ``aborted``; what was recorded before
        it is kept, since Webflow acknowledged it).
        """
        with self.transaction():
            batch_id = self.batches.open(run_id, collection, kind, size)
            if intent:
                self.intents.record(collection, batch_id, intent)
        record = BatchRecord(self, batch_id, collection)
        try:
            yield record
        except BaseException:
            with self.transaction():
                record._close(aborted=True)
            raise
        with self.transaction():
            record._close(aborted=False)
