"""The map stage: records → proposals (mapped items with their target and content hash).

Slugs are settled for a whole chunk in one query; a record whose slug turns out to be held is
mapped again, claiming one slug at a time. A localized collection maps every record once per
secondary locale as well; its items are written staged in every locale, then published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from flowport.base.models import CollectionSchema
from flowport.connectors import SourceRecord
from flowport.mappings import (
    AttachmentLookup,
    LinkMap,
    MappedItem,
    MappingFailure,
    RecordMapper,
    ReferenceResolver,
    SkippedRecord,
    SlugClaims,
    compile_mapping,
    content_hash,
)
from flowport.pipeline.checkpoint import CheckpointLog, ItemFailure, ItemState, ItemWarning
from flowport.pipeline.jobfile import CollectionJob, Job
from flowport.pipeline.stages.claims import CheckpointSlugs, PrimarySlugs
from flowport.pipeline.stages.decide import Proposal
from flowport.pipeline.stages.read import ReadChunk
from flowport.pipeline.writer import Target

__all__ = ["LocaleMapper", "MapStage", "MappedChunk", "digest_of", "target_of", "warnings_of"]


@dataclass(slots=True)
class MappedChunk:
    #: The read stage's errors (unreadable records, repeated keys).
    failures: list[ItemFailure]
    #: Keys whose item was written from this very record.
    unchanged: list[str]
    proposals: list[Proposal] = field(default_factory=list)
    #: What the log holds for the proposals' keys (those it knows).
    states: dict[str, ItemState] = field(default_factory=dict)
    #: What reading and mapping the proposals' records changed: their standing warnings now.
    warnings: list[ItemWarning] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LocaleMapper:
    locale_id: str
    tag: str
    mapper: RecordMapper


class MapStage:
    def __init__(
        self,
        job: Job,
        collection: str,
        checkpoint: CheckpointLog,
        mapper: RecordMapper,
        slugs: CheckpointSlugs,
        locale_mappers: LocaleMappers,
    ) -> None:
        self.job = job
        self.collection = collection
        self.checkpoint = checkpoint
        self.mapper = mapper
        self.slugs = slugs
        self.locales = locale_mappers

    async def run(
        self, receive: ObjectReceiveStream[ReadChunk], send: ObjectSendStream[MappedChunk]
    ) -> None:
        async with receive, send:
            async for chunk in receive:
                await send.send(self.map_chunk(chunk))

    def map_chunk(self, chunk: ReadChunk) -> MappedChunk:
        states = self.checkpoint.lookup(self.collection, chunk.known)
        slugs, mapper = self.slugs, self.mapper
        slugs.remember(states)
        slugs.tentative()
        results = [(record, h, mapper.map(record)) for record, h in chunk.to_map]
        refused = slugs.settle()
        if refused:
            results = [
                (record, h, mapper.map(record) if record.key in refused else result)
                for record, h, result in results
            ]
        self.locales.warnings = []
        proposals = [self.propose(record, h, result) for record, h, result in results]
        slugs.flush()
        warnings = [w for record, _, result in results for w in warnings_of(record, result)]
        warnings.extend(self.locales.warnings)
        return MappedChunk(chunk.failures, chunk.unchanged, proposals, states, warnings)

    def propose(
        self,
        record: SourceRecord,
        source_hash: str,
        result: MappedItem | MappingFailure | SkippedRecord,
    ) -> Proposal:
        if not isinstance(result, MappedItem):
            return Proposal(record.key, source_hash, result)
        target = target_of(self.job, result)
        if not self.locales.mappers:
            return Proposal(record.key, source_hash, result, target, digest_of(result, target))
        # Localized items are created staged in every locale, then published.
        target = "draft" if target == "draft" else "staged"
        self.locales.primary_slugs[record.key] = str(result.field_data.get("slug", ""))
        values, problem = self.locales.map(record)
        if problem is not None:
            return Proposal(record.key, source_hash, result, target, locale_failure=problem)
        digest = digest_of(result, target, values)
        return Proposal(record.key, source_hash, result, target, digest, values)


class LocaleMappers:
    """A mapper per secondary locale: the primary's fields, overridden where the job says.

    Locale variants keep the primary's slug unless the job maps ``slug`` for the locale.
    """

    def __init__(
        self,
        checkpoint: CheckpointLog,
        name: str,
        collection: CollectionJob,
        schema: CollectionSchema,
        locale_ids: tuple[str, ...],
        *,
        resolver: ReferenceResolver,
        deferrable: frozenset[str],
        attachment_url: AttachmentLookup | None,
        link_map: LinkMap | None = None,
    ) -> None:
        #: The slug each record's primary item got in this run.
        self.primary_slugs: dict[str, str] = {}
        self.mappers: list[LocaleMapper] = []
        #: What mapping the secondary locales changed in the chunk being mapped, stored with
        #: the primary's: only fields a locale maps itself (the others are the primary's).
        self.warnings: list[ItemWarning] = []
        self.overridden: dict[str, frozenset[str]] = {
            tag: frozenset(overrides) for tag, overrides in collection.locales.items()
        }
        base = collection.mapping()
        pairs = zip(collection.locales.items(), locale_ids[1:], strict=True) if locale_ids else ()
        for (tag, overrides), locale_id in pairs:
            slugs: SlugClaims = (
                CheckpointSlugs(checkpoint, name)
                if "slug" in overrides
                else PrimarySlugs(self.primary_slugs)
            )
            mapper = compile_mapping(
                base.model_copy(update={"fields": {**base.fields, **overrides}}),
                schema,
                collection=name,
                slugs=slugs,
                resolver=resolver,
                deferrable=deferrable,
                attachment_url=attachment_url,
                link_map=link_map,
            )
            self.mappers.append(LocaleMapper(locale_id, tag, mapper))

    def map(
        self, record: SourceRecord
    ) -> tuple[dict[str, Mapping[str, Any]], MappingFailure | None]:
        """The record's values in each locale, or the first locale's reason it cannot be."""
        values: dict[str, Mapping[str, Any]] = {}
        for locale in self.mappers:
            variant = locale.mapper.map(record)
            if isinstance(variant, MappingFailure):
                reason = f"locale {locale.tag}: {variant.reason}"
                return values, MappingFailure(variant.key, variant.field, reason)
            if isinstance(variant, MappedItem):
                values[locale.locale_id] = variant.field_data
                own = self.overridden.get(locale.tag, frozenset())
                self.warnings.extend(
                    ItemWarning(record.key, w.field, w.kind, f"locale {locale.tag}: {w.message}")
                    for w in variant.warnings
                    if w.field in own
                )
        return values, None


def warnings_of(
    record: SourceRecord, result: MappedItem | MappingFailure | SkippedRecord
) -> list[ItemWarning]:
    """The record's source warnings, then its mapping's (a failed or skipped record has none)."""
    found = [ItemWarning(record.key, w.field, w.kind, w.message) for w in record.warnings]
    if isinstance(result, MappedItem):
        found.extend(ItemWarning(record.key, w.field, w.kind, w.message) for w in result.warnings)
    return found


def target_of(job: Job, mapped: MappedItem) -> Target:
    if job.run.mode == "draft" or mapped.status == "draft":
        return "draft"
    return "live" if job.run.mode == "live" else "staged"


def digest_of(
    result: MappedItem, target: Target, locales: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    if not result.deferred_references and not locales:
        return content_hash(result.field_data, target)
    data: dict[str, Any] = dict(result.field_data)
    if result.deferred_references:
        # Deferred references count by their source keys: the hash depends on the source alone.
        data["\u0000deferred"] = {
            f: list(keys) for f, keys in sorted(result.deferred_references.items())
        }
    if locales:
        data["\u0000locales"] = {k: dict(v) for k, v in sorted(locales.items())}
    return content_hash(data, target)
