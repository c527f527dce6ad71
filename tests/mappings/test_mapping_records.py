"""Mapping whole records: references, status, templates, paths, defaults and transforms."""

from __future__ import annotations

import pytest

from flowport.mappings import RecordMapper, SkippedRecord
from tests.mappings.mapping_helpers import (
    AUTHOR_ID,
    OTHER_AUTHOR_ID,
    DictResolver,
    compile_spec,
    failed,
    field,
    map_one,
    mapped,
    schema,
)

POST_ID = "64a1b2c3d4e5f6a7b8c9d0f1"
TARGET = schema(
    field("author", "Reference", validations={"collectionId": "a" * 24}),
    field("editor", "Reference", isRequired=False, validations={"collectionId": "a" * 24}),
    field("related", "MultiReference", validations={"collectionId": "c0ffee00c0ffee00c0ffee00"}),
    field("parent", "Reference", validations={"collectionId": "c0ffee00c0ffee00c0ffee00"}),
    field("summary", "PlainText"),
    field("tags-text", "PlainText"),
    field("published", "DateTime"),
    field("views", "Number"),
    field("featured", "Switch"),
    field("body", "RichText"),
)
REQUIRED_AUTHOR = schema(
    field("author", "Reference", isRequired=True, validations={"collectionId": "a" * 24})
)


def resolver() -> DictResolver:
    return DictResolver(
        {
            ("authors", "7"): AUTHOR_ID,
            ("authors", "8"): OTHER_AUTHOR_ID,
            ("posts", "100"): POST_ID,
            ("authors", "bad"): "not-an-id",
        }
    )


REFERENCES = {
    "fields": {
        "name": "title",
        "author": {"source": "author_id", "reference": "authors"},
        "related": {"source": "related_ids", "reference": "posts"},
        "parent": {"source": "parent_id", "reference": "posts"},
    },
    "slug_from": "name",
}


class TestReferences:
    def test_resolved_keys_become_webflow_ids(self) -> None:
        ids = resolver()
        mapper = compile_spec(REFERENCES, TARGET, resolver=ids)
        item = mapped(
            mapper, {"title": "T", "author_id": 7, "related_ids": ["100"], "parent_id": 100}
        )
        assert item.field_data["author"] == AUTHOR_ID
        assert item.field_data["related"] == [POST_ID]
        assert item.field_data["parent"] == POST_ID
        assert item.deferred_references == {}
        assert ("authors", "7") in ids.asked

    def test_missing_key_in_another_collection_fails_naming_it(self) -> None:
        mapper = compile_spec(REFERENCES, TARGET, resolver=resolver())
        failure = failed(mapper, {"title": "T", "author_id": "42"})
        assert failure.field == "author"
        assert failure.reason == "field author: no item for source key '42' in collection authors"

    def test_unresolved_self_reference_is_deferred_not_failed(self) -> None:
        mapper = compile_spec(REFERENCES, TARGET, resolver=resolver())
        item = mapped(
            mapper, {"title": "T", "related_ids": ["100", "101", "102", "101"], "parent_id": "5"}
        )
        assert item.field_data["related"] == [POST_ID]
        assert item.deferred_references == {"related": ("101", "102"), "parent": ("5",)}
        assert "parent" not in item.field_data

    def test_cycle_collections_named_by_the_engine_are_deferred(self) -> None:
        mapper = compile_spec(REFERENCES, TARGET, resolver=resolver(), deferrable={"authors"})
        item = mapped(mapper, {"title": "T", "author_id": "42"})
        assert item.deferred_references == {"author": ("42",)}
        assert "author" not in item.field_data

    def test_a_required_reference_cannot_be_deferred(self) -> None:
        mapper = compile_spec(
            {
                "fields": {"name": "t", "author": {"source": "a", "reference": "authors"}},
                "slug_from": "name",
            },
            REQUIRED_AUTHOR,
            resolver=resolver(),
            deferrable={"authors"},
        )
        failure = failed(mapper, {"t": "T", "a": "42"})
        assert "required reference to an item not written yet (42)" in failure.reason
        assert failed(mapper, {"t": "T"}).reason == "field author: required but missing"

    def test_many_missing_keys_are_listed_briefly(self) -> None:
        spec = {
            "fields": {"name": "t", "related": {"source": "r", "reference": "others"}},
            "slug_from": "name",
        }
        mapper = compile_spec(spec, TARGET, resolver=resolver())
        failure = failed(mapper, {"t": "T", "r": [str(n) for n in range(8)]})
        assert failure.reason == (
            "field related: no item for source keys '0', '1', '2', '3', '4' and 3 more "
            "in collection others"
        )

    def test_single_reference_given_a_list_fails(self) -> None:
        mapper = compile_spec(REFERENCES, TARGET, resolver=resolver())
        failure = failed(mapper, {"title": "T", "author_id": ["7", "8"]})
        assert "expected one source key, got 2" in failure.reason
        assert mapped(mapper, {"title": "T", "author_id": ["7"]}).field_data["author"] == AUTHOR_ID

    def test_resolver_answers_are_checked_like_webflow_would(self) -> None:
        mapper = compile_spec(REFERENCES, TARGET, resolver=resolver())
        failure = failed(mapper, {"title": "T", "author_id": "bad"})
        assert "'not-an-id', which is not a Webflow item id" in failure.reason

    def test_comma_separated_keys_via_split(self) -> None:
        spec = {
            "fields": {
                "name": "t",
                "related": {"source": "r", "reference": "posts", "transforms": [{"split": ","}]},
            },
            "slug_from": "name",
        }
        mapper = compile_spec(spec, TARGET, resolver=resolver())
        item = mapped(mapper, {"t": "T", "r": "100, 200"})
        assert item.field_data["related"] == [POST_ID]
        assert item.deferred_references == {"related": ("200",)}


