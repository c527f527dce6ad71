"""A wrong mapping is refused once, before any record, naming the job-file key and a fix."""

from __future__ import annotations

from typing import Any

import pytest

from flowport.base.errors import ConfigError
from flowport.mappings import CollectionMapping, FieldMapping
from tests.mappings.mapping_helpers import compile_spec, field, schema

TARGET = schema(
    field("author", "Reference", validations={"collectionId": "a" * 24}),
    field("tags", "MultiReference", validations={"collectionId": "b" * 24}),
    field("views", "Number"),
    field("body", "RichText"),
    field("created", "DateTime", isEditable=False),
)
REQUIRED = schema(field("sku", "PlainText", isRequired=True))


def compile_error(spec: dict[str, Any], target: Any = TARGET) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        compile_spec(spec, target)
    return caught.value


CASES: list[tuple[dict[str, Any], str, str, str]] = [
    (
        {"fields": {"name": "t", "colour": "c"}, "slug_from": "name"},
        "collections.posts.fields.colour",
        "has no field 'colour'",
        "author, body, created, name, slug, tags, views",
    ),
    (
        {"fields": {"name": "t", "author": "author_id"}, "slug_from": "name"},
        "collections.posts.fields.author",
        "needs to know which job collection it points to",
        'reference = "<job collection name>"',
    ),
    (
        {"fields": {"name": "t", "views": {"source": "v", "reference": "x"}}, "slug_from": "name"},
        "collections.posts.fields.views.reference",
        "not a Reference or MultiReference",
        "remove reference",
    ),
    (
        {
            "fields": {"name": "t", "views": {"source": "v", "transforms": ["trim", "markdown"]}},
            "slug_from": "name",
        },
        "collections.posts.fields.views.transforms[1]",
        "transform 'markdown' does not fit a Number field",
        "feeds only RichText fields",
    ),
    (
        {"fields": {"name": {"source": "t", "transforms": ["shout"]}}, "slug_from": "name"},
        "collections.posts.fields.name.transforms[0]",
        "unknown transform 'shout'",
        "use one of",
    ),
    (
        {
            "fields": {"name": {"source": "t", "transforms": [{"truncate": -1}]}},
            "slug_from": "name",
        },
        "collections.posts.fields.name.transforms[0]",
        "positive length",
        "{truncate = 256}",
    ),
    (
        {"fields": {"name": {"template": "{first!r}"}}, "slug_from": "name"},
        "collections.posts.fields.name.template",
        "without conversions or format specs",
        "",
    ),
    (
        {"fields": {"name": "a..b"}, "slug_from": "name"},
        "collections.posts.fields.name.source",
        "bad path",
        "author.name",
    ),
    (
        {"fields": {"views": "v"}, "slug_from": "views"},
        "collections.posts.fields.name",
        "needs a name",
        'name = "title"',
    ),
    (
        {"fields": {"name": "t"}},
        "collections.posts.fields.slug",
        "needs a slug",
        'slug_from = "name"',
    ),
    (
        {"fields": {"name": "t"}, "slug_from": "title"},
        "collections.posts.slug_from",
        "not a mapped field",
        'slug_from = "name"',
    ),
    (
        {"fields": {"name": "t", "created": "c"}, "slug_from": "name"},
        "collections.posts.fields.created",
        "not editable",
        "remove it",
    ),
    (
        {"fields": {"name": "t"}, "slug_from": "name", "base_url": "old-site.example.com"},
        "collections.posts.base_url",
        "not an absolute http(s) URL",
        "https://",
    ),
    (
        {"fields": {"name": "t"}, "slug_from": "name", "status": {"source": "", "values": {}}},
        "collections.posts.status.source",
        "bad path",
        "",
    ),
]


@pytest.mark.parametrize(("spec", "key", "message", "fix"), CASES)
def test_compile_errors_name_the_key_and_a_fix(
    spec: dict[str, Any], key: str, message: str, fix: str
) -> None:
    error = compile_error(spec)
    assert error.key == key
    assert message in str(error)
    assert error.fix is not None
    assert fix in error.fix
    assert str(error).startswith(f"{key}: ")


def test_a_zone_that_does_not_exist_is_a_config_error() -> None:
    target = schema(field("when", "DateTime"))
    error = compile_error(
        {
            "fields": {
                "name": "t",
                "when": {"source": "w", "transforms": [{"datetime": {"tz": "Mars/Base"}}]},
            },
            "slug_from": "name",
        },
        target,
    )
    assert error.key == "collections.posts.fields.when.transforms[0]"
    assert "unknown time zone 'Mars/Base'" in str(error)


def test_custom_required_fields_must_be_mapped() -> None:
    error = compile_error({"fields": {"name": "t"}, "slug_from": "name"}, REQUIRED)
    assert error.key == "collections.posts.fields.sku"
    assert "requires field 'sku'" in str(error)


@pytest.mark.parametrize(
    ("spec", "key", "message"),
    [
        (
            {"fields": {"name": {"source": "a", "value": "b"}}},
            "collections.posts.fields.name",
            "exactly one of",
        ),
        ({"fields": {"name": {"default": "b"}}}, "collections.posts.fields.name", "got none"),
        ({"fields": {"name": "t"}, "colour": 1}, "collections.posts.colour", "Extra inputs"),
        (
            {"fields": {"name": {"source": "t", "transforms": [{"a": 1, "b": 2}]}}},
            "collections.posts.fields.name",
            "one-key table",
        ),
        (
            {"fields": {"name": "t"}, "status": {"source": "s", "values": {"x": "publish"}}},
            "collections.posts.status.values.x",
            "'live', 'draft' or 'skip'",
        ),
    ],
)
def test_job_file_shape_errors_become_config_errors(
    spec: dict[str, Any], key: str, message: str
) -> None:
    error = compile_error(spec)
    assert error.key == key
    assert message in str(error)


def test_a_bare_string_is_shorthand_for_source() -> None:
    mapping = CollectionMapping(
        fields={"name": "title", "author": FieldMapping(source="a", reference="authors")}
    )
    assert mapping.field_mappings()["name"] == FieldMapping(source="title")
    assert mapping.reference_targets() == {"author": "authors"}


def test_reference_targets_are_reported_for_write_ordering() -> None:
    mapper = compile_spec(
        {
            "fields": {
                "name": "t",
                "author": {"source": "a", "reference": "authors"},
                "tags": {"source": "tag_ids", "reference": "tags"},
            },
            "slug_from": "name",
        },
        TARGET,
    )
    assert mapper.reference_targets == {"author": "authors", "tags": "tags"}


def test_mapping_models_are_frozen() -> None:
    mapping = FieldMapping(source="title")
    with pytest.raises(ValueError, match="frozen"):
        mapping.source = "other"  # type: ignore[misc]
