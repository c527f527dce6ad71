"""Executors carry the decisions out: the live one writes, the plan one only says.

The stages decide what becomes of every record, collection and vanished item the same way in
a run and in a plan (``flowport plan``); what differs is what is done about it, and that is all
here. :class:`LiveExecutor` writes batches through the writer and records every outcome in the
checkpoint log; :class:`PlanExecutor` counts ``would_create``/``would_update`` (and the
rest), samples field-level differences, and never writes to Webflow or to the log's file (the
run's scratch is a TEMP table).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from flowport.base.errors import RequestRejected
from flowport.base.models import CollectionSchema
from flowport.mappings import ReferenceResolver
from flowport.pipeline.checkpoint import (
    EXCERPT_CHARS,
    Acknowledged,
    CheckpointLog,
    DeferredReferences,
    ItemFailure,
    ItemState,
    ItemWarning,
)
from flowport.pipeline.file_values import Sameness, compare_values
from flowport.pipeline.jobfile import CollectionJob, Job
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.stages import schema
from flowport.pipeline.stages.claims import CheckpointReferences, PlannedReferences
from flowport.pipeline.stages.cursor import IncrementalCursor
from flowport.pipeline.stages.edits import EditCheck
from flowport.pipeline.stages.publishing import publish_staged
from flowport.pipeline.stages.second_pass import ReferenceSetter
from flowport.pipeline.stages.summary import RunSummary
from flowport.pipeline.writer import RECONCILE_SKEW, Batch, PendingItem, Writer

__all__ = ["PLAN_SAMPLES", "Executor", "LiveExecutor", "PlanExecutor", "RemovalPolicy"]

#: Field-level differences a plan shows per collection.
PLAN_SAMPLES = 3
#: Items removed in one request.
REMOVE_CHUNK = 100

RemovalPolicy = Literal["archive", "unpublish", "delete"]


class Executor(schema.CollectionMaker, Protocol):
    """What the stages leave to be done, in the order a collection meets it."""

    def resolver(self, deferred: frozenset[str]) -> ReferenceResolver:
        """How mapping turns a source key into the Webflow id of its item."""
        ...

    async def begin_collection(self, name: str, collection_id: str | None) -> None: ...

    def record_webflow_edits(self, name: str, check: EditCheck) -> None:
        """What the check for edits made in Webflow found, and where the next one starts."""
        ...

    async def write(self, batch: Batch) -> None: ...

    def record_failures(self, name: str, failures: Sequence[ItemFailure]) -> None: ...

    def record_adopted(self, name: str, adopted: Sequence[Acknowledged]) -> None: ...

    def record_warnings(
        self, name: str, keys: Sequence[str], warnings: Sequence[ItemWarning]
    ) -> None:
        """``keys`` were mapped again; ``warnings`` are what they warn of now."""
        ...

    def standing_warnings(self, name: str) -> dict[str, int]:
        """The collection's warnings per kind once this run is done, unchanged records' too."""
        ...

    def chunk_decided(self, name: str, planned: Sequence[str]) -> None:
        """A chunk's records that became (or stay) items: ``planned`` keys."""
        ...

    async def remove(
        self, name: str, collection_id: str, gone: Sequence[ItemState], policy: RemovalPolicy
    ) -> None: ...

    async def finish_collection(
        self,
        name: str,
        collection_id: str,
        locale_ids: Sequence[str],
        cursor: IncrementalCursor,
    ) -> None: ...

    async def set_references(self, items: Sequence[DeferredReferences]) -> None: ...

    async def references_done(self) -> None: ...

    async def publish_site(self, site_id: str) -> None: ...


