"""The second pass: references into collections written in the same pass (a cycle, or the
collection itself), set once every item of them exists.

The items wait in the run's scratch (:meth:`CheckpointLog.defer_references`), not in memory,
and come back a chunk at a time; their updates are gathered per (collection, target) into
batches that are written as soon as they are full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowport.base.models import CollectionSchema
from flowport.pipeline.checkpoint import CheckpointLog, DeferredReferences, ItemFailure, ItemState
from flowport.pipeline.jobfile import Job
from flowport.pipeline.stages.publishing import publish_staged
from flowport.pipeline.stages.summary import RunSummary
from flowport.pipeline.writer import Batch, PendingItem, Target, Writer

__all__ = ["ReferenceSetter"]


class ReferenceSetter:
    """Sets deferred references in a run: PATCHes of the reference fields, by Webflow id."""

    def __init__(
        self,
        job: Job,
        writer: Writer,
        schemas: Mapping[str, CollectionSchema],
        summary: RunSummary,
    ) -> None:
        self.job = job
        self.writer = writer
        self.checkpoint: CheckpointLog = writer.checkpoint
        self.schemas = schemas
        self.summary = summary
        #: Updates waiting to fill a batch, per (collection, target), in the order first met.
        self.lanes: dict[tuple[str, Target], list[PendingItem]] = {}

    async def add(self, items: Sequence[DeferredReferences]) -> None:
        for item in items:
            state = self.checkpoint.lookup(item.collection, [item.key]).get(item.key)
            if state is None or not state.webflow_id:
                continue  # the item itself failed; its error is already logged
            pending = self.resolve(item, state)
            if pending is None:
                continue
            lane = (item.collection, pending.target)
            waiting = self.lanes.setdefault(lane, [])
            waiting.append(pending)
            if len(waiting) >= self.job.run.batch_size:
                await self.write(lane, waiting)
                waiting.clear()

    def resolve(self, item: DeferredReferences, state: ItemState) -> PendingItem | None:
        """The update that sets an item's references, or None (and a per-item error) when a
        key it refers to has no item."""
        references = self.job.collections[item.collection].references()
        schema = self.schemas[item.collection]
        field_data: dict[str, Any] = {}
        missing: list[str] = []
        for field_slug, keys in item.references.items():
            target = references.get(field_slug, item.collection)
            found = self.checkpoint.lookup(target, keys)
            ids = []
            for key in keys:
                written = found.get(key)
                if written is None or not written.webflow_id or written.state == "failed":
                    missing.append(f"{field_slug}: no item for source key {key!r} in {target}")
                else:
                    ids.append(written.webflow_id)
            definition = schema.field(field_slug)
            if definition is not None and definition.type == "Reference":
                if ids:
                    field_data[field_slug] = ids[0]
            else:
                field_data[field_slug] = ids
        if missing:
            failure = ItemFailure(
                key=item.key,
                field=missing[0].split(":", 1)[0],
                reason="; ".join(missing),
                kind="reference",
            )
            self.checkpoint.record_failures(item.collection, None, [failure])
            self.summary.count(item.collection, "failed")
            return None
        return PendingItem(
            key=item.key,
            field_data=field_data,
            slug=state.slug or "",
            content_hash=item.digest,
            target=_target(item.target),
            webflow_id=state.webflow_id,
            source_hash=item.source_hash,
        )

    async def write(self, lane: tuple[str, Target], items: Sequence[PendingItem]) -> None:
        collection, target = lane
        batch = Batch(collection, self.schemas[collection].id, "update", target, tuple(items))
        written = await self.writer.write(batch)
        self.summary.count(collection, "references_set", written.done)
        self.summary.count(collection, "failed", written.not_done)

    async def finish(self) -> None:
        """Write what is left in each lane; publish what went to a staged one."""
        for lane, items in self.lanes.items():
            if items:
                await self.write(lane, items)
        for collection, target in self.lanes:
            if target == "staged":
                # Counted as the first pass's publishing is: a refused publish is a failure
                # of the run (exit 1), not a staged item nobody mentions.
                published = await publish_staged(
                    self.writer, collection, self.schemas[collection].id
                )
                self.summary.add(collection, published.counts())
        self.lanes = {}


def _target(value: str) -> Target:
    # The scratch table keeps the target as text; it was a Target when it went in.
    return "staged" if value == "staged" else "draft" if value == "draft" else "live"
