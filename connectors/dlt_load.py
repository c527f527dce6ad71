"""dlt source: the rows one dlt load brings, for flowport's dlt destination.

A job names it as ``source = { type = "dlt", key = "sku" }``; the rows come from a dlt pipeline
run with ``destination=flowport_webflow(job=...)`` (:mod:`flowport.pipeline.dlt_destination`),
which binds each load file of a dlt table to the collection that takes it. The command line has
no rows to give, so it refuses such a job and says so.

This module never imports dlt: the destination hands over a reader of plain row batches.

Decisions a job author may want to know:

* The rows of one load are only part of the collection (a dlt resource yields what changed, or
  one page of a larger set): the source is *partial*, so a run of it never treats a record it
  does not hold as gone, whatever the collection's ``deletions`` says.
* The key is the ``key`` column (or several, joined with ``key_separator``); without ``key``,
  the dlt table's primary key (``@dlt.resource(primary_key="sku")``). A row whose key is
  missing or empty becomes a :class:`RecordError`; a float key that is a whole number is
  written as one (``17.0`` -> ``"17"``).
* ``table`` names the dlt table the collection takes (default: the collection's name).
* ``position`` is ``"<table> row N"``, counting the load file's rows from 1.
* Values become JSON-like: datetimes and dates ISO 8601 (a naive datetime without an offset,
  as the SQL source writes it), ``Decimal`` exact text, bytes base64, timedeltas ISO 8601
  durations; nested lists and dicts (dlt's ``json`` columns) pass through, converted likewise.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import itertools
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import Field, PrivateAttr

from flowport.base.errors import ConfigError
from flowport.connectors import BatchedRecords, RecordError, SourceItem, SourceRecord, refuse_since
from flowport.connectors._keys import OptionalKeySourceConfig
from flowport.connectors.sql import iso_duration

__all__ = ["DltLoadSource", "DltSourceConfig", "RowBatches", "json_like"]

#: Opens a reader of one load file's rows, a bounded list at a time (called in a worker thread).
RowBatches = Callable[[], Iterator[list[dict[str, Any]]]]

_NOT_BOUND_FIX = (
    "load it from a dlt pipeline: pipeline.run(data, destination=flowport_webflow(job=...)) "
    "(see README, dlt destination)"
)


class _Load:
    """One bound load file. Compared by identity, as pydantic compares private attributes."""

    __slots__ = ("key_columns", "keys_read", "label", "rows")

    def __init__(self, rows: RowBatches, label: str, key_columns: tuple[str, ...] | None) -> None:
        self.rows = rows
        self.label = label
        self.key_columns = key_columns
        self.keys_read: set[str] = set()


class DltSourceConfig(OptionalKeySourceConfig):
    """The rows a dlt pipeline loads into this collection (flowport's dlt destination)."""

    type: Literal["dlt"] = "dlt"
    table: str | None = Field(
        default=None,
        min_length=1,
        description="The dlt table (resource) this collection takes; default: its name.",
    )
    key: str | tuple[str, ...] | None = Field(
        default=None,
        description=(
            "The column holding each row's stable key, or several joined with key_separator; "
            "omitted, the dlt table's primary key."
        ),
    )
    key_separator: str = Field(
        default=":", min_length=1, description="Joins the values of a several-column key."
    )
    _bound: _Load | None = PrivateAttr(default=None)

    @property
    def keys_read(self) -> frozenset[str]:
        """The keys (or, for a row without one, positions) the bound load's reads met."""
        return frozenset(self._bound.keys_read) if self._bound is not None else frozenset()

    def bind(
        self, rows: RowBatches, *, label: str, primary_key: tuple[str, ...] = ()
    ) -> DltSourceConfig:
        """This config reading ``rows``; ``label`` (the dlt table) names the source, and
        ``primary_key`` (the table's) is the key when the job gives none."""
        bound = self.model_copy()
        bound._bound = _Load(rows, label, self.key_columns or primary_key or None)
        return bound

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> DltLoadSource:
        if self._bound is None:
            raise ConfigError(
                "a dlt source takes the rows of a dlt pipeline's load, and none was given "
                "(the command line has none to give)",
                key="source",
                fix=_NOT_BOUND_FIX,
            )
        load = self._bound
        if load.key_columns is None:
            raise ConfigError(
                f"the dlt table {load.label!r} has no primary key and the job names no key",
                key="source.key",
                fix='give the resource one (@dlt.resource(primary_key="id")) or set '
                'source = { type = "dlt", key = "<column>" }',
            )
        return DltLoadSource(
            load.rows,
            key_columns=load.key_columns,
            key_separator=self.key_separator,
            label=load.label,
            keys_read=load.keys_read,
        )


def json_like(value: Any) -> Any:
    """A value read from a dlt load file as JSON-like: see the module docstring."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool or kind is float:
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):  # pendulum's too
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, Mapping):
        return {str(key): json_like(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_like(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):  # a subclass: its text
        return str.__str__(value)
    if isinstance(value, int | float):
        return value.real
    return str(value)


def _key_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = json_like(value)
    return text if isinstance(text, str) else str(text)


class DltLoadSource(BatchedRecords):
    """Reads one bound load file; see the module docstring for what it decides."""

    def __init__(
        self,
        rows: RowBatches,
        *,
        key_columns: tuple[str, ...],
        key_separator: str = ":",
        label: str = "table",
        keys_read: set[str] | None = None,
    ) -> None:
        self._rows = rows
        self._key_columns = key_columns
        self._key_separator = key_separator
        self._label = label
        #: The keys read so far, so the destination names this load's failed items only.
        self.keys_read: set[str] = keys_read if keys_read is not None else set()

    @property
    def name(self) -> str:
        return f"dlt:{self._label}"

    @property
    def incremental(self) -> bool:
        return False

    @property
    def partial(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"DltLoadSource({self._label!r}, key={self._key_columns!r})"

    async def record_batches(
        self, since: str | None = None
    ) -> AsyncGenerator[list[SourceItem], None]:
        """The rows, a bounded list at a time, each list read in a worker thread."""
        refuse_since(
            self.name,
            since,
            "each dlt load brings its own rows",
            fix="drop `incremental` for this collection (dlt's own incremental applies)",
        )
        reader = self._rows()
        counter = itertools.count(1)
        while True:
            rows = await anyio.to_thread.run_sync(next, reader, None)
            if rows is None:
                return
            yield [self._item(row, next(counter)) for row in rows]

    def _item(self, row: Mapping[str, Any], number: int) -> SourceItem:
        position = f"{self._label} row {number}"
        parts: list[str] = []
        for column in self._key_columns:
            text = _key_text(row.get(column))
            if not text:
                state = "empty" if text == "" else "missing"
                self.keys_read.add(position)
                return RecordError(position, f"the key column {column!r} is {state}", position)
            parts.append(text)
        key = self._key_separator.join(parts)
        self.keys_read.add(key)
        fields = {str(name): json_like(value) for name, value in row.items()}
        return SourceRecord(key, fields, None, position)
