"""One collection's run: the stages, joined by small bounded streams, in one task group.

::

    read ──ReadChunk──▶ map ──MappedChunk──▶ decide ──writes──▶ dispatch ──Batch──▶ N workers
                                                │                                     │
                                          (executor: failures, adoptions)   (executor: write)
    … with ``[assets]`` enabled, the assets stage (:mod:`.assets`) sits between decide and
    dispatch: decide ──writes──▶ assets ──writes──▶ dispatch.
    … then finish: vanished records, publishing what was staged, counts, the cursor.

Every stream holds at most a couple of chunks, so a slow Webflow slows the source down instead
of filling memory; each stage owns its end of a stream and closes it when done, which ends the
next stage in turn.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from flowport.base.errors import FlowportError
from flowport.base.models import CollectionSchema
from flowport.connectors import AttachmentSource, CountableSource, PartialSource, Source
from flowport.mappings import LinkMap, compile_mapping
from flowport.mappings.richtext import OLD_SITE_LINK, OLD_SITE_LINK_TEXT
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import Job
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.media import MediaProbe, MediaUploader
from flowport.pipeline.stages.assets import AssetCounts, AssetStage
from flowport.pipeline.stages.claims import CheckpointSlugs
from flowport.pipeline.stages.cursor import IncrementalCursor
from flowport.pipeline.stages.edits import EditCheck, UnlistedWindow, find_webflow_edits
from flowport.pipeline.stages.executors import Executor
from flowport.pipeline.stages.finish import finish_collection
from flowport.pipeline.stages.mapping import LocaleMappers, MappedChunk, MapStage
from flowport.pipeline.stages.read import ReadChunk, ReadStage, SourceHasher, mapping_fingerprint
from flowport.pipeline.stages.route import DecideStage, Foreign, foreign_items
from flowport.pipeline.stages.schema import SiteLocales
from flowport.pipeline.stages.summary import RunSummary
from flowport.pipeline.writer import Batch, Operation, PendingItem, Target, Writer

__all__ = ["BATCH_BUFFER", "CHUNK_BUFFER", "CollectionRun", "MediaMove"]

#: Batches waiting for a worker: small, so memory stays flat and backpressure reaches the source.
BATCH_BUFFER = 2
#: Chunks (of up to 500 records) waiting between two stages.
CHUNK_BUFFER = 1


@dataclass(frozen=True, slots=True)
class MediaMove:
    """The run's assets stage state: its uploader (None in a plan, which probes instead) and
    its counts."""

    uploader: MediaUploader | None
    counts: AssetCounts
    site_id: str
    probe: MediaProbe | None = None


class CollectionRun:
    def __init__(
        self,
        job: Job,
        name: str,
        *,
        writer: Writer,
        executor: Executor,
        summary: RunSummary,
        sink: ProgressSink,
        schemas: Mapping[str, CollectionSchema],
        locales: SiteLocales,
        source: Source | None = None,
        full_read: bool = False,
        media: MediaMove | None = None,
        link_map: LinkMap | None = None,
    ) -> None:
        self.job = job
        self.name = name
        self.writer = writer
        self.checkpoint: CheckpointLog = writer.checkpoint
        self.executor = executor
        self.summary = summary
        self.sink = sink
        self.schema = schemas[name]
        self.collection = job.collections[name]
        self.locale_ids = locales.ids_for(name, self.collection)
        #: The source as the preflight opened and checked it, when it did.
        self.source = source
        #: Read the whole source even if the collection is incremental (``run --full``).
        self.full_read = full_read
        #: The assets stage's share of the run, when ``[assets]`` is enabled.
        self.media = media
        #: The old site's pages -> Webflow paths, for links in rich text (``[run] old_site``).
        self.link_map = link_map

    async def run(self) -> None:
        name, schema, collection = self.name, self.schema, self.collection
        exists = not schema.id.startswith("planned-")
        await self.executor.begin_collection(name, schema.id if exists else None)
        foreign, edits = Foreign(), EditCheck()
        if exists:
            edits = await find_webflow_edits(self.writer.api, self.checkpoint, name, schema.id)
            self.executor.record_webflow_edits(name, edits)
            foreign = await foreign_items(
                self.writer, self.checkpoint, name, schema.id, collection.external_key_field
            )
        source = self.source or collection.source.open(base_dir=self.job.base_dir, env=os.environ)
        cursor = IncrementalCursor(
            self.checkpoint, name, incremental=collection.incremental, full_read=self.full_read
        )
        read = ReadStage(
            self.checkpoint,
            name,
            source,
            cursor,
            SourceHasher(mapping_fingerprint(self.job, collection)),
            remap=self.relinkable(),
        )
        mapping = self.map_stage(source)
        decide = DecideStage(
            name, self.checkpoint, self.executor, self.summary, self.sink, foreign,
            edits=edits.found, policy=self.job.conflict_policy(name),
            before_updates=self.unlisted_edits(edits) if edits.unlisted else None,
        )  # fmt: skip
        self.sink.collection_started(name, await self.estimated_total(source, cursor.since))
        await self.run_stages(read, mapping, decide)
        self.say_edits(len(edits.found.keys() - decide.conflicted))
        await finish_collection(
            self.executor,
            self.checkpoint,
            self.summary,
            self.sink,
            name,
            collection,
            schema.id,
            locale_ids=self.locale_ids,
            cursor=cursor,
            unreadable=read.unreadable,
            partial=isinstance(source, PartialSource) and source.partial,
        )

    def unlisted_edits(self, check: EditCheck) -> Callable[[list[str]], Awaitable[None]]:
        """What the decide stage awaits before records that would update items flowport wrote:
        their edits in the window the check left unlisted, found and kept in the log."""
        window = UnlistedWindow(self.writer.api, self.checkpoint, self.name, self.schema.id, check)

        async def look(item_ids: list[str]) -> None:
            before = len(check.found), check.unlisted
            await window.before_updates(item_ids)
            if (len(check.found), check.unlisted) != before:
                self.executor.record_webflow_edits(self.name, check)

        return look

    def say_edits(self, webflow_only: int) -> None:
        """Items changed in Webflow: those whose record did not change (nothing written, but
        counted), and a line for the conflicts left unwritten, for whoever reads the log."""
        name = self.name
        self.summary.count(name, "changed_in_webflow_only", webflow_only)
        conflicts = self.summary.collections.get(name, {}).get("conflicts", 0)
        if conflicts:
            self.sink.message(
                "warning",
                f"{name}: {conflicts} items changed in Webflow since flowport's last write and "
                'in the source were not written (conflicts = "report"; `flowport errors JOB` '
                "names them; --conflicts overwrite or merge writes them)",
            )

    def relinkable(self) -> frozenset[str]:
        """Keys whose body kept a link to an old page that now has an item (a post published
        since): mapped again though their record did not change, so the link is rewritten."""
        if self.link_map is None:
            return frozenset()
        link_map = self.link_map
        return frozenset(
            warning.key
            for warning in self.checkpoint.warnings.of_kind(self.name, OLD_SITE_LINK)
            if (found := link_map.resolve(warning.excerpt.removeprefix(OLD_SITE_LINK_TEXT)))
            is not None
            and found.href is not None
        )

    def map_stage(self, source: Source) -> MapStage:
        job, name, collection = self.job, self.name, self.collection
        references = collection.references()
        deferred_targets = frozenset(
            references[f]
            for f in job.write_order().deferred.get(name, frozenset())
            if f in references
        )
        attachment_url = source.attachment_url if isinstance(source, AttachmentSource) else None
        slugs = CheckpointSlugs(self.checkpoint, name)
        mapper = compile_mapping(
            collection.mapping(),
            self.schema,
            collection=name,
            resolver=self.executor.resolver(deferred_targets),
            slugs=slugs,
            deferrable=deferred_targets,
            attachment_url=attachment_url,
            link_map=self.link_map,
        )
        locale_mappers = LocaleMappers(
            self.checkpoint,
            name,
            collection,
            self.schema,
            self.locale_ids,
            resolver=self.executor.resolver(deferred_targets),
            deferrable=deferred_targets,
            attachment_url=attachment_url,
            link_map=self.link_map,
        )
        return MapStage(job, name, self.checkpoint, mapper, slugs, locale_mappers)

    async def run_stages(self, read: ReadStage, mapping: MapStage, decide: DecideStage) -> None:
        send_read, receive_read = anyio.create_memory_object_stream[ReadChunk](CHUNK_BUFFER)
        send_mapped, receive_mapped = anyio.create_memory_object_stream[MappedChunk](CHUNK_BUFFER)
        send_writes, receive_writes = anyio.create_memory_object_stream[list[PendingItem]](
            CHUNK_BUFFER
        )
        send_batch, receive_batch = anyio.create_memory_object_stream[Batch](BATCH_BUFFER)
        async with anyio.create_task_group() as group:
            group.start_soon(read.run, send_read)
            group.start_soon(mapping.run, receive_read, send_mapped)
            group.start_soon(decide.run, receive_mapped, send_writes)
            if self.media is not None:
                # decide -> assets -> dispatch: only what will be written meets its media.
                send_moved, receive_moved = anyio.create_memory_object_stream[list[PendingItem]](
                    CHUNK_BUFFER
                )
                group.start_soon(self.asset_stage(self.media).run, receive_writes, send_moved)
                receive_writes = receive_moved
            group.start_soon(self.dispatch, receive_writes, send_batch)
            with receive_batch:
                for _ in range(self.job.destination.concurrency):
                    group.start_soon(self.work, receive_batch.clone())

    def asset_stage(self, media: MediaMove) -> AssetStage:
        return AssetStage(
            self.name,
            self.schema,
            self.job.assets,
            media.uploader,
            media.probe,
            media.site_id,
            self.executor,
            self.checkpoint,
            self.summary,
            self.sink,
            media.counts,
        )

    async def dispatch(
        self, receive: ObjectReceiveStream[list[PendingItem]], send: ObjectSendStream[Batch]
    ) -> None:
        """Gather writes into batches per (operation, target), sent on as soon as one is full."""
        # Each locale of an item counts toward the 100 items a request may hold.
        batch_size = max(1, self.job.run.batch_size // max(len(self.locale_ids), 1))
        lanes: dict[tuple[Operation, Target], list[PendingItem]] = {}
        async with receive, send:
            async for writes in receive:
                for pending in writes:
                    lane: tuple[Operation, Target] = (
                        "update" if pending.webflow_id else "create",
                        pending.target,
                    )
                    waiting = lanes.setdefault(lane, [])
                    waiting.append(pending)
                    if len(waiting) >= batch_size:
                        await send.send(self.batch(lane, lanes.pop(lane)))
            for lane, waiting in lanes.items():
                await send.send(self.batch(lane, waiting))

    def batch(self, lane: tuple[Operation, Target], items: list[PendingItem]) -> Batch:
        return Batch(self.name, self.schema.id, lane[0], lane[1], tuple(items), self.locale_ids)

    async def work(self, receive: ObjectReceiveStream[Batch]) -> None:
        async with receive:
            async for batch in receive:
                await self.executor.write(batch)

    async def estimated_total(self, source: Source, since: str | None) -> int | None:
        """For the progress display: the source's own count, or what the last run saw."""
        if isinstance(source, CountableSource):
            try:
                total = await source.estimated_total(since)
            except FlowportError:
                total = None  # reading the source says what is wrong with it
            if total is not None:
                return total
        if since is not None:
            return None
        known = sum(self.checkpoint.counts().get(self.name, {}).values())
        return known or None