class LiveExecutor:
    def __init__(
        self,
        job: Job,
        writer: Writer,
        summary: RunSummary,
        sink: ProgressSink,
        schemas: Mapping[str, CollectionSchema],
    ) -> None:
        self.job = job
        self.writer = writer
        self.checkpoint: CheckpointLog = writer.checkpoint
        self.summary = summary
        self.sink = sink
        self.references = ReferenceSetter(job, writer, schemas, summary)

    # -- collections and fields ------------------------------------------------------------------

    async def create_collection(
        self, site_id: str, name: str, collection: CollectionJob, ids: Mapping[str, str]
    ) -> CollectionSchema:
        # One step on the live display: the collection is made with its fields in one request.
        self.sink.phase(name, "setup", done=0, total=1)
        created = await schema.create_collection(
            self.writer, self.sink, site_id, name, collection, ids
        )
        self.sink.phase(name, "setup", done=1, total=1)
        return created

    async def create_missing_fields(
        self,
        name: str,
        collection: CollectionJob,
        current: CollectionSchema,
        ids: Mapping[str, str],
    ) -> CollectionSchema:
        return await schema.create_missing_fields(
            self.writer, self.sink, name, collection, current, ids
        )

    def collection_ready(self, name: str, current: CollectionSchema) -> None:
        self.checkpoint.set_collection_id(name, current.id)

    # -- items -----------------------------------------------------------------------------------

    def resolver(self, deferred: frozenset[str]) -> ReferenceResolver:
        return CheckpointReferences(self.checkpoint, deferred)

    async def begin_collection(self, name: str, collection_id: str | None) -> None:
        if collection_id is not None:
            await self.reconcile_leftovers(name, collection_id)

    async def reconcile_leftovers(self, name: str, collection_id: str) -> None:
        """Creates an earlier run sent without hearing back: read them back before resending."""
        checkpoint = self.checkpoint
        leftovers = list(checkpoint.in_state(name, "sending"))
        if not leftovers:
            return
        found = await self.writer.find_existing(
            name,
            collection_id,
            [_unsettled(s) for s in leftovers],
            created_from=_oldest(leftovers) - RECONCILE_SKEW,
        )
        acknowledged = [
            Acknowledged(
                key=s.key,
                webflow_id=found[s.key].id,
                slug=found[s.key].slug or s.slug or "",
                content_hash=s.content_hash or "",
                # Whether it was published is read from Webflow, not assumed.
                state=(
                    "done" if found[s.key].last_published or found[s.key].is_draft else "staged"
                ),
                webflow_updated=found[s.key].last_updated,
            )
            for s in leftovers
            if s.key in found
        ]
        with checkpoint.batch(self.writer.run_id, name, "reconcile", len(leftovers)) as record:
            record.acknowledge(acknowledged)
            # What was not found was never created: its intent goes, and its record is new again.
            record.settle_intents(sorted({s.batch_id for s in leftovers if s.batch_id}))
            record.detail = f"{len(found)} found, {len(leftovers) - len(found)} not sent"
        if found:
            # Said, not counted: the decide stage counts these records (unchanged, mostly) as
            # it counts every record, and a second count would make the summary's totals lie.
            self.summary.notes.append(
                f"{name}: {len(found)} items an earlier run created without hearing back were "
                "found in Webflow (read back, not sent again)"
            )

    def record_webflow_edits(self, name: str, check: EditCheck) -> None:
        edits = self.checkpoint.edits
        edits.record(name, {key: edit.to_json() for key, edit in check.found.items()})
        if check.horizon is not None:
            edits.set_horizon(name, check.horizon, check.baseline or check.horizon)

    async def write(self, batch: Batch) -> None:
        # Counted batch by batch, by the code that did the work: a stopped run's summary holds
        # what was done up to the stop.
        written = await self.writer.write(batch)
        self.summary.add(batch.collection, written.counts())
        self.sink.advanced(batch.collection, done=written.done, failed=written.not_done)

    def record_failures(self, name: str, failures: Sequence[ItemFailure]) -> None:
        self.checkpoint.record_failures(name, None, failures)

    def record_warnings(
        self, name: str, keys: Sequence[str], warnings: Sequence[ItemWarning]
    ) -> None:
        self.checkpoint.warnings.replace(name, keys, warnings)

    def standing_warnings(self, name: str) -> dict[str, int]:
        return self.checkpoint.warnings.counts().get(name, {})

    def record_adopted(self, name: str, adopted: Sequence[Acknowledged]) -> None:
        with self.checkpoint.batch(self.writer.run_id, name, "adopt", len(adopted)) as adoption:
            adoption.acknowledge(adopted)

    def chunk_decided(self, name: str, planned: Sequence[str]) -> None:
        return None  # a run's references resolve through the log itself

    async def remove(
        self, name: str, collection_id: str, gone: Sequence[ItemState], policy: RemovalPolicy
    ) -> None:
        outcome = {"archive": "archived", "unpublish": "unpublished", "delete": "deleted"}[policy]
        for start in range(0, len(gone), REMOVE_CHUNK):
            chunk = gone[start : start + REMOVE_CHUNK]
            if await self.remove_chunk(name, collection_id, chunk, policy):
                self.summary.count(name, outcome, len(chunk))

    async def remove_chunk(
        self, name: str, collection_id: str, chunk: Sequence[ItemState], policy: RemovalPolicy
    ) -> bool:
        api = self.writer.api
        ids = [s.webflow_id or "" for s in chunk]
        operation: Callable[[], Awaitable[Any]]
        if policy == "archive":
            operation = functools.partial(
                self.archive, name, collection_id, ids, unpublish=self.job.run.mode == "live"
            )
        else:
            live = policy == "unpublish"
            operation = functools.partial(
                api.delete_items, collection_id, ids, live=live, collection=name
            )
        with self.checkpoint.batch(self.writer.run_id, name, policy, len(chunk)) as record:
            try:
                await operation()
            except RequestRejected as error:
                if error.code != "item_not_found":
                    record.rejected(str(error))
                    self.summary.notes.append(f"{name}: could not {policy} items: {error}")
                    return False
            keys = [s.key for s in chunk]
            if policy == "delete":
                record.forget(keys)
            else:
                removed: Literal["archived", "unpublished"] = (
                    "archived" if policy == "archive" else "unpublished"
                )
                record.mark_removed(keys, removed)
        return True

    async def archive(
        self, name: str, collection_id: str, ids: Sequence[str], *, unpublish: bool
    ) -> None:
        api = self.writer.api
        archived = [{"id": i, "isArchived": True} for i in ids]
        await api.update_items(collection_id, archived, live=False, collection=name)
        if unpublish:
            # Webflow takes an archived item off the live site only at the next site publish;
            # a live run publishes no site, so it unpublishes what it archives (both calls are
            # idempotent, so a retry of the pair is safe).
            await api.delete_items(collection_id, list(ids), live=True, collection=name)

    async def finish_collection(
        self,
        name: str,
        collection_id: str,
        locale_ids: Sequence[str],
        cursor: IncrementalCursor,
    ) -> None:
        published = await publish_staged(
            self.writer, name, collection_id, locale_ids, sink=self.sink
        )
        self.summary.add(name, published.counts())
        counts = self.summary.collections.get(name, {})
        # A conflict left unwritten is read again by the next run, as a failure is.
        cursor.commit(failed=bool(counts.get("failed") or counts.get("conflicts")))

    # -- the run ---------------------------------------------------------------------------------

    async def set_references(self, items: Sequence[DeferredReferences]) -> None:
        await self.references.add(items)

    async def references_done(self) -> None:
        await self.references.finish()

    async def publish_site(self, site_id: str) -> None:
        await self.writer.api.publish_site(site_id)
        self.summary.site_published = True


