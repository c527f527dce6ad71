"""Slugs in Webflow's format, settled collisions, and the content hash the engine upserts by."""

from __future__ import annotations

import hashlib
import json
import random
import re
import struct

import pytest

from flowport.mappings import InMemorySlugClaims, content_hash, webflow_slug
from flowport.mappings.hashing import canonical_json
from flowport.mappings.slugs import MAX_SLUG_LENGTH, is_webflow_slug, slug_with_suffix
from tests.mappings.mapping_helpers import compile_spec, failed, field, mapped, schema

TARGET = schema(field("summary", "PlainText"))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Hello World", "hello-world"),
        ("  --Hello---World--  ", "hello-world"),
        ("Ünïcödé & Çafé", "unicode-cafe"),
        ("%ce%b1%cf%81%cf%87%ce%b9%ce%ba%ce%ae", "arkhike"),
        ("Αρχική σελίδα", "arkhike-selida"),
        ("日本語", "ri-ben-yu"),
        ("already-a-slug-2", "already-a-slug-2"),
        ("C++ & C#", "c-c"),
        ("<b>HTML</b> in title", "b-html-b-in-title"),
        ("🙂🙂", ""),
        ("", ""),
    ],
)
def test_webflow_slug_format(given: str, expected: str) -> None:
    slug = webflow_slug(given)
    assert slug == expected
    assert slug == "" or is_webflow_slug(slug)


def test_slug_length_is_capped_without_a_trailing_hyphen() -> None:
    long_word = "a" * 85
    slug = webflow_slug(" ".join([long_word] * 5))
    assert len(slug) <= MAX_SLUG_LENGTH
    assert is_webflow_slug(slug)
    assert not slug.endswith("-")


class TestClaims:
    def test_same_key_keeps_its_slug_and_collisions_get_suffixes(self) -> None:
        claims = InMemorySlugClaims(taken=["reserved"])
        assert claims.claim("1", "hello") == "hello"
        assert claims.claim("2", "hello") == "hello-2"
        assert claims.claim("3", "hello") == "hello-3"
        assert claims.claim("1", "renamed") == "hello"
        assert claims.claim("4", "reserved") == "reserved-2"
        assert claims.claim("5", "hello-2") == "hello-2-2"

    def test_suffix_respects_the_length_cap(self) -> None:
        base = "a" * MAX_SLUG_LENGTH
        claims = InMemorySlugClaims()
        claims.claim("1", base)
        second = claims.claim("2", base)
        assert second == "a" * (MAX_SLUG_LENGTH - 2) + "-2"
        assert slug_with_suffix("ab-" + "c" * 253, 10).endswith("-10")
        assert len(slug_with_suffix("ab-" + "c" * 253, 10)) <= MAX_SLUG_LENGTH


class TestSlugsOfItems:
    SPEC = {"fields": {"name": "title", "slug": "post_name"}, "slug_from": "name"}

    def test_mapped_slug_is_normalised_and_claimed(self) -> None:
        claims = InMemorySlugClaims()
        mapper = compile_spec(self.SPEC, TARGET, slugs=claims)
        assert (
            mapped(mapper, {"title": "A", "post_name": "%ce%b1%ce%b2"}, key="1").field_data["slug"]
            == "ab"
        )
        assert (
            mapped(mapper, {"title": "A", "post_name": "ab"}, key="2").field_data["slug"] == "ab-2"
        )
        assert mapped(mapper, {"title": "A", "post_name": "ab"}, key="1").field_data["slug"] == "ab"

    def test_empty_slug_falls_back_to_name_then_key(self) -> None:
        mapper = compile_spec(self.SPEC, TARGET)
        assert (
            mapped(mapper, {"title": "Ωραίο Τίτλο", "post_name": ""}, key="7").field_data["slug"]
            == "oraio-titlo"
        )
        assert (
            mapped(mapper, {"title": "🙂", "post_name": None}, key="post 8").field_data["slug"]
            == "post-8"
        )
        symbols = mapped(mapper, {"title": "🙂"}, key="🙂").field_data["slug"]
        assert is_webflow_slug(symbols)
        assert symbols.startswith("item-")
        assert mapped(mapper, {"title": "🙂"}, key="🙂").field_data["slug"] == symbols

    def test_slug_from_without_a_slug_mapping(self) -> None:
        mapper = compile_spec(
            {"fields": {"name": "title", "summary": "s"}, "slug_from": "summary"}, TARGET
        )
        assert (
            mapped(mapper, {"title": "T", "s": "From Summary"}).field_data["slug"] == "from-summary"
        )

    def test_slug_given_a_list_fails(self) -> None:
        mapper = compile_spec(self.SPEC, TARGET)
        assert failed(mapper, {"title": "T", "post_name": ["a", "b"]}).field == "slug"


