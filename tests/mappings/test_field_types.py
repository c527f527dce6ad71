"""One table per Webflow field type: what goes in, exactly what Webflow gets, or why it fails."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mappings.mapping_helpers import (
    OPTION_NEWS,
    OPTION_REVIEW,
    compile_spec,
    failed,
    field,
    mapped,
    schema,
)

BASE_URL = "https://old.example.com/blog/"

TARGET = schema(
    field("summary", "PlainText", validations={"maxLength": 10}),
    field("one-line", "PlainText", validations={"singleLine": True}),
    field("code", "PlainText", validations={"minLength": 3}),
    field("body", "RichText"),
    field("hero", "Image"),
    field("gallery", "MultiImage"),
    field("brochure", "File"),
    field("video", "VideoLink"),
    field("website", "Link"),
    field("contact", "Email"),
    field("phone", "Phone"),
    field("amount", "Number"),
    field("stars", "Number", validations={"format": "integer", "minValue": 1, "maxValue": 5}),
    field("price", "Number", validations={"precision": 2, "allowNegative": False}),
    field("count", "Number", validations={"allowZero": False}),
    field("published", "DateTime"),
    field("featured", "Switch"),
    field("tint", "Color"),
    field(
        "kind",
        "Option",
        validations={
            "options": [
                {"name": "News", "id": OPTION_NEWS},
                {"name": "Review", "id": OPTION_REVIEW},
            ]
        },
    ),
)

FIELD_SLUGS = [f.slug for f in TARGET.fields if f.slug not in ("name", "slug")]
MAPPER = compile_spec(
    {
        "fields": {"name": "title", **{slug: slug for slug in FIELD_SLUGS}},
        "slug_from": "name",
        "base_url": BASE_URL,
    },
    TARGET,
)
STRICT = compile_spec(
    {
        "fields": {"name": "title", "summary": "summary"},
        "slug_from": "name",
        "plain_text_overflow": "error",
    },
    TARGET,
)

VALID: list[tuple[str, Any, Any]] = [
    # PlainText
    ("summary", "  Hello  ", "Hello"),
    ("summary", 42, "42"),
    ("summary", 2.0, "2"),
    ("summary", True, "true"),
    ("summary", "Ωμέγα", "Ωμέγα"),
    ("one-line", "first\r\n  second\nthird", "first second third"),
    ("code", "abc", "abc"),
    # RichText
    ("body", "<p>Hi <strong>there</strong></p>", "<p>Hi <strong>there</strong></p>"),
    ("body", '<p onclick="x()">a<script>alert(1)</script></p>', "<p>a</p>"),
    (
        "body",
        '<a href="/about">About</a>',
        f'<a href="{BASE_URL}about">About</a>'.replace("blog/about", "about"),
    ),
    ("body", '<img src="pic.png" style="width:1px">', f'<img src="{BASE_URL}pic.png">'),
    ("body", '<a href="javascript:alert(1)">x</a>', "<a>x</a>"),
    ("body", "Fish &amp; chips", "Fish &amp; chips"),
    # Image / File
    ("hero", "https://cdn.example.com/a.jpg", {"url": "https://cdn.example.com/a.jpg"}),
    ("hero", "/uploads/a.jpg", {"url": "https://old.example.com/uploads/a.jpg"}),
    ("hero", "//cdn.example.com/a.jpg", {"url": "https://cdn.example.com/a.jpg"}),
    (
        "hero",
        {"url": "http://x.example.com/a.png", "alt": " A cat "},
        {"url": "http://x.example.com/a.png", "alt": "A cat"},
    ),
    ("hero", {"src": "b.png", "alt": ""}, {"url": f"{BASE_URL}b.png"}),
    ("hero", ["https://x.example.com/only.png"], {"url": "https://x.example.com/only.png"}),
    ("brochure", "https://x.example.com/doc.pdf", {"url": "https://x.example.com/doc.pdf"}),
    (
        "brochure",
        {"fileId": "62b720ef280c7a7a3be8cab3"},
        {"fileId": "62b720ef280c7a7a3be8cab3"},
    ),
    # MultiImage
    (
        "gallery",
        ["https://x.example.com/1.png", {"url": "https://x.example.com/2.png", "alt": "two"}],
        [
            {"url": "https://x.example.com/1.png"},
            {"url": "https://x.example.com/2.png", "alt": "two"},
        ],
    ),
    ("gallery", "https://x.example.com/1.png", [{"url": "https://x.example.com/1.png"}]),
    # VideoLink / Link
    (
        "video",
        "https://www.youtube.com/watch?v=aJ83KAggd-4",
        "https://www.youtube.com/watch?v=aJ83KAggd-4",
    ),
    ("video", "youtu.be/aJ83KAggd-4", "https://youtu.be/aJ83KAggd-4"),
    ("website", "www.example.com/path?q=1", "https://www.example.com/path?q=1"),
    ("website", "/contact", "https://old.example.com/contact"),
    ("website", "mailto:someone@example.com", "mailto:someone@example.com"),
    ("website", "https://example.com/a b", "https://example.com/a%20b"),
    # Email
    ("contact", " Zaphod@HeartOfGold.GOV ", "Zaphod@heartofgold.gov"),
    ("contact", "mailto:a.b+tag@example.co.uk", "a.b+tag@example.co.uk"),
    ("contact", "Arthur Dent <arthur@example.com>", "arthur@example.com"),
    # Phone
    ("phone", "424-242-4242", "424-242-4242"),
    ("phone", "+33 (0)1 23  45 67 89", "+33 (0)1 23 45 67 89"),
    ("phone", "tel:+14155550123", "+14155550123"),
    ("phone", "030/123 4567", "030/123 4567"),
    ("phone", 4155550123, "4155550123"),
    # Number
    ("amount", "42", 42),
    ("amount", " -3.5 ", -3.5),
    ("amount", "1,234.5", 1234.5),
    ("amount", "1 234 567", 1234567),
    ("amount", "1e3", 1000),
    ("amount", 7, 7),
    ("amount", 7.0, 7),
    ("amount", ".5", 0.5),
    ("stars", "4", 4),
    ("stars", 5.0, 5),
    ("price", "19.999", 20),
    ("price", "19.994", 19.99),
    ("count", "-1", -1),
    # DateTime
    ("published", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000Z"),
    ("published", "2024-01-02T03:04:05.678+02:00", "2024-01-02T01:04:05.678Z"),
    ("published", "2024-01-02", "2024-01-02T00:00:00.000Z"),
    ("published", "2024-01-02 03:04:05", "2024-01-02T03:04:05.000Z"),
    ("published", "2024/1/2", "2024-01-02T00:00:00.000Z"),
    ("published", "Tue, 02 Jan 2024 03:04:05 +0000", "2024-01-02T03:04:05.000Z"),
    ("published", "Tue, 02 Jan 2024 03:04:05 GMT", "2024-01-02T03:04:05.000Z"),
    ("published", 1704164645, "2024-01-02T03:04:05.000Z"),
    ("published", "1704164645", "2024-01-02T03:04:05.000Z"),
    ("published", "January 2, 2024 3:04 AM", "2024-01-02T03:04:00.000Z"),
    ("published", "2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678Z"),
    ("published", "0999-12-31T23:59:59.999Z", "0999-12-31T23:59:59.999Z"),
    ("price", " 1234.5 ", 1234.5),
    ("price", "+7", 7),
    # Switch
    ("featured", True, True),
    ("featured", "yes", True),
    ("featured", "Y", True),
    ("featured", "On", True),
    ("featured", "1", True),
    ("featured", 1, True),
    ("featured", "false", False),
    ("featured", "no", False),
    ("featured", "off", False),
    ("featured", 0, False),
    # Color
    ("tint", "#DB4B68", "#db4b68"),
    ("tint", "#abc", "#abc"),
    ("tint", "#11223344", "#11223344"),
    ("tint", "db4b68", "#db4b68"),
    ("tint", "Orchid", "orchid"),
    ("tint", "transparent", "transparent"),
    ("tint", "rgb(10, 20, 30)", "#0a141e"),
    ("tint", "rgba(255,0,0,0.5)", "#ff000080"),
    ("tint", "rgba(255,0,0,1)", "#ff0000"),
    ("tint", "rgb(100%, 0%, 50%)", "#ff0080"),
    ("tint", "hsl(120, 100%, 25%)", "#008000"),
    ("tint", "hsla(0, 100%, 50%, 0.3)", "#ff00004c"),
    # Option
    ("kind", "News", OPTION_NEWS),
    ("kind", " review ", OPTION_REVIEW),
    ("kind", OPTION_NEWS, OPTION_NEWS),
]


@pytest.mark.parametrize(("slug", "given", "expected"), VALID)
def test_valid_values_become_exactly_what_webflow_accepts(
    slug: str, given: Any, expected: Any
) -> None:
    item = mapped(MAPPER, {"title": "T", slug: given})
    assert item.field_data[slug] == expected
    assert type(item.field_data[slug]) is type(expected)


INVALID: list[tuple[str, Any, str]] = [
    ("summary", ["a", "b"], "expected text, got a list"),
    ("code", "ab", "under the field's minimum of 3"),
    ("hero", "ftp://x.example.com/a.png", "not an http(s) URL"),
    ("hero", "javascript:alert(1)", "not an http(s) URL"),
    ("hero", {"alt": "no url"}, "has no URL"),
    ("hero", ["https://a.example.com/1.png", "https://a.example.com/2.png"], "expected one image"),
    ("brochure", {"fileId": "nope"}, "not a Webflow asset id"),
    (
        "gallery",
        ["https://a.example.com/1.png", "data:image/png;base64,AAAA"],
        "not an http(s) URL",
    ),
    ("video", "mailto:a@example.com", "not an http(s) URL"),
    ("website", "javascript:alert(1)", "not an http/https/mailto/tel URL"),
    ("website", "https://", "has no host"),
    ("contact", "not-an-email", "not an e-mail address"),
    ("contact", "a..b@example.com", "not an e-mail address"),
    ("contact", "a@b", "not an e-mail address"),
    ("phone", "12345", "not a phone number"),
    ("phone", "555-0100 ext. 12", "has an extension"),
    ("phone", "call me maybe", "not a phone number"),
    ("phone", "+1 234 567 890 123 456 789", "not a phone number"),
    ("amount", "abc", "is not a number"),
    ("amount", "NaN", "is not a number"),
    ("amount", "inf", "is not a number"),
    ("amount", float("nan"), "not a finite number"),
    ("amount", "1,5", "ambiguous"),
    ("amount", "1_000", "is not a number"),
    ("amount", True, "is a boolean"),
    ("amount", 2**60, "too large to store exactly"),
    ("amount", "$12", "is not a number"),
    ("stars", "4.5", "not a whole number"),
    ("stars", "9", "over the field's maximum of 5"),
    ("stars", "0", "under the field's minimum of 1"),
    ("price", "-2", "negative"),
    ("count", "0", "0 is refused"),
    ("published", "yesterday-ish", "is not a date"),
    ("published", "2024-02-30", "is not a"),
    # Webflow's own form is checked too, not passed through.
    ("published", "2024-02-30T10:00:00.000Z", "is not a"),
    ("published", True, "is not a date"),
    # Valid where it was written, past year 9999 in UTC.
    ("published", "9999-12-31T23:00:00-05:00", "out of range once converted to UTC"),
    ("featured", "maybe", "not a yes/no value"),
    ("featured", 2, "not a yes/no value"),
    ("tint", "#12", "is not a colour"),
    ("tint", "blurple", "is not a colour"),
    ("tint", "123", "is not a colour"),
    ("tint", "rgb(300, 0, 0)", "component out of range"),
    ("tint", "hsl(10, 50, 50)", "is not a colour"),
    ("kind", "Opinion", "'Opinion' is not one of the options ('News', 'Review')"),
]


@pytest.mark.parametrize(("slug", "given", "reason"), INVALID)
def test_invalid_values_fail_naming_the_field_and_the_reason(
    slug: str, given: Any, reason: str
) -> None:
    failure = failed(MAPPER, {"title": "T", slug: given}, key="rec-9")
    assert failure.key == "rec-9"
    assert failure.field == slug
    assert failure.reason.startswith(f"field {slug}: ")
    assert reason in failure.reason


@pytest.mark.parametrize("empty", [None, "", "   ", []])
def test_empty_values_are_left_out_not_sent_as_junk(empty: Any) -> None:
    item = mapped(MAPPER, {"title": "T", "published": empty, "summary": empty, "gallery": empty})
    assert set(item.field_data) == {"name", "slug"}


@pytest.mark.parametrize("zero", ["0000-00-00 00:00:00", "0000-00-00"])
def test_wordpress_zero_date_means_no_date(zero: str) -> None:
    item = mapped(MAPPER, {"title": "T", "published": zero})
    assert "published" not in item.field_data


def test_plain_text_over_the_limit_is_truncated_with_a_warning() -> None:
    item = mapped(MAPPER, {"title": "T", "summary": "abcdefghijklmnop"})
    assert item.field_data["summary"] == "abcdefghij"
    assert [(w.field, w.kind) for w in item.warnings] == [("summary", "truncated")]


def test_nul_characters_are_dropped_from_plain_text_with_a_warning() -> None:
    item = mapped(MAPPER, {"title": "Ti\x00tle\x00", "summary": "ab\x00c"})
    assert item.field_data["name"] == "Title"
    assert item.field_data["summary"] == "abc"
    assert [(w.field, w.kind) for w in item.warnings] == [
        ("name", "nul_dropped"),
        ("summary", "nul_dropped"),
    ]
    assert "2 NUL" in item.warnings[0].message


def test_plain_text_over_the_limit_fails_when_overflow_is_error() -> None:
    failure = failed(STRICT, {"title": "T", "summary": "abcdefghijklmnop"})
    assert failure.reason == "field summary: text is 16 characters, over the field's limit of 10"


def test_name_is_capped_at_256_characters() -> None:
    item = mapped(MAPPER, {"title": "x" * 300})
    assert item.field_data["name"] == "x" * 256
    assert item.warnings[0].kind == "truncated"


def test_missing_name_fails_as_required() -> None:
    failure = failed(MAPPER, {"title": "  "})
    assert (failure.field, failure.reason) == ("name", "field name: required but missing")


def test_multi_image_keeps_webflows_limit_of_25_with_a_warning() -> None:
    urls = [f"https://img.example.com/{n}.png" for n in range(30)]
    item = mapped(MAPPER, {"title": "T", "gallery": urls})
    assert len(item.field_data["gallery"]) == 25
    assert item.field_data["gallery"][-1] == {"url": "https://img.example.com/24.png"}
    assert [w.kind for w in item.warnings] == ["too_many_images"]


def test_relative_url_without_base_url_is_refused_with_the_fix() -> None:
    mapper = compile_spec(
        {"fields": {"name": "title", "hero": "hero"}, "slug_from": "name"}, TARGET
    )
    failure = failed(mapper, {"title": "T", "hero": "/uploads/a.png"})
    assert "relative URL; set base_url" in failure.reason


def test_code_blocks_in_rich_text_are_kept_but_flagged() -> None:
    item = mapped(MAPPER, {"title": "T", "body": "<pre><code>x = a[0]</code></pre>"})
    assert item.field_data["body"] == "<pre><code>x = a[0]</code></pre>"
    assert [w.kind for w in item.warnings] == ["code_block"]


def test_inline_code_in_rich_text_is_not_a_code_block() -> None:
    item = mapped(MAPPER, {"title": "T", "body": "<p>Run <code>make</code> first.</p>"})
    assert item.field_data["body"] == "<p>Run <code>make</code> first.</p>"
    assert item.warnings == ()


def test_relative_links_in_rich_text_without_base_url_are_flagged() -> None:
    mapper = compile_spec(
        {"fields": {"name": "title", "body": "body"}, "slug_from": "name"}, TARGET
    )
    item = mapped(mapper, {"title": "T", "body": '<a href="/about">a</a><img src="x.png">'})
    assert item.field_data["body"] == '<a href="/about">a</a><img src="x.png">'
    assert [(w.field, w.kind) for w in item.warnings] == [("body", "relative_url")]
    assert "2 relative link(s)" in item.warnings[0].message