STATUS = {
    "fields": {"name": "title"},
    "slug_from": "name",
    "status": {
        "source": "post_status",
        "values": {"publish": "live", "draft": "draft", "pending": "draft", "trash": "skip"},
        "default": "skip",
    },
}


class TestStatus:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("publish", "live"), ("PUBLISH ", "live"), ("draft", "draft"), ("pending", "draft")],
    )
    def test_source_values_become_states(self, raw: str, expected: str) -> None:
        assert (
            mapped(compile_spec(STATUS, TARGET), {"title": "T", "post_status": raw}).status
            == expected
        )

    @pytest.mark.parametrize("raw", ["trash", "inherit", None])
    def test_skip_and_unknown_values_skip_the_record(self, raw: str | None) -> None:
        outcome = map_one(compile_spec(STATUS, TARGET), {"title": "T", "post_status": raw}, key="9")
        assert isinstance(outcome, SkippedRecord)
        assert outcome.key == "9"
        assert repr(raw) in outcome.reason

    def test_without_status_mapping_the_job_mode_decides(self) -> None:
        mapper = compile_spec({"fields": {"name": "title"}, "slug_from": "name"}, TARGET)
        assert mapped(mapper, {"title": "T"}).status is None

    def test_skipped_records_claim_no_slug(self) -> None:
        from flowport.mappings import InMemorySlugClaims

        claims = InMemorySlugClaims()
        mapper = compile_spec(STATUS, TARGET, slugs=claims)
        map_one(mapper, {"title": "T", "post_status": "trash"})
        failed_mapper = compile_spec(
            {"fields": {"name": "title", "views": "v"}, "slug_from": "name"}, TARGET, slugs=claims
        )
        failed(failed_mapper, {"title": "T", "v": "abc"})
        assert len(claims) == 0


class TestSourcesAndTemplates:
    def test_nested_paths_lists_and_indexes(self) -> None:
        spec = {
            "fields": {
                "name": "post.title.rendered",
                "summary": "images[0].caption",
                "tags-text": {"source": "tags[].name", "transforms": [{"join": ", "}]},
            },
            "slug_from": "name",
        }
        item = mapped(
            compile_spec(spec, TARGET),
            {
                "post": {"title": {"rendered": "Deep"}},
                "images": [{"caption": "first"}, {"caption": "second"}],
                "tags": [{"name": "a"}, {"name": "b"}, {"other": 1}],
            },
        )
        assert item.field_data["name"] == "Deep"
        assert item.field_data["summary"] == "first"
        assert item.field_data["tags-text"] == "a, b"

    def test_a_key_that_contains_dots_is_read_as_is(self) -> None:
        spec = {"fields": {"name": "meta.title"}, "slug_from": "name"}
        assert (
            mapped(compile_spec(spec, TARGET), {"meta.title": "Flat"}).field_data["name"] == "Flat"
        )

    def test_templates_join_fields_and_skip_missing_ones(self) -> None:
        spec = {
            "fields": {
                "name": {"template": "{first_name} {last_name}", "transforms": ["trim"]},
                "summary": {"template": "{{{city}}} / {address.zip}"},
            },
            "slug_from": "name",
        }
        mapper = compile_spec(spec, TARGET)
        item = mapped(
            mapper,
            {
                "first_name": "Ford",
                "last_name": "Prefect",
                "city": "Guildford",
                "address": {"zip": 42},
            },
        )
        assert item.field_data["name"] == "Ford Prefect"
        assert item.field_data["summary"] == "{Guildford} / 42"
        assert mapped(mapper, {"first_name": "Zaphod"}).field_data["name"] == "Zaphod"
        assert failed(mapper, {"city": "x"}).reason == "field name: required but missing"

    def test_templates_cannot_reach_python_attributes(self) -> None:
        spec = {"fields": {"name": {"template": "{title.__class__}"}}, "slug_from": "name"}
        mapper = compile_spec(spec, TARGET)
        assert failed(mapper, {"title": "x"}).reason == "field name: required but missing"

    def test_constant_values_and_defaults(self) -> None:
        spec = {
            "fields": {
                "name": {"source": "title", "default": "Untitled"},
                "featured": {"value": True},
                "views": {"source": "views", "default": 0},
            },
            "slug_from": "name",
        }
        item = mapped(compile_spec(spec, TARGET), {"title": "", "views": None})
        assert item.field_data == {
            "name": "Untitled",
            "featured": True,
            "views": 0,
            "slug": "untitled",
        }


