"""Item validation per field type, slugs, unknown keys, required fields, sizes, bulk modes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.oldsite import ImageHost, png
from tests.sandbox.conftest import Api, SandboxFactory

ALL_TYPES: list[dict[str, Any]] = [
    {"type": "PlainText", "displayName": "Plain"},
    {"type": "RichText", "displayName": "Rich"},
    {"type": "Image", "displayName": "Picture"},
    {"type": "MultiImage", "displayName": "Gallery"},
    {"type": "VideoLink", "displayName": "Video"},
    {"type": "Link", "displayName": "Website"},
    {"type": "Email", "displayName": "Mail"},
    {"type": "Phone", "displayName": "Phone"},
    {"type": "Number", "displayName": "Count"},
    {"type": "DateTime", "displayName": "When"},
    {"type": "Switch", "displayName": "Featured"},
    {"type": "Color", "displayName": "Colour"},
    {"type": "File", "displayName": "Attachment"},
    {"type": "Option", "displayName": "Kind", "metadata": {"options": [{"name": "a"}]}},
]


async def typed_collection(api: Api) -> tuple[str, str, str, str]:
    """A collection with every field type; returns (collection, option id, ref target, ref item)."""
    target = await api.collection("Authors")
    referenced = await api.item(target, "douglas")
    fields: list[dict[str, Any]] = [
        *ALL_TYPES,
        {"type": "Reference", "displayName": "Author", "metadata": {"collectionId": target}},
        {
            "type": "MultiReference",
            "displayName": "Co Authors",
            "metadata": {"collectionId": target},
        },
    ]
    collection_id = await api.collection("Books", fields)
    schema = await api.get(f"/collections/{collection_id}")
    kind = next(f for f in schema.body["fields"] if f["slug"] == "kind")
    return collection_id, kind["validations"]["options"][0]["id"], target, referenced["id"]


VALID = {
    "plain": "Don't panic",
    "rich": "<p>towel</p>",
    "video": "https://www.youtube.com/watch?v=aJ83KAggd-4",
    "website": "https://example.org/page",
    "mail": "zaphod@example.org",
    "phone": "+1 424-242-4242",
    "count": 42.5,
    "when": "1979-10-12T00:00:00Z",
    "featured": True,
    "colour": "#db4b68",
}


async def test_every_field_type_accepts_its_documented_value(api: Api, old_site: ImageHost) -> None:
    for name in ("a.png", "b.png", "c.png"):
        old_site.files[f"/{name}"] = (png(2, 2), "image/png")
    old_site.files["/a.pdf"] = (b"%PDF-1.4\n%%EOF\n", "application/pdf")
    collection_id, option_id, _, author_id = await typed_collection(api)
    data = {
        "name": "Guide",
        "slug": "guide",
        **VALID,
        "picture": {"url": old_site.url("/a.png"), "alt": "cover"},
        "gallery": [old_site.url("/b.png"), {"url": old_site.url("/c.png")}],
        "attachment": old_site.url("/a.pdf"),
        "kind": option_id,
        "author": author_id,
        "co-authors": [author_id],
    }
    answer = await api.post(f"/collections/{collection_id}/items", {"fieldData": data})
    assert answer.status == 202, answer.body
    stored = answer.body["fieldData"]
    assert stored["when"] == "1979-10-12T00:00:00.000Z"
    hosted = f"{api.sandbox.root_url}/_sandbox/assets/{api.sandbox.site_id}/"
    picture = stored["picture"]
    assert picture["url"] == f"{hosted}{picture['fileId']}_a.png"
    assert picture["alt"] == "cover"
    assert len(picture["fileId"]) == 24
    assert [image["url"] for image in stored["gallery"]] == [
        f"{hosted}{image['fileId']}_{name}"
        for image, name in zip(stored["gallery"], ("b.png", "c.png"), strict=True)
    ]
    assert stored["attachment"]["fileId"]
    assert stored["kind"] == option_id
    assert stored["co-authors"] == [author_id]


INVALID = [
    ("plain", 12),
    ("rich", ["x"]),
    ("video", "not a url"),
    ("website", "example.org without scheme"),
    ("mail", "not-an-email"),
    ("phone", "call me"),
    ("count", "42"),
    ("count", True),
    ("when", "yesterday"),
    ("featured", "yes"),
    ("colour", "reddish"),
    ("colour", "hsl(120, 100, 50)"),
    ("kind", "0123456789abcdef01234567"),
    ("author", "0123456789abcdef01234567"),
    ("co-authors", ["0123456789abcdef01234567"]),
    ("gallery", "https://example.org/a.png"),
]


@pytest.mark.parametrize(("key", "value"), INVALID)
async def test_each_field_type_rejects_a_wrong_value(api: Api, key: str, value: Any) -> None:
    collection_id, *_ = await typed_collection(api)
    answer = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "Bad", "slug": "bad", key: value}},
    )
    assert answer.status == 400
    assert answer.body["code"] == "validation_error"
    assert [d["param"] for d in answer.body["details"]] == [key]


async def test_plain_text_length_limit_is_enforced(make_sandbox: SandboxFactory) -> None:
    _, api = await make_sandbox(plain_text_max_length=10)
    collection_id = await api.collection("Notes", [{"type": "PlainText", "displayName": "Body"}])
    too_long = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "n", "slug": "n", "body": "x" * 11}},
    )
    assert too_long.status == 400
    assert "longer than 10" in too_long.body["details"][0]["description"]


async def test_name_and_slug_are_required_on_create(api: Api) -> None:
    collection_id = await api.collection()
    answer = await api.post(f"/collections/{collection_id}/items", {"fieldData": {}})
    assert answer.status == 400
    assert sorted(d["param"] for d in answer.body["details"]) == ["name", "slug"]


async def test_required_custom_field_is_enforced(api: Api) -> None:
    collection_id = await api.collection(
        "Posts", [{"type": "PlainText", "displayName": "Summary", "isRequired": True}]
    )
    missing = await api.post(
        f"/collections/{collection_id}/items", {"fieldData": {"name": "a", "slug": "a"}}
    )
    assert missing.status == 400
    assert missing.body["details"][0]["param"] == "summary"
    empty = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "a", "slug": "a", "summary": ""}},
    )
    assert empty.status == 400


@pytest.mark.parametrize(
    "slug", ["Upper", "with space", "-lead", "trail-", "dou--ble", "ü", "a" * 257]
)
async def test_bad_slug_format_is_rejected(api: Api, slug: str) -> None:
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items", {"fieldData": {"name": "x", "slug": slug}}
    )
    assert answer.status == 400
    assert answer.body["details"][0]["param"] == "slug"


async def test_duplicate_slug_is_rejected_with_webflow_message(api: Api) -> None:
    collection_id = await api.collection()
    await api.item(collection_id, "same")
    again = await api.post(
        f"/collections/{collection_id}/items", {"fieldData": {"name": "x", "slug": "same"}}
    )
    assert again.status == 400
    assert again.body["code"] == "validation_error"
    assert again.body["details"] == [
        {"param": "slug", "description": "Unique value is already in database: 'same'"}
    ]


async def test_duplicate_slug_inside_one_bulk_request_is_rejected(api: Api) -> None:
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items",
        {"items": [{"fieldData": {"name": "x", "slug": "twin"}} for _ in range(2)]},
    )
    assert answer.status == 400
    assert answer.body["details"][0]["index"] == 1


async def test_duplicate_slug_suffix_mode_appends_numbers(make_sandbox: SandboxFactory) -> None:
    _, api = await make_sandbox(duplicate_slug="suffix")
    collection_id = await api.collection()
    slugs = [(await api.item(collection_id, "same"))["fieldData"]["slug"] for _ in range(3)]
    assert slugs == ["same", "same-2", "same-3"]


async def test_slug_of_an_item_can_be_patched_to_itself_but_not_to_another(api: Api) -> None:
    collection_id = await api.collection()
    first = await api.item(collection_id, "first")
    await api.item(collection_id, "second")
    path = f"/collections/{collection_id}/items/{first['id']}"
    same = await api.patch(path, {"fieldData": {"slug": "first"}})
    assert same.status == 200
    taken = await api.patch(path, {"fieldData": {"slug": "second"}})
    assert taken.status == 400
    assert taken.body["details"][0]["description"] == (
        "Unique value is already in database: 'second'"
    )
    renamed = await api.patch(path, {"fieldData": {"slug": "first-renamed"}})
    assert renamed.status == 200
    reuse = await api.item(collection_id, "first")
    assert reuse["fieldData"]["slug"] == "first"


async def test_unknown_field_key_is_rejected_naming_it(api: Api) -> None:
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "x", "slug": "x", "colour": "#fff"}},
    )
    assert answer.status == 400
    assert answer.body["details"][0]["param"] == "colour"
    assert "colour" in answer.body["details"][0]["description"]


async def test_more_than_100_items_is_400(api: Api) -> None:
    collection_id = await api.collection()
    items = [{"fieldData": {"name": f"n{i}", "slug": f"n-{i}"}} for i in range(101)]
    answer = await api.post(f"/collections/{collection_id}/items", {"items": items})
    assert answer.status == 400
    assert "at most 100" in answer.body["message"]
    listed = await api.get(f"/collections/{collection_id}/items")
    assert listed.body["pagination"]["total"] == 0


async def test_bulk_reject_all_names_each_bad_index_and_writes_nothing(api: Api) -> None:
    collection_id = await api.collection()
    items = [
        {"fieldData": {"name": "ok", "slug": "ok"}},
        {"fieldData": {"name": "bad", "slug": "Bad Slug"}},
        {"fieldData": {"slug": "no-name"}},
    ]
    answer = await api.post(f"/collections/{collection_id}/items", {"items": items})
    assert answer.status == 400
    assert [(d["index"], d["param"]) for d in answer.body["details"]] == [(1, "slug"), (2, "name")]
    listed = await api.get(f"/collections/{collection_id}/items")
    assert listed.body["items"] == []


async def test_bulk_partial_writes_the_valid_items(make_sandbox: SandboxFactory) -> None:
    _, api = await make_sandbox(bulk_invalid="partial")
    collection_id = await api.collection()
    items = [
        {"fieldData": {"name": "ok", "slug": "ok"}},
        {"fieldData": {"name": "bad", "slug": "Bad Slug"}},
    ]
    answer = await api.post(f"/collections/{collection_id}/items", {"items": items})
    assert answer.status == 202
    assert [i["fieldData"]["slug"] for i in answer.body["items"]] == ["ok"]
    assert [(e["index"], e["param"]) for e in answer.body["errors"]] == [(1, "slug")]


async def test_invalid_file_is_skipped_by_default_and_fails_when_asked(api: Api) -> None:
    collection_id = await api.collection("Posts", [{"type": "Image", "displayName": "Cover"}])
    data = {"name": "x", "slug": "x", "cover": {"url": "ftp://nowhere/x.png"}}
    skipped = await api.post(f"/collections/{collection_id}/items", {"fieldData": data})
    assert skipped.status == 202
    assert "cover" not in skipped.body["fieldData"]
    data["slug"] = "y"
    strict = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": data},
        params={"skipInvalidFiles": "false"},
    )
    assert strict.status == 400
    assert strict.body["details"][0]["param"] == "cover"


async def test_skip_invalid_files_default_is_configurable(make_sandbox: SandboxFactory) -> None:
    _, api = await make_sandbox(skip_invalid_files=False)
    collection_id = await api.collection("Posts", [{"type": "File", "displayName": "Doc"}])
    answer = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "x", "slug": "x", "doc": "not a url"}},
    )
    assert answer.status == 400


async def test_item_limit_answers_a_clear_400(make_sandbox: SandboxFactory) -> None:
    _, api = await make_sandbox(item_limit=3)
    collection_id = await api.collection()
    await api.item(collection_id, "a")
    items = [{"fieldData": {"name": s, "slug": s}} for s in ("b", "c", "d")]
    answer = await api.post(f"/collections/{collection_id}/items", {"items": items})
    assert answer.status == 400
    assert answer.body["code"] == "validation_error"
    assert "allows 3 CMS items" in answer.body["message"]
    listed = await api.get(f"/collections/{collection_id}/items")
    assert listed.body["pagination"]["total"] == 1
    fits = await api.post(f"/collections/{collection_id}/items", {"items": items[:2]})
    assert fits.status == 202


async def test_unknown_item_keys_and_bad_flags_are_rejected(api: Api) -> None:
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "x", "slug": "x"}, "isDraft": "no", "colour": 1},
    )
    assert answer.status == 400
    assert sorted(d["param"] for d in answer.body["details"]) == ["colour", "isDraft"]


async def test_code_blocks_in_rich_text_become_empty(api: Api) -> None:
    # Source: Webflow's "Field Types & Item Values" reference (developers.webflow.com/reference/
    # field-types-item-values): "Passing any code blocks will result in an empty string between
    # the opening and closing tags." A <pre> empties; inline <code> and a <pre> inside a
    # custom-code embed (code by design, not an editor code block) stay.
    collection_id = await api.collection("Notes", [{"type": "RichText", "displayName": "Body"}])
    body = (
        "<p>Run <code>make</code> first.</p>"
        '<pre class="language-py"><code>def f():\n    return 1</code></pre>'
        "<div data-rt-embed-type='true'><pre>kept()</pre></div>"
        "<PRE>shouting()</PRE><p>after</p>"
    )
    created = await api.item(collection_id, "with-code", body=body)
    expected = (
        "<p>Run <code>make</code> first.</p>"
        '<pre class="language-py"></pre>'
        "<div data-rt-embed-type='true'><pre>kept()</pre></div>"
        "<PRE></PRE><p>after</p>"
    )
    assert created["fieldData"]["body"] == expected
    patched = await api.patch(
        f"/collections/{collection_id}/items/{created['id']}",
        {"fieldData": {"body": "<pre>print(1)"}},
    )
    assert patched.status == 200, patched.body
    assert patched.body["fieldData"]["body"] == "<pre>"
