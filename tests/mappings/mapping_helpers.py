"""Schemas, resolvers and records shared by the mapping tests."""

from __future__ import annotations

from typing import Any

from flowport.base.models import CollectionSchema
from flowport.connectors import SourceRecord
from flowport.mappings import (
    CollectionMapping,
    InMemorySlugClaims,
    MappedItem,
    MappingFailure,
    RecordMapper,
    SkippedRecord,
    compile_mapping,
    parse_collection_mapping,
)

AUTHOR_ID = "64a1b2c3d4e5f6a7b8c9d0e1"
OTHER_AUTHOR_ID = "64a1b2c3d4e5f6a7b8c9d0e2"
OPTION_NEWS = "66f6e966c9e1dc700a857ca3"
OPTION_REVIEW = "66f6e966c9e1dc700a857ca4"


def field(slug: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"id-{slug}", "slug": slug, "displayName": slug.title(), "type": kind, **extra}


def schema(*fields: dict[str, Any]) -> CollectionSchema:
    base = [
        field("name", "PlainText", isRequired=True),
        field("slug", "PlainText", isRequired=True),
    ]
    return CollectionSchema.model_validate(
        {"id": "c0ffee00c0ffee00c0ffee00", "displayName": "Posts", "fields": [*base, *fields]}
    )


class DictResolver:
    """A real resolver over a dict: (collection, source key) -> Webflow id."""

    def __init__(self, ids: dict[tuple[str, str], str] | None = None) -> None:
        self.ids = dict(ids or {})
        self.asked: list[tuple[str, str]] = []

    def webflow_id(self, collection: str, source_key: str) -> str | None:
        self.asked.append((collection, source_key))
        return self.ids.get((collection, source_key))


def compile_spec(
    spec: dict[str, Any],
    target: CollectionSchema,
    *,
    collection: str = "posts",
    resolver: DictResolver | None = None,
    slugs: InMemorySlugClaims | None = None,
    **options: Any,
) -> RecordMapper:
    mapping: CollectionMapping = parse_collection_mapping(spec, collection=collection)
    return compile_mapping(
        mapping,
        target,
        collection=collection,
        resolver=resolver or DictResolver(),
        slugs=slugs or InMemorySlugClaims(),
        **options,
    )


def map_one(
    mapper: RecordMapper, fields: dict[str, Any], key: str = "1"
) -> MappedItem | MappingFailure | SkippedRecord:
    return mapper.map(SourceRecord(key=key, fields=fields))


def mapped(mapper: RecordMapper, fields: dict[str, Any], key: str = "1") -> MappedItem:
    outcome = map_one(mapper, fields, key)
    assert isinstance(outcome, MappedItem), outcome
    return outcome


def failed(mapper: RecordMapper, fields: dict[str, Any], key: str = "1") -> MappingFailure:
    outcome = map_one(mapper, fields, key)
    assert isinstance(outcome, MappingFailure), outcome
    return outcome
