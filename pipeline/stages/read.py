"""The read stage: source batches → chunks of records sorted against the checkpoint log.

A chunk's records are fingerprinted and noted in the run's scratch in one query, which sorts
out the keys an earlier record already had (a per-item error: the first record wins), the
records whose item was written from this very record (nothing to map or send), and the rest,
to be mapped. Every record passed on is observed by the incremental cursor.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import orjson
from anyio.abc import ObjectSendStream

from flowport.connectors import BatchedSource, RecordError, Source, SourceItem, SourceRecord
from flowport.pipeline.checkpoint import CheckpointLog, ItemFailure
from flowport.pipeline.jobfile import CollectionJob, Job
from flowport.pipeline.stages.claims import LOOKUP_CHUNK
from flowport.pipeline.stages.cursor import IncrementalCursor
from flowport.pipeline.stages.decide import REFERENCES_PENDING
from flowport.pipeline.writer import FILES_DROPPED, LOCALES_PENDING

__all__ = ["ReadChunk", "ReadStage", "SourceHasher", "mapping_fingerprint", "read_batches"]

#: Stored hashes with work still owed: such items are mapped again, whatever their source.
_PENDING_MARKS = (REFERENCES_PENDING, LOCALES_PENDING, FILES_DROPPED)


@dataclass(slots=True)
class ReadChunk:
    #: Records that could not be read, and repeated keys, as per-item errors.
    failures: list[ItemFailure] = field(default_factory=list)
    #: Keys whose item was written from this very record.
    unchanged: list[str] = field(default_factory=list)
    #: Records to map, each with its fingerprint.
    to_map: list[tuple[SourceRecord, str]] = field(default_factory=list)
    #: Keys of ``to_map`` that have a row in the log.
    known: list[str] = field(default_factory=list)


class ReadStage:
    def __init__(
        self,
        checkpoint: CheckpointLog,
        collection: str,
        source: Source,
        cursor: IncrementalCursor,
        source_hash_of: SourceHasher,
        remap: frozenset[str] = frozenset(),
    ) -> None:
        self.checkpoint = checkpoint
        #: Keys mapped again even if their record is the one their item was written from.
        self.remap = remap
        self.collection = collection
        self.source = source
        self.cursor = cursor
        self.source_hash_of = source_hash_of
        #: A first run: every record read is new, which spares the log that question.
        self.all_new = not checkpoint.has_items(collection)
        #: Records the source could not read: on a full read, nothing vanished is removed then.
        self.unreadable = 0

    async def run(self, send: ObjectSendStream[ReadChunk]) -> None:
        since = self.cursor.since
        async with send, contextlib.aclosing(read_batches(self.source, since)) as batches:
            chunk: list[SourceItem] = []
            async for batch in batches:
                if not chunk and len(batch) == LOOKUP_CHUNK:
                    # A source whose batches are chunks already (the CSV source's are): no copy.
                    await send.send(self.sort(batch))
                    continue
                chunk.extend(batch)
                while len(chunk) >= LOOKUP_CHUNK:
                    await send.send(self.sort(chunk[:LOOKUP_CHUNK]))
                    del chunk[:LOOKUP_CHUNK]
            if chunk:
                await send.send(self.sort(chunk))

    def sort(self, chunk: Sequence[SourceItem]) -> ReadChunk:
        sorted_chunk = ReadChunk()
        failures = sorted_chunk.failures
        records: list[tuple[SourceRecord, str]] = []
        hash_of = self.source_hash_of
        for read in chunk:
            if isinstance(read, RecordError):
                self.unreadable += 1
                reason = _positioned(read.reason, read.position)
                failures.append(ItemFailure(key=read.key, field=None, kind="source", reason=reason))
                continue
            records.append((read, hash_of(read)))
        # Keys of earlier chunks live in the checkpoint's scratch, not in memory.
        check = self.checkpoint.check_chunk(
            self.collection,
            [(r.key, h) for r, h in records],
            pending_marks=_PENDING_MARKS,
            all_new=self.all_new,
        )
        in_chunk: set[str] = set()
        repeated, changed, remap = check.repeated, check.changed, self.remap
        # Only an incremental collection has a cursor to move; this loop runs for every record.
        observe = self.cursor.observe if self.cursor.incremental else None
        for record, source_hash in records:
            if record.key in repeated or record.key in in_chunk:
                failures.append(_repeated(record))
                continue
            in_chunk.add(record.key)
            if observe is not None:
                observe(record.cursor)
            if record.key not in changed and record.key not in remap:
                # The very record this item was written from: nothing to map or send.
                sorted_chunk.unchanged.append(record.key)
                continue
            sorted_chunk.to_map.append((record, source_hash))
            if changed.get(record.key, True):
                sorted_chunk.known.append(record.key)
        return sorted_chunk


def _repeated(record: SourceRecord) -> ItemFailure:
    # Logged under a key of its own: the first record's row is not touched.
    return ItemFailure(
        key=f"{record.key}~{record.position or 'repeated'}",
        field=None,
        kind="source",
        reason=_positioned(
            f"duplicate key {record.key!r} in the source; the first record with this key was kept",
            record.position,
        ),
    )


def _positioned(reason: str, position: str | None) -> str:
    return f"{position}: {reason}" if position else reason


async def read_batches(
    source: Source, since: str | None
) -> AsyncGenerator[Sequence[SourceItem], None]:
    """The source's records a batch at a time: its own batches when it has them, else groups
    of up to LOOKUP_CHUNK records."""
    if isinstance(source, BatchedSource):
        async with contextlib.aclosing(source.record_batches(since=since)) as batches:
            async for batch in batches:
                yield batch
        return
    async with contextlib.aclosing(source.records(since=since)) as records:
        group: list[SourceItem] = []
        async for record in records:
            group.append(record)
            if len(group) >= LOOKUP_CHUNK:
                yield group
                group = []
        if group:
            yield group


def mapping_fingerprint(job: Job, collection: CollectionJob) -> bytes:
    """What besides the record decides an item's content: the mapping and the run's mode."""
    spec = collection.model_dump_json(
        exclude={"source", "deletions", "max_delete_share", "conflicts"}
    )
    # Links are rewritten only with an old site: naming it re-maps every record once. Without
    # one the fingerprint is what it always was, so existing logs re-map nothing.
    links = f"\nold_site={job.run.old_site}" if job.run.old_site else ""
    return hashlib.blake2b(f"{job.run.mode}\n{spec}{links}".encode(), digest_size=16).digest()


class SourceHasher:
    """The fingerprint of a record as read: its fields, under the mapping's fingerprint."""

    # orjson and a pre-seeded hasher: this runs for every record of every rerun.
    _OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

    def __init__(self, fingerprint: bytes) -> None:
        self._seeded = hashlib.blake2b(fingerprint, digest_size=16)

    def __call__(self, record: SourceRecord) -> str:
        fields = record.fields
        if type(fields) is not dict:
            fields = dict(fields)
        hasher = self._seeded.copy()
        hasher.update(orjson.dumps(fields, option=self._OPTIONS, default=str))
        return hasher.hexdigest()
