"""The decide stage: each proposal, with what the log holds and any item to adopt, through
:func:`.decide.decide`; then each decision carried out in its place.

Writes (creates, updates) go on to the dispatch stage; failures, adoptions and the
per-collection counts go to the executor a chunk at a time; items whose references must wait
for every item to exist go to the second pass's table in the run's scratch, on disk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import orjson
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from flowport.base.models import Item
from flowport.mappings import MappedItem, MappingFailure
from flowport.pipeline.checkpoint import (
    Acknowledged,
    CheckpointLog,
    DeferredReferences,
    ItemFailure,
    ItemState,
    ItemWarning,
)
from flowport.pipeline.file_values import file_name_of
from flowport.pipeline.jobfile import ConflictPolicy
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.stages.decide import (
    WRITTEN_STATES,
    Action,
    Decision,
    Proposal,
    WebflowEdit,
    decide,
    wants_foreign,
)
from flowport.pipeline.stages.executors import Executor
from flowport.pipeline.stages.mapping import MappedChunk
from flowport.pipeline.stages.summary import RunSummary
from flowport.pipeline.writer import PendingItem, Writer

__all__ = ["DecideStage", "Foreign", "foreign_items"]


@dataclass(slots=True)
class Foreign:
    """Items in the collection that this job's log does not know, by slug and external key."""

    by_slug: dict[str, Item] = field(default_factory=dict)
    by_key: dict[str, Item] = field(default_factory=dict)

    def adopt(self, key: str, slug: str) -> Item | None:
        item = self.by_key.get(key) or self.by_slug.get(slug)
        if item is not None:
            # One item, one record: it cannot be adopted twice.
            self.by_slug.pop(item.slug or "", None)
            for other_key, other in list(self.by_key.items()):
                if other.id == item.id:
                    del self.by_key[other_key]
        return item


async def foreign_items(
    writer: Writer, checkpoint: CheckpointLog, name: str, collection_id: str, key_field: str | None
) -> Foreign:
    """Items in the collection this job did not write, to adopt instead of duplicating."""
    page = await writer.api.list_items(collection_id, limit=1, collection=name)
    foreign = Foreign()
    if page.pagination.total <= checkpoint.count_in_webflow(name):
        return foreign
    async for item in writer.api.iter_items(collection_id, collection=name):
        if checkpoint.by_webflow_ids(name, [item.id]):
            continue
        if item.slug:
            foreign.by_slug[item.slug] = item
        if key_field is not None and item.field_data.get(key_field) is not None:
            foreign.by_key[str(item.field_data[key_field])] = item
    return foreign


@dataclass(slots=True)
class _Outcomes:
    """What one chunk's decisions leave to do besides writing."""

    failures: list[ItemFailure]
    #: Keys that a run would turn into items (a plan resolves references to them).
    planned: list[str]
    adopted: list[Acknowledged] = field(default_factory=list)
    deferred: list[DeferredReferences] = field(default_factory=list)
    writes: list[PendingItem] = field(default_factory=list)
    #: Items changed in the source and in Webflow that are not written (per-item errors).
    conflicts: list[ItemFailure] = field(default_factory=list)


#: Conflicts a run's summary lists per collection (``flowport errors`` lists every one).
SUMMARY_CONFLICTS = 20


def _written_items_to_update(chunk: MappedChunk) -> list[str]:
    """The Webflow ids of the chunk's records that changed since flowport wrote their items:
    the only records whose decision an edit made in Webflow can change."""
    ids: list[str] = []
    for proposal in chunk.proposals:
        stored = chunk.states.get(proposal.key)
        if (
            stored is not None
            and stored.webflow_id
            and stored.state in WRITTEN_STATES
            and stored.content_hash != proposal.digest
        ):
            ids.append(stored.webflow_id)
    return ids