class PlanExecutor:
    """Says what a run would do. Reads Webflow (for samples) but never writes to it."""

    def __init__(self, writer: Writer, summary: RunSummary) -> None:
        self.writer = writer
        self.checkpoint: CheckpointLog = writer.checkpoint
        self.summary = summary
        #: Per collection and kind, how a run would change the log's standing warnings.
        self.warning_changes: dict[str, dict[str, int]] = {}

    async def create_collection(
        self, site_id: str, name: str, collection: CollectionJob, ids: Mapping[str, str]
    ) -> CollectionSchema | None:
        self.summary.notes.append(f"would create collection {collection.target}")
        return None

    async def create_missing_fields(
        self,
        name: str,
        collection: CollectionJob,
        current: CollectionSchema,
        ids: Mapping[str, str],
    ) -> CollectionSchema:
        for definition in collection.missing_fields(current, ids):
            label = definition.get("displayName")
            self.summary.notes.append(f"would create field {label} in {name}")
        return current

    def collection_ready(self, name: str, current: CollectionSchema) -> None:
        return None

    def resolver(self, deferred: frozenset[str]) -> ReferenceResolver:
        return PlannedReferences(self.checkpoint, deferred)

    async def begin_collection(self, name: str, collection_id: str | None) -> None:
        return None

    def record_webflow_edits(self, name: str, check: EditCheck) -> None:
        return None  # a plan writes nothing, not even where the next check starts

    async def write(self, batch: Batch) -> None:
        outcome = "would_create" if batch.operation == "create" else "would_update"
        self.summary.count(batch.collection, outcome, len(batch.items))
        if batch.operation != "update":
            return
        samples = self.summary.samples
        shown = sum(1 for s in samples if s["collection"] == batch.collection)
        for pending in batch.items[: max(0, PLAN_SAMPLES - shown)]:
            if pending.webflow_id is None:
                continue
            current = await self.writer.api.get_item(
                batch.collection_id, pending.webflow_id, collection=batch.collection
            )
            changes = {
                slug: {"from": current.field_data.get(slug), "to": value}
                for slug, value in pending.field_data.items()
                if compare_values(value, current.field_data.get(slug)) is Sameness.DIFFERENT
            }
            samples.append({"collection": batch.collection, "key": pending.key, "changes": changes})

    def record_failures(self, name: str, failures: Sequence[ItemFailure]) -> None:
        self.summary.notes.extend(f"{name} {f.key}: {f.reason}" for f in failures[:PLAN_SAMPLES])

    def record_adopted(self, name: str, adopted: Sequence[Acknowledged]) -> None:
        return None

    def record_warnings(
        self, name: str, keys: Sequence[str], warnings: Sequence[ItemWarning]
    ) -> None:
        changes = self.warning_changes.setdefault(name, {})
        for replaced in self.checkpoint.warnings.of_keys(name, keys):
            changes[replaced.kind] = changes.get(replaced.kind, 0) - 1
        for warning in warnings:
            changes[warning.kind] = changes.get(warning.kind, 0) + 1
        shown = self.summary.warnings
        for warning in warnings[
            : max(0, PLAN_SAMPLES - sum(1 for w in shown if w["collection"] == name))
        ]:
            shown.append(
                {
                    "collection": name,
                    "key": warning.key,
                    "field": warning.field,
                    "kind": warning.kind,
                    "excerpt": warning.excerpt[:EXCERPT_CHARS],
                }
            )

    def standing_warnings(self, name: str) -> dict[str, int]:
        counts = dict(self.checkpoint.warnings.counts().get(name, {}))
        for kind, change in self.warning_changes.get(name, {}).items():
            counts[kind] = counts.get(kind, 0) + change
        return {kind: n for kind, n in counts.items() if n}

    def chunk_decided(self, name: str, planned: Sequence[str]) -> None:
        # References to these records resolve to a stand-in id in the collections after.
        self.checkpoint.mark_planned(name, planned)

    async def remove(
        self, name: str, collection_id: str, gone: Sequence[ItemState], policy: RemovalPolicy
    ) -> None:
        self.summary.count(name, f"would_{policy}", len(gone))

    async def finish_collection(
        self,
        name: str,
        collection_id: str,
        locale_ids: Sequence[str],
        cursor: IncrementalCursor,
    ) -> None:
        return None

    async def set_references(self, items: Sequence[DeferredReferences]) -> None:
        for item in items:
            self.summary.count(item.collection, "would_set_references")

    async def references_done(self) -> None:
        return None

    async def publish_site(self, site_id: str) -> None:
        return None


def _unsettled(state: ItemState) -> PendingItem:
    return PendingItem(
        key=state.key,
        field_data={},
        slug=state.slug or "",
        content_hash=state.content_hash or "",
        target="live",
    )


def _oldest(states: Sequence[ItemState]) -> datetime:
    return min(_parse_time(s.updated_at) for s in states)


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
