"""Before the first write: the schema each collection's items will meet, the site's locales,
and (in a run) the collections and fields the job may create."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from flowport.base.errors import ConfigError, FatalError, OutcomeUnknown, ServerError
from flowport.base.models import CollectionSchema
from flowport.mappings import compile_mapping
from flowport.pipeline.jobfile import CollectionJob, Job
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.writer import Writer

__all__ = [
    "SCHEMA_ATTEMPTS",
    "CollectionMaker",
    "SiteLocales",
    "check_mapping",
    "check_mappings",
    "create_collection",
    "create_missing_fields",
    "expected_schema",
    "find_collection",
    "planned_schema",
    "prepare_collections",
]

#: Tries at creating a collection or its fields when answers get lost.
SCHEMA_ATTEMPTS = 8


class CollectionMaker(Protocol):
    """What the executor does about a collection or fields the job may create."""

    async def create_collection(
        self, site_id: str, name: str, collection: CollectionJob, ids: Mapping[str, str]
    ) -> CollectionSchema | None: ...

    async def create_missing_fields(
        self,
        name: str,
        collection: CollectionJob,
        schema: CollectionSchema,
        ids: Mapping[str, str],
    ) -> CollectionSchema: ...

    def collection_ready(self, name: str, schema: CollectionSchema) -> None: ...


async def prepare_collections(
    job: Job,
    writer: Writer,
    maker: CollectionMaker,
    site_id: str,
    existing: Sequence[CollectionSchema],
) -> dict[str, CollectionSchema]:
    """Find (or have the executor create) each target collection and its fields; read its
    schema. A collection a plan would create gets the schema it would have.

    A new collection is created with its fields in one request, in write order, so that the
    collections its references point to exist (and have ids) first; a reference to itself or
    to a later collection of a cycle is added once every collection exists.
    """
    schemas: dict[str, CollectionSchema] = {}
    ids: dict[str, str] = {}
    #: The create answers of new collections: their schema, no read needed.
    created: dict[str, CollectionSchema] = {}
    for name in job.write_order():
        collection = job.collections[name]
        found = find_collection(existing, collection.target)
        if found is None:  # check_mappings made sure the job may create it
            found = await maker.create_collection(site_id, name, collection, ids)
            if found is None:
                schemas[name] = planned_schema(name, collection)
                continue
            created[name] = found
        ids[name] = found.id
    for name in job.write_order():
        if name not in ids:
            continue
        collection = job.collections[name]
        schema = created.get(name) or await writer.api.get_collection(ids[name], collection=name)
        if collection.create_missing:
            schema = await maker.create_missing_fields(name, collection, schema, ids)
        maker.collection_ready(name, schema)
        schemas[name] = schema
    return schemas


async def create_collection(
    writer: Writer,
    sink: ProgressSink,
    site_id: str,
    name: str,
    collection: CollectionJob,
    ids: Mapping[str, str],
) -> CollectionSchema:
    """Create a collection with its fields, in one request; after an answer that never came,
    look before creating again. Returns its full schema."""
    api = writer.api
    base = planned_schema(name, collection)
    # Only Webflow's own name and slug: every field of the job's schema is to be created.
    base = base.model_copy(update={"fields": base.fields[:2]})
    fields = collection.missing_fields(base, ids, skip_unknown_targets=True)
    sink.message("info", f"creating collection {collection.target} with {len(fields)} fields")
    for _attempt in range(SCHEMA_ATTEMPTS):
        try:
            answer = await api.create_collection(
                site_id,
                display_name=collection.target,
                singular_name=collection.schema_singular_name(),
                slug=collection.target_slug(),
                fields=fields,
                collection=name,
            )
        except (ServerError, OutcomeUnknown) as error:
            sink.message("warning", f"creating collection {collection.target}: {error}")
            existing = await api.list_collections(site_id, collection=name)
            found = find_collection(existing, collection.target)
            if found is not None:
                # The list holds no fields: the schema is read (what is missing is added).
                return await api.get_collection(found.id, collection=name)
        else:
            if collection.missing_fields(answer, ids, skip_unknown_targets=True):
                # An answer without the fields just sent is not taken for the schema.
                return await api.get_collection(answer.id, collection=name)
            return answer
    raise FatalError(
        f"could not create collection {collection.target} after {SCHEMA_ATTEMPTS} attempts"
    )


async def create_missing_fields(
    writer: Writer,
    sink: ProgressSink,
    name: str,
    collection: CollectionJob,
    schema: CollectionSchema,
    ids: Mapping[str, str],
) -> CollectionSchema:
    """Create the fields the collection lacks, one request each, the schema completed from
    their answers; after a lost answer, or answers that do not name the fields asked for, the
    schema is read again and what is still missing is created."""
    api, collection_id = writer.api, schema.id
    for _attempt in range(SCHEMA_ATTEMPTS):
        missing = collection.missing_fields(schema, ids)
        if not missing:
            return schema
        # One line for them all, the steps on the live display: fifteen "creating field"
        # lines buried what a run had to say.
        sink.message("info", f"creating {len(missing)} fields in {name}")
        try:
            for step, definition in enumerate(missing):
                sink.phase(name, "setup", done=step, total=len(missing))
                added = await api.create_field(collection_id, definition, collection=name)
                schema = schema.model_copy(update={"fields": (*schema.fields, added)})
            sink.phase(name, "setup", done=len(missing), total=len(missing))
        except (ServerError, OutcomeUnknown) as error:
            sink.message("warning", f"creating fields in {name}: {error}")
        else:
            if not collection.missing_fields(schema, ids):
                return schema
        schema = await api.get_collection(collection_id, collection=name)
    if collection.missing_fields(schema, ids):
        raise FatalError(f"could not create the fields of {name} after {SCHEMA_ATTEMPTS} tries")
    return schema


class SiteLocales:
    """The site's locales: tag (lowercase) -> cmsLocaleId; the primary's under ""."""

    def __init__(self, by_tag: Mapping[str, str] | None = None) -> None:
        self.by_tag = dict(by_tag or {})

    @classmethod
    async def read(cls, job: Job, writer: Writer, site_id: str) -> SiteLocales:
        """The site's locales when some collection is localized; a wrong tag stops the run
        here, before any write."""
        locales = cls()
        if not any(c.locales for c in job.collections.values()):
            return locales
        site = await writer.api.get_site(site_id)
        if site.locales.primary is not None:
            locales.by_tag[""] = site.locales.primary.cms_locale_id
        for locale in (site.locales.primary, *site.locales.secondary):
            if locale is not None:
                locales.by_tag[locale.tag.lower()] = locale.cms_locale_id
        for name, collection in job.collections.items():
            locales.ids_for(name, collection)
        return locales

    def ids_for(self, name: str, collection: CollectionJob) -> tuple[str, ...]:
        """The primary cmsLocaleId, then one per locale the job writes, in its order."""
        if not collection.locales:
            return ()
        primary = self.by_tag.get("")
        if primary is None:
            raise ConfigError(
                "the site lists no locales",
                key=f"collections.{name}.locales",
                fix="enable localization on the site, or remove the locales table",
            )
        ids = [primary]
        for tag in collection.locales:
            locale_id = self.by_tag.get(tag.lower())
            if locale_id is None or locale_id == primary:
                known = sorted(t for t, i in self.by_tag.items() if t and i != primary)
                raise ConfigError(
                    f"'{tag}' is not a secondary locale of the site",
                    key=f"collections.{name}.locales.{tag}",
                    fix=f"use one of: {', '.join(known) or '(the site has no secondary locale)'}",
                )
            ids.append(locale_id)
        return tuple(ids)


async def check_mappings(
    job: Job, writer: Writer, site_id: str, existing: Sequence[CollectionSchema]
) -> None:
    """Compile every mapping against the schema it will meet, before anything is written.

    A missing collection the job may not create stops the run here.
    """
    for name in job.collections:

        async def read(collection_id: str, name: str = name) -> CollectionSchema:
            return await writer.api.get_collection(collection_id, collection=name)

        schema = await expected_schema(job, name, existing, read, site_id)
        check_mapping(job, name, schema)


async def expected_schema(
    job: Job,
    name: str,
    existing: Sequence[CollectionSchema],
    read: Callable[[str], Awaitable[CollectionSchema]],
    site_id: str,
) -> CollectionSchema:
    """The schema a collection's items will meet: as it is, plus what the job would create."""
    collection = job.collections[name]
    planned = planned_schema(name, collection)
    found = find_collection(existing, collection.target)
    if found is None:
        if not collection.create_missing:
            raise ConfigError(
                f"no collection '{collection.target}' on site {site_id}",
                key=f"collections.{name}.target",
                fix="create it in Webflow, or set create_missing = true with a schema",
            )
        return planned
    current = await read(found.id)
    if not collection.create_missing:
        return current
    have = {f.slug for f in current.fields}
    extra = [f for f in planned.fields if f.slug not in have]
    return current.model_copy(update={"fields": (*current.fields, *extra)})


def check_mapping(job: Job, name: str, schema: CollectionSchema) -> None:
    compile_mapping(
        job.collections[name].mapping(),
        schema,
        collection=name,
        resolver=_NoReferences(),
        slugs=_NoSlugs(),
        deferrable=frozenset(job.collections),
    )


class _NoReferences:
    def webflow_id(self, collection: str, source_key: str) -> str | None:
        return None


class _NoSlugs:
    def claim(self, source_key: str, wanted: str) -> str:
        return wanted


def find_collection(existing: Sequence[CollectionSchema], target: str) -> CollectionSchema | None:
    lowered = target.lower()
    for candidate in existing:
        if lowered in (
            candidate.id.lower(),
            candidate.slug.lower(),
            candidate.display_name.lower(),
        ):
            return candidate
    return None


def planned_schema(name: str, collection: CollectionJob) -> CollectionSchema:
    """What a collection the run would create will look like, for mapping it in a plan."""
    return collection.planned_schema(name)