class TestContentHash:
    def test_is_stable_and_ignores_key_order(self) -> None:
        first = content_hash({"name": "A", "slug": "a", "tags": ["x", "y"]}, "live")
        second = content_hash({"tags": ["x", "y"], "slug": "a", "name": "A"}, "live")
        assert first == second
        assert re.fullmatch(r"[0-9a-f]{32}", first)

    def test_is_sha256_of_the_canonical_json(self) -> None:
        canonical = '{"fieldData":{"n":1.5,"name":"Café","slug":"cafe"},"status":"draft"}'
        expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
        assert content_hash({"slug": "cafe", "n": 1.5, "name": "Café"}, "draft") == expected

    def test_changes_with_content_status_and_order_of_lists(self) -> None:
        base = content_hash({"name": "A", "tags": ["x", "y"]}, "live")
        assert content_hash({"name": "B", "tags": ["x", "y"]}, "live") != base
        assert content_hash({"name": "A", "tags": ["x", "y"]}, "draft") != base
        assert content_hash({"name": "A", "tags": ["y", "x"]}, "live") != base
        assert content_hash({"name": "A", "tags": ["x", "y"]}, None) != base

    def test_unicode_is_hashed_as_utf8(self) -> None:
        assert content_hash({"name": "café"}, None) != content_hash({"name": "cafe"}, None)

    def test_nan_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not JSON compliant"):
            content_hash({"n": float("nan")}, None)


def _reference_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _sample_values() -> list[object]:
    chosen = random.Random(7)
    floats: list[object] = [0.0, -0.0, 0.1, 1e-4, 9.9e-5, 1.5e-05, 1e15, 1e16, 9.999999999999998e15]
    floats += [1e22, -2.5e-300, 5e-324, 1.7976931348623157e308, 100.5, 0.30000000000000004]
    for _ in range(20_000):
        bits = struct.unpack("d", struct.pack("Q", chosen.getrandbits(64)))[0]
        if bits == bits and abs(bits) != float("inf"):
            floats.append(bits)
        floats.append(chosen.uniform(-1e6, 1e6))
    texts: list[object] = [chr(c) for c in range(0x250)]
    texts += ["\u2028\u2029", "\ufeff", 'quote " and \\', "😀", "\x7f", "Café", ""]
    integers: list[object] = [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**30]
    nested: list[object] = [
        {"b": [1, 2.5, {"z": None, "a": True}], "a": "x", "é": 1e-7, "Z": (1, "t")},
        [{"k": 2**70}],
        {"url": "https://example.com/a.png", "alt": None},
    ]
    return [*floats, *texts, *integers, *nested, None, True, False]


def test_canonical_json_is_byte_for_byte_the_standard_librarys() -> None:
    # Stored content hashes were made with json.dumps: the faster path may never differ.
    for value in _sample_values():
        assert canonical_json({"fieldData": {"v": value}}) == _reference_json(
            {"fieldData": {"v": value}}
        ), value


def test_canonical_json_refuses_what_the_standard_library_refuses() -> None:
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="not JSON compliant"):
            canonical_json({"v": [value]})
    with pytest.raises(TypeError):
        canonical_json({"v": object()})


def test_plain_ascii_slugs_are_what_slugify_makes() -> None:
    # webflow_slug skips python-slugify for plain ASCII; the result may never differ. ("%"
    # is left out: webflow_slug decodes percent escapes first, on purpose.)
    from slugify import slugify

    chars = [chr(n) for n in range(32, 127) if chr(n) != "%"]
    chosen = random.Random(11)
    for _ in range(30_000):
        text = "".join(chosen.choice(chars) for _ in range(chosen.randint(0, 40)))
        limit = chosen.choice([MAX_SLUG_LENGTH, 12, 3, 1])
        expected = slugify(text, max_length=limit, word_boundary=False, lowercase=True)
        assert webflow_slug(text, max_length=limit) == expected.strip("-"), (text, limit)
