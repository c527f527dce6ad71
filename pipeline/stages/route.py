"""The decide stage: each proposal, with what the log holds and any item to adopt, through
:func:`.decide.decide`; then each decision carried out in its place.

Writes (creates, updates) go on to the dispatch stage; failures, adoptions and the
per-collection counts go to the executor a chunk at a time; items whose references must wait
for every item to exist go to the second pass's table in the run's scratch, on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from flowport.base.models import Item
from flowport.mappings import MappedItem, MappingFailure
from flowport.pipeline.checkpoint import (
    Acknowledged,
    CheckpointLog,
    DeferredReferences,
    ItemFailure,
    ItemWarning,
)
from flowport.pipeline.file_values import file_name_of
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.stages.decide import Action, Decision, Proposal, decide, wants_foreign
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


class DecideStage:
    def __init__(
        self,
        collection: str,
        checkpoint: CheckpointLog,
        executor: Executor,
        summary: RunSummary,
        sink: ProgressSink,
        foreign: Foreign,
    ) -> None:
        self.collection = collection
        self.checkpoint = checkpoint
        self.executor = executor
        self.summary = summary
        self.sink = sink
        self.foreign = foreign

    async def run(
        self,
        receive: ObjectReceiveStream[MappedChunk],
        send: ObjectSendStream[list[PendingItem]],
    ) -> None:
        async with receive, send:
            async for chunk in receive:
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
            decision = decide(proposal, stored, foreign)
            if decision.media_by_name:
                chunk.warnings.extend(_compared_by_name(proposal, decision))
            self.carry_out(proposal, decision, outcomes)
        return outcomes

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
        outcomes.writes.append(
            PendingItem(
                key=proposal.key,
                field_data=proposal.result.field_data,
                slug=proposal.slug,
                content_hash=decision.stored_hash,
                target=decision.target,
                webflow_id=decision.webflow_id,
                locales=proposal.locales,
                source_hash=proposal.source_hash,
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