class TestTransforms:
    def make(self, slug: str, transforms: list[object]) -> RecordMapper:
        spec = {
            "fields": {"name": "title", slug: {"source": "v", "transforms": transforms}},
            "slug_from": "name",
            "base_url": "https://old.example.com/",
        }
        return compile_spec(spec, TARGET)

    @pytest.mark.parametrize(
        ("slug", "transforms", "given", "expected"),
        [
            ("summary", ["trim", "upper"], "  abc ", "ABC"),
            ("summary", ["lower"], "ABC", "abc"),
            ("summary", [{"truncate": 5}], "abcdefgh", "abcde"),
            ("summary", [{"replace": {"&nbsp;": " ", "--": "–"}}], "a&nbsp;b--c", "a b–c"),
            ("summary", [{"split": ";"}, {"join": " | "}], "a; b;;c", "a | b | c"),
            ("summary", [{"map": {"m": "Male", "f": "Female"}}], "f", "Female"),
            ("summary", [{"map": {"m": "Male"}}], "x", "x"),
            (
                "summary",
                ["html_unescape"],
                "Fish &amp; Chips &#8211; &quot;hot&quot;",
                'Fish & Chips – "hot"',
            ),
            (
                "summary",
                ["strip_html"],
                "<p>Hello <b>you</b></p><script>x()</script>\n<p>there</p>",
                "Hello you there",
            ),
            ("summary", ["slugify"], "Héllo Wörld!", "hello-world"),
            ("summary", [{"default": "none"}], "", "none"),
            ("summary", [{"constant": "fixed"}], "anything", "fixed"),
            ("summary", ["first"], ["", "b", "c"], "b"),
            ("summary", ["url"], "/a", "https://old.example.com/a"),
            (
                "summary",
                [{"datetime": {"tz": "Europe/Paris"}}],
                "2024-07-01 12:00",
                "2024-07-01T10:00:00.000Z",
            ),
            (
                "published",
                [{"datetime": {"tz": "America/New_York"}}],
                "2024-01-02 03:04:05",
                "2024-01-02T08:04:05.000Z",
            ),
            (
                "published",
                [{"datetime": {"format": "%d.%m.%Y %H:%M"}}],
                "02.01.2024 03:04",
                "2024-01-02T03:04:00.000Z",
            ),
            (
                "published",
                [{"datetime": {"dayfirst": True}}],
                "02/01/2024",
                "2024-01-02T00:00:00.000Z",
            ),
            (
                "published",
                [{"datetime": {"tz": "Europe/Paris"}}],
                "2024-01-02T03:04:05Z",
                "2024-01-02T03:04:05.000Z",
            ),
            ("views", [{"number": {"decimal": ","}}], "1.234,5", 1234.5),
            ("views", [{"number": {"decimal": ","}}], "3,25", 3.25),
            ("views", ["number"], "1,234", 1234),
            ("featured", ["boolean"], "yes", True),
            (
                "body",
                ["markdown"],
                "# Title\n\nSome *em* and [a link](/x).",
                "<h1>Title</h1>\n"
                '<p>Some <em>em</em> and <a href="https://old.example.com/x">a link</a>.</p>',
            ),
        ],
    )
    def test_transform_results(
        self, slug: str, transforms: list[object], given: object, expected: object
    ) -> None:
        item = mapped(self.make(slug, transforms), {"title": "T", "v": given})
        assert item.field_data[slug] == expected

    def test_what_a_transform_cuts_or_drops_is_a_warning(self) -> None:
        cut = mapped(self.make("summary", [{"truncate": 5}]), {"title": "T", "v": "abcdefgh"})
        assert cut.field_data["summary"] == "abcde"
        assert [(w.field, w.kind) for w in cut.warnings] == [("summary", "truncated")]
        assert "8 to 5 characters" in cut.warnings[0].message
        kept = mapped(self.make("summary", [{"truncate": 8}]), {"title": "T", "v": "abcdefgh"})
        assert not kept.warnings

        html = "<p>Hi</p><script>track()</script><style>p{}</style>"
        stripped = mapped(self.make("summary", ["strip_html"]), {"title": "T", "v": html})
        assert stripped.field_data["summary"] == "Hi"
        assert [(w.field, w.kind) for w in stripped.warnings] == [("summary", "content_dropped")]
        plain = mapped(self.make("summary", ["strip_html"]), {"title": "T", "v": "<b>Hi</b>"})
        assert not plain.warnings

    def test_transform_errors_are_per_item_failures(self) -> None:
        failure = failed(
            self.make("published", [{"datetime": {"format": "%Y"}}]), {"title": "T", "v": "x"}
        )
        assert failure.reason == "field published: 'x' does not match the format '%Y'"
        failure = failed(
            self.make("views", [{"number": {"decimal": ","}}]), {"title": "T", "v": "1.5"}
        )
        assert "not a number with ',' as decimal mark" in failure.reason
