"""Field mappings: from a source record to the ``fieldData`` Webflow accepts.

    spec = parse_collection_mapping(job["collections"]["posts"], collection="posts")
    mapper = compile_mapping(spec, schema, collection="posts", resolver=ids, slugs=claims)
    outcome = mapper.map(record)   # MappedItem | MappingFailure | SkippedRecord

Compiling checks the mapping against the collection's schema once (ConfigError naming the key and
a fix); mapping checks every value as Webflow would, so a bad record is a per-item failure with
its reason, never a rejected request.
"""

from __future__ import annotations

from flowport.mappings.compiler import RecordMapper, ReferenceResolver, compile_mapping
from flowport.mappings.hashing import content_hash
from flowport.mappings.links import LinkMap
from flowport.mappings.results import MappedItem, MappingFailure, MappingWarning, SkippedRecord
from flowport.mappings.slugs import InMemorySlugClaims, SlugClaims, slug_with_suffix, webflow_slug
from flowport.mappings.spec import (
    CollectionMapping,
    FieldMapping,
    StatusMapping,
    TransformSpec,
    parse_collection_mapping,
)
from flowport.mappings.transforms import AttachmentLookup

__all__ = [
    "AttachmentLookup",
    "CollectionMapping",
    "FieldMapping",
    "InMemorySlugClaims",
    "LinkMap",
    "MappedItem",
    "MappingFailure",
    "MappingWarning",
    "RecordMapper",
    "ReferenceResolver",
    "SkippedRecord",
    "SlugClaims",
    "StatusMapping",
    "TransformSpec",
    "compile_mapping",
    "content_hash",
    "parse_collection_mapping",
    "slug_with_suffix",
    "webflow_slug",
]