class DecideStage:
    def __init__(
        self,
        collection: str,
        checkpoint: CheckpointLog,
        executor: Executor,
        summary: RunSummary,
        sink: ProgressSink,
        foreign: Foreign,
        *,
        edits: Mapping[str, WebflowEdit] | None = None,
        policy: ConflictPolicy = "report",
        before_updates: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.collection = collection
        self.checkpoint = checkpoint
        self.executor = executor
        self.summary = summary
        self.sink = sink
        self.foreign = foreign
        #: Edits made in Webflow that this run's check found (the log keeps earlier ones).
        self.edits = edits if edits is not None else {}  # shared: it grows as windows are read
        self.policy: ConflictPolicy = policy
        #: Keys whose edit in Webflow met a change in the source in this run.
        self.conflicted: set[str] = set()
        #: Awaited with the Webflow ids of a chunk's records that would update items flowport
        #: wrote, before they are decided: edits the check left unlisted join ``edits``.
        self.before_updates = before_updates

    async def run(
        self,
        receive: ObjectReceiveStream[MappedChunk],
        send: ObjectSendStream[list[PendingItem]],
    ) -> None:
        async with receive, send:
            async for chunk in receive:
                if self.before_updates is not None:
                    updating = _written_items_to_update(chunk)
                    if updating:
                        await self.before_updates(updating)
                outcomes = self.decide_chunk(chunk)
                # Before the writes go on: the assets stage adds its warnings to these.
                self.settle_warnings(chunk)
                if outcomes.writes:
                    await send.send(outcomes.writes)
                self.settle(outcomes)

    def decide_chunk(self, chunk: MappedChunk) -> _Outcomes:
        name, summary = self.collection, self.summary
        outcomes = _Outcomes(failures=list(chunk.failures), planned=list(chunk.unchanged))
        if chunk.unchanged:
            summary.count(name, "unchanged", len(chunk.unchanged))
            self.sink.advanced(name, unchanged=len(chunk.unchanged))
        # Most collections hold no item someone else made: then there is nothing to look up.
        has_foreign = bool(self.foreign.by_slug or self.foreign.by_key)
        for proposal in chunk.proposals:
            result = proposal.result
            if isinstance(result, MappedItem):
                outcomes.planned.append(proposal.key)
            stored = chunk.states.get(proposal.key)
            foreign = (
                self.foreign.adopt(proposal.key, proposal.slug)
                if has_foreign and wants_foreign(proposal, stored)
                else None
            )
            edit = self.edit_of(proposal.key, stored)
            decision = decide(proposal, stored, foreign, edit, self.policy)
            if decision.media_by_name:
                chunk.warnings.extend(_compared_by_name(proposal, decision))
            if decision.conflict is not None and edit is not None:
                self.name_conflict(proposal, decision, edit, outcomes, chunk)
            self.carry_out(proposal, decision, outcomes)
        return outcomes

    def edit_of(self, key: str, stored: ItemState | None) -> WebflowEdit | None:
        found = self.edits.get(key)
        if found is not None or stored is None:
            return found
        return WebflowEdit.from_json(stored.webflow_edit)

    def name_conflict(
        self,
        proposal: Proposal,
        decision: Decision,
        edit: WebflowEdit,
        outcomes: _Outcomes,
        chunk: MappedChunk,
    ) -> None:
        """An item changed by someone else in Webflow whose record changed too: said per item,
        whatever the policy made of it."""
        name, key = self.collection, proposal.key
        self.conflicted.add(key)
        fields = ", ".join(edit.fields or ()) or "which not known"
        first = edit.fields[0] if edit.fields else None
        if decision.action is Action.CONFLICT:
            outcome = "conflicts"
            outcomes.conflicts.append(
                ItemFailure(key, first, _conflict_reason(decision, edit), kind="conflict")
            )
        elif decision.fields is not None:
            outcome = "merged"
            both = sorted(set(edit.fields or ()) & set(decision.fields))
            message = (
                f"changed in Webflow at {edit.at} (fields: {fields}); merged: wrote only the "
                f"fields the source changed ({', '.join(decision.fields) or 'none'})"
                + (f"; changed on both sides, the source's value written: {', '.join(both)}"
                   if both else "")
            )  # fmt: skip
            chunk.warnings.append(ItemWarning(key, first, "webflow_edit_merged", message))
        else:
            outcome = "overwritten"
            message = f"changed in Webflow at {edit.at} (fields: {fields}); overwritten"
            chunk.warnings.append(ItemWarning(key, first, "webflow_edit_overwritten", message))
        self.summary.count(name, outcome)
        listed = self.summary.conflicts
        if sum(1 for c in listed if c["collection"] == name) < SUMMARY_CONFLICTS:
            listed.append(
                {
                    "collection": name,
                    "key": key,
                    "item_id": decision.webflow_id,
                    "changed_at": edit.at,
                    "fields": list(edit.fields or ()),
                    "outcome": outcome,
                }
            )

    def carry_out(self, proposal: Proposal, decision: Decision, outcomes: _Outcomes) -> None:
        name, summary, action = self.collection, self.summary, decision.action
        if action is Action.FAIL:
            failure = proposal.locale_failure or proposal.result
            assert isinstance(failure, MappingFailure)
            outcomes.failures.append(_mapping_failure(failure))
            return
        if action is Action.SKIP:
            summary.count(name, "skipped")
            return
        if action is Action.CONFLICT:
            return  # named by name_conflict, left as it is in Webflow
        if action in (Action.ADOPT, Action.ADOPT_UPDATE):
            summary.count(name, "adopted")
        if action in (Action.UNCHANGED, Action.ADOPT):
            if action is Action.ADOPT:
                outcomes.adopted.append(_acknowledged(proposal, decision))
            summary.count(name, "unchanged")
            self.sink.advanced(name, unchanged=1)
            return
        assert isinstance(proposal.result, MappedItem)
        if decision.second_pass:
            outcomes.deferred.append(_deferred(name, proposal))
        if action is Action.DEFER:
            return
        field_data, locales = proposal.result.field_data, proposal.locales
        if decision.fields is not None:
            # A merge: only the fields the source changed, the editor's others left alone.
            field_data, locales = _only(decision.fields, field_data, locales)
        outcomes.writes.append(
            PendingItem(
                key=proposal.key,
                field_data=field_data,
                slug=proposal.slug,
                content_hash=decision.stored_hash,
                target=decision.target,
                webflow_id=decision.webflow_id,
                locales=locales,
                source_hash=proposal.source_hash,
                field_hashes=orjson.dumps(proposal.field_hashes()).decode(),
            )
        )

    def settle_warnings(self, chunk: MappedChunk) -> None:
        if chunk.proposals:
            keys = [proposal.key for proposal in chunk.proposals]
            self.executor.record_warnings(self.collection, keys, chunk.warnings)

    def settle(self, outcomes: _Outcomes) -> None:
        """What a chunk's decisions leave besides writes, once its writes are on their way."""
        name = self.collection
        if outcomes.failures:
            self.summary.count(name, "failed", len(outcomes.failures))
            self.sink.advanced(name, failed=len(outcomes.failures))
            self.executor.record_failures(name, outcomes.failures)
        if outcomes.conflicts:
            # Counted by name_conflict; kept as per-item errors until resolved.
            self.sink.advanced(name, failed=len(outcomes.conflicts))
            self.executor.record_failures(name, outcomes.conflicts)
        if outcomes.adopted:
            self.executor.record_adopted(name, outcomes.adopted)
        if outcomes.deferred:
            self.checkpoint.defer_references(outcomes.deferred)
        if outcomes.planned:
            self.executor.chunk_decided(name, outcomes.planned)


def _compared_by_name(proposal: Proposal, decision: Decision) -> list[ItemWarning]:
    """An adopted item whose media matched by file name: its bytes were never compared."""
    assert isinstance(proposal.result, MappedItem)
    return [
        ItemWarning(
            proposal.key,
            slug,
            "media_compared_by_name",
            f"adopted item {decision.webflow_id}: Webflow's copy of "
            f"{_names(proposal.result.field_data.get(slug))} was taken as the source's file by "
            "its name; the bytes were not compared, so a file replaced under the same name "
            "keeps Webflow's older copy",
        )
        for slug in decision.media_by_name
    ]


def _names(value: object) -> str:
    values = value if isinstance(value, list) else [value]
    names = [file_name_of(str(entry.get("url", ""))) for entry in values if isinstance(entry, dict)]
    return ", ".join(repr(name) for name in names if name) or "the file"


def _conflict_reason(decision: Decision, edit: WebflowEdit) -> str:
    fields = ", ".join(edit.fields or ()) or "which not known"
    said = f"changed in Webflow at {edit.at} (fields: {fields}) since flowport's last write, "
    if decision.conflict == "merge":
        return said + (
            'and in the source; conflicts = "merge" cannot tell which fields the source '
            "changed (the log has no record of the fields of its last write): not written. "
            "Run once with --conflicts overwrite to write the source's version"
        )
    return said + (
        'and in the source: not written (conflicts = "report"). To write the source\'s '
        "version run once with --conflicts overwrite, or --conflicts merge for only the "
        "fields the source changed"
    )


def _only(
    fields: tuple[str, ...],
    field_data: Mapping[str, object],
    locales: Mapping[str, Mapping[str, object]],
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """The fields named (``cmsLocaleId/slug`` for a secondary locale's) of a record's values."""
    wanted = set(fields)
    primary = {slug: v for slug, v in field_data.items() if slug in wanted}
    per_locale = {
        locale_id: {s: v for s, v in values.items() if f"{locale_id}/{s}" in wanted}
        for locale_id, values in locales.items()
    }
    return primary, {k: v for k, v in per_locale.items() if v}


def _mapping_failure(failure: MappingFailure) -> ItemFailure:
    return ItemFailure(key=failure.key, field=failure.field, kind="mapping", reason=failure.reason)


def _acknowledged(proposal: Proposal, decision: Decision) -> Acknowledged:
    return Acknowledged(
        key=proposal.key,
        webflow_id=decision.webflow_id or "",
        slug=decision.slug,
        content_hash=decision.stored_hash,
        state=decision.state,
        source_hash=proposal.source_hash,
        webflow_updated=decision.webflow_updated,
        field_hashes=orjson.dumps(proposal.field_hashes()).decode(),
    )


def _deferred(collection: str, proposal: Proposal) -> DeferredReferences:
    assert isinstance(proposal.result, MappedItem)
    return DeferredReferences(
        collection=collection,
        key=proposal.key,
        target=proposal.target,
        digest=proposal.digest,
        references=proposal.result.deferred_references,
        source_hash=proposal.source_hash,
    )
