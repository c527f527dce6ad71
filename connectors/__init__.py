"""Source connectors: every source is read through one Protocol, :class:`Source`.

A source yields :class:`SourceRecord` for each record it could read and :class:`RecordError` for
each one it could not (a malformed CSV row, an unparsable WXR item), so that a bad record becomes a
per-item error in the checkpoint log and the run goes on. A source that cannot be read at all raises
:class:`flowport.base.errors.SourceError`.

Records are streamed: ``records()`` is an async generator, closed with ``contextlib.aclosing`` by
its consumer, which releases whatever the source holds (a file, a cursor, an HTTP session). Work
that may wait on something slow (opening files, lxml over a whole file, drivers without async)
runs in worker threads; short CPU-bound steps (parsing a bounded batch of CSV rows) run on the
loop, where a thread would only contend for the GIL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from flowport.base.errors import ConfigError

__all__ = [
    "AttachmentSource",
    "BatchedRecords",
    "BatchedSource",
    "CheckedSource",
    "CountableSource",
    "PartialSource",
    "RecordError",
    "Source",
    "SourceItem",
    "SourceRecord",
    "SourceWarning",
    "items_of",
    "refuse_since",
]


@dataclass(frozen=True, slots=True)
class SourceWarning:
    """Something the source changed or guessed while reading a record (a line decoded with a
    fallback codec): it travels with the record and becomes a per-item warning, never a silence.

    ``kind`` is a stable word for counting (``encoding_fallback``); ``field`` names the value it
    concerns, when it concerns one.
    """

    kind: str
    message: str
    field: str | None = None


@dataclass(slots=True)
class SourceRecord:
    """One record read from a source; a value nobody changes once made (not ``frozen``: that
    doubles its cost to build, paid for every record of every run).

    ``key`` is stable across runs (a key column, a post id): the checkpoint log is keyed by it.
    A source may pass on a key its data repeats; the runner keeps the first record with a key
    and logs each repeat as an error, for every source alike.
    ``fields`` holds JSON-like values (str, int, float, bool, None, lists, dicts); CSV values stay
    text. ``cursor`` is the record's incremental cursor value (an ``updated_at``, a
    ``modified_gmt``) for sources that read incrementally; ``position`` says where it was read
    ("line 17", "item 4"), for error messages. ``warnings`` says what reading it changed.
    """

    key: str
    fields: Mapping[str, Any]
    cursor: str | None = None
    position: str | None = None
    warnings: tuple[SourceWarning, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record the source could not read; the run logs it and goes on."""

    key: str
    reason: str
    position: str | None = None


SourceItem = SourceRecord | RecordError


@runtime_checkable
class Source(Protocol):
    """What the runner needs of any source."""

    @property
    def name(self) -> str:
        """A short human label, e.g. ``csv:authors.csv``; never holds a secret."""
        ...

    @property
    def incremental(self) -> bool:
        """True when ``records(since=...)`` reads only what changed after ``since``."""
        ...

    def records(self, since: str | None = None) -> AsyncGenerator[SourceItem, None]:
        """Stream every record, or with ``since`` only those whose cursor is past it."""
        ...


@runtime_checkable
class AttachmentSource(Protocol):
    """A source that also knows its site's attachments (a WXR file): id -> URL."""

    def attachment_url(self, attachment_id: str) -> str | None: ...


@runtime_checkable
class CheckedSource(Protocol):
    """A source that can tell, cheaply and before anything is written to Webflow, that it
    cannot be read at all (a hostile file, a missing one): :class:`SourceError` naming it."""

    async def check(self) -> None: ...


@runtime_checkable
class CountableSource(Protocol):
    """A source that can say, before reading, about how many records it holds."""

    async def estimated_total(self, since: str | None = None) -> int | None: ...


@runtime_checkable
class PartialSource(Protocol):
    """A source whose every read holds only part of its collection (the rows one dlt load
    brought): a record it does not name is not gone, so a run of it removes no item."""

    @property
    def partial(self) -> bool: ...


@runtime_checkable
class BatchedSource(Protocol):
    """A source that can also hand over what it read in one go (a CSV parse batch) as one
    sequence, sparing the runner a hop per record. ``records()`` stays the reference: the two
    yield the same items in the same order."""

    def record_batches(
        self, since: str | None = None
    ) -> AsyncGenerator[Sequence[SourceItem], None]: ...


async def items_of(
    batches: AsyncGenerator[Sequence[SourceItem], None],
) -> AsyncGenerator[SourceItem, None]:
    """A :class:`BatchedSource`'s ``records()``: its batches, one item at a time (closing the
    batches when closed)."""
    async with contextlib.aclosing(batches):
        async for batch in batches:
            for item in batch:
                yield item


class BatchedRecords:
    """A :class:`BatchedSource` whose ``records()`` are its ``record_batches()``, one item at
    a time."""

    def record_batches(
        self, since: str | None = None
    ) -> AsyncGenerator[Sequence[SourceItem], None]:
        raise NotImplementedError

    def records(self, since: str | None = None) -> AsyncGenerator[SourceItem, None]:
        return items_of(self.record_batches(since))


def refuse_since(
    source: str,
    since: str | None,
    why: str,
    fix: str = "drop `since` (or the job's incremental setting) for this source",
) -> None:
    """:class:`ConfigError` when a source that has no change cursor is asked to read from one
    (``why`` says why it has none)."""
    if since is not None:
        raise ConfigError(f"{source} cannot read incrementally: {why}", fix=fix)
