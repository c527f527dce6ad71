"""Sites, auth, the error body, collections, fields and plain item CRUD, over real HTTP."""

from __future__ import annotations

import re

import pytest

from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.sandbox._core import ItemVariant
from tests.sandbox.conftest import Api

OBJECT_ID = re.compile(r"[0-9a-f]{24}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_error_shape(body: object, code: str) -> None:
    assert isinstance(body, dict)
    assert set(body) == {"code", "message", "externalReference", "details"}
    assert body["code"] == code
    assert body["message"]
    assert isinstance(body["details"], list)


async def test_sites_list_and_get_show_the_precreated_site(sandbox: Sandbox, api: Api) -> None:
    assert sandbox.base_url == f"http://127.0.0.1:{sandbox.port}/v2"
    listed = await api.get("/sites")
    assert listed.status == 200
    assert [site["id"] for site in listed.body["sites"]] == [sandbox.site_id]
    one = await api.get(f"/sites/{sandbox.site_id}")
    assert one.status == 200
    assert OBJECT_ID.fullmatch(one.body["id"])
    assert TIMESTAMP.fullmatch(one.body["createdOn"])
    primary = one.body["locales"]["primary"]
    assert primary["tag"] == "en"
    assert OBJECT_ID.fullmatch(primary["cmsLocaleId"])
    assert one.body["locales"]["secondary"] == []


async def test_unknown_site_is_404_in_webflow_shape(api: Api) -> None:
    answer = await api.get("/sites/0123456789abcdef01234567")
    assert answer.status == 404
    assert_error_shape(answer.body, "resource_not_found")


async def test_malformed_id_is_400(api: Api) -> None:
    answer = await api.get("/collections/not-an-id")
    assert answer.status == 400
    assert_error_shape(answer.body, "validation_error")


async def test_missing_or_wrong_token_is_401(api: Api) -> None:
    for token in (None, "wrong"):
        answer = await api.get("/sites", token=token)
        assert answer.status == 401
        assert_error_shape(answer.body, "not_authorized")
        assert answer.headers["X-RateLimit-Limit"] == "120"


async def test_unknown_route_method_and_bad_json_answer_json_errors(api: Api) -> None:
    unknown = await api.get("/nowhere")
    assert unknown.status == 404
    assert_error_shape(unknown.body, "resource_not_found")
    wrong_method = await api.call("PUT", "/sites")
    assert wrong_method.status == 405
    assert_error_shape(wrong_method.body, "bad_request")
    collection_id = await api.collection()
    malformed = await api.post(f"/collections/{collection_id}/items", raw=b"{not json")
    assert malformed.status == 400
    assert_error_shape(malformed.body, "bad_request")
    not_object = await api.post(f"/collections/{collection_id}/items", [1, 2])
    assert not_object.status == 400
    assert_error_shape(not_object.body, "bad_request")
    outside = await api.get(api.sandbox.root_url + "/elsewhere")
    assert outside.status == 404
    assert_error_shape(outside.body, "resource_not_found")


async def test_every_v2_answer_carries_rate_headers(api: Api) -> None:
    for answer in (await api.get("/sites"), await api.get("/nowhere")):
        assert answer.headers["X-RateLimit-Limit"] == "120"
        assert int(answer.headers["X-RateLimit-Remaining"]) <= 120


async def test_collection_create_adds_name_and_slug_fields(sandbox: Sandbox, api: Api) -> None:
    created = await api.post(
        f"/sites/{sandbox.site_id}/collections",
        {
            "displayName": "Blog Posts",
            "singularName": "Blog Post",
            "fields": [{"type": "PlainText", "displayName": "Sub Title", "isRequired": False}],
        },
    )
    assert created.status == 200
    assert created.body["slug"] == "blog-posts"
    fields = {f["slug"]: f for f in created.body["fields"]}
    assert list(fields) == ["name", "slug", "sub-title"]
    assert fields["name"]["isRequired"]
    assert fields["name"]["type"] == "PlainText"
    assert fields["slug"]["isRequired"]
    listed = await api.get(f"/sites/{sandbox.site_id}/collections")
    assert [c["id"] for c in listed.body["collections"]] == [created.body["id"]]
    assert "fields" not in listed.body["collections"][0]
    fetched = await api.get(f"/collections/{created.body['id']}")
    assert fetched.body["fields"] == created.body["fields"]


async def test_duplicate_collection_is_409(api: Api) -> None:
    await api.collection("Posts")
    again = await api.post(
        f"/sites/{api.sandbox.site_id}/collections",
        {"displayName": "posts", "singularName": "Post"},
    )
    assert again.status == 409
    assert_error_shape(again.body, "duplicate_collection")


async def test_collection_delete_removes_it_and_its_items(api: Api) -> None:
    collection_id = await api.collection()
    await api.item(collection_id, "one")
    deleted = await api.delete(f"/collections/{collection_id}")
    assert deleted.status == 204
    assert deleted.body is None
    gone = await api.get(f"/collections/{collection_id}")
    assert gone.status == 404
    assert_error_shape(gone.body, "collection_not_found")
    state = await api.get(api.sandbox.root_url + "/_sandbox/state")
    assert state.body["itemCount"][api.sandbox.site_id] == 0


async def test_fields_create_update_delete(api: Api) -> None:
    target = await api.collection("Authors")
    collection_id = await api.collection()
    option = await api.post(
        f"/collections/{collection_id}/fields",
        {"type": "Option", "displayName": "Kind", "metadata": {"options": [{"name": "News"}]}},
    )
    assert option.status == 200
    options = option.body["validations"]["options"]
    assert options[0]["name"] == "News"
    assert OBJECT_ID.fullmatch(options[0]["id"])
    reference = await api.post(
        f"/collections/{collection_id}/fields",
        {"type": "Reference", "displayName": "Author", "metadata": {"collectionId": target}},
    )
    assert reference.status == 200
    assert reference.body["validations"] == {"collectionId": target}
    no_target = await api.post(
        f"/collections/{collection_id}/fields",
        {"type": "MultiReference", "displayName": "Tags"},
    )
    assert no_target.status == 400
    assert_error_shape(no_target.body, "validation_error")
    updated = await api.patch(
        f"/collections/{collection_id}/fields/{option.body['id']}",
        {"displayName": "Category", "helpText": "pick one"},
    )
    assert updated.status == 200
    assert updated.body["displayName"] == "Category"
    assert updated.body["slug"] == "kind"
    bad_update = await api.patch(
        f"/collections/{collection_id}/fields/{option.body['id']}", {"type": "Number"}
    )
    assert bad_update.status == 400
    deleted = await api.delete(f"/collections/{collection_id}/fields/{option.body['id']}")
    assert deleted.status == 204
    fetched = await api.get(f"/collections/{collection_id}")
    assert "kind" not in {f["slug"] for f in fetched.body["fields"]}
    name_field = next(f for f in fetched.body["fields"] if f["slug"] == "name")
    refused = await api.delete(f"/collections/{collection_id}/fields/{name_field['id']}")
    assert refused.status == 400


async def test_required_field_cannot_be_added_to_a_collection_with_items(api: Api) -> None:
    collection_id = await api.collection()
    await api.item(collection_id, "first")
    refused = await api.post(
        f"/collections/{collection_id}/fields",
        {"type": "PlainText", "displayName": "Summary", "isRequired": True},
    )
    assert refused.status == 400
    assert "already has 1 items" in refused.body["message"]
    allowed = await api.post(
        f"/collections/{collection_id}/fields", {"type": "PlainText", "displayName": "Summary"}
    )
    assert allowed.status == 200


async def test_item_create_get_update_delete(api: Api) -> None:
    collection_id = await api.collection()
    created = await api.item(collection_id, "hello-world")
    assert OBJECT_ID.fullmatch(created["id"])
    assert created["isDraft"] is True
    assert created["isArchived"] is False
    assert created["lastPublished"] is None
    assert TIMESTAMP.fullmatch(created["createdOn"])
    assert created["fieldData"] == {"name": "Hello World", "slug": "hello-world"}
    item_path = f"/collections/{collection_id}/items/{created['id']}"
    fetched = await api.get(item_path)
    assert fetched.status == 200
    assert fetched.body == created
    patched = await api.patch(item_path, {"fieldData": {"name": "Renamed"}})
    assert patched.status == 200
    assert patched.body["fieldData"] == {"name": "Renamed", "slug": "hello-world"}
    deleted = await api.delete(item_path)
    assert deleted.status == 204
    missing = await api.get(item_path)
    assert missing.status == 404
    # A deleted item is resource_not_found, as Webflow words it (issue 17); bulk requests that
    # name missing ids answer item_not_found (below).
    assert_error_shape(missing.body, "resource_not_found")


async def test_multi_item_create_answers_items_list(api: Api) -> None:
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items",
        {"items": [{"fieldData": {"name": f"N{i}", "slug": f"n-{i}"}} for i in range(3)]},
    )
    assert answer.status == 202
    assert [item["fieldData"]["slug"] for item in answer.body["items"]] == ["n-0", "n-1", "n-2"]


async def test_bulk_patch_updates_many(api: Api) -> None:
    collection_id = await api.collection()
    first = await api.item(collection_id, "a")
    second = await api.item(collection_id, "b")
    answer = await api.patch(
        f"/collections/{collection_id}/items",
        {
            "items": [
                {"id": first["id"], "fieldData": {"name": "A2"}},
                {"id": second["id"], "fieldData": {"name": "B2"}, "isDraft": False},
            ]
        },
    )
    assert answer.status == 200
    assert [i["fieldData"]["name"] for i in answer.body["items"]] == ["A2", "B2"]
    assert answer.body["items"][1]["isDraft"] is False


async def test_bulk_delete_removes_listed_items(api: Api) -> None:
    collection_id = await api.collection()
    ids = [(await api.item(collection_id, slug))["id"] for slug in ("a", "b", "c")]
    answer = await api.delete(
        f"/collections/{collection_id}/items", {"items": [{"id": ids[0]}, {"id": ids[2]}]}
    )
    assert answer.status == 204
    listed = await api.get(f"/collections/{collection_id}/items")
    assert [item["id"] for item in listed.body["items"]] == [ids[1]]
    unknown = await api.delete(f"/collections/{collection_id}/items", {"items": [{"id": ids[0]}]})
    assert unknown.status == 404
    assert_error_shape(unknown.body, "item_not_found")


async def test_an_unfiltered_page_renders_only_its_own_items(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client's count read (limit=1) rendered every item of the collection: ~0.7 s at 100,000
    # items, which the benchmarks counted as the runner's own time.
    collection_id = await api.collection()
    names = [f"Post {n}" for n in range(30)]
    created = await api.post(
        f"/collections/{collection_id}/items",
        {
            "items": [
                {"fieldData": {"name": name, "slug": f"post-{n}"}} for n, name in enumerate(names)
            ]
        },
    )
    assert created.status in (200, 202)
    rendered = 0
    staged = ItemVariant.staged

    def counting(variant: ItemVariant) -> dict[str, object]:
        nonlocal rendered
        rendered += 1
        return staged(variant)

    monkeypatch.setattr(ItemVariant, "staged", counting)
    first = await api.get(f"/collections/{collection_id}/items?limit=1")
    assert rendered == 1
    assert first.body["pagination"] == {"limit": 1, "offset": 0, "total": 30}
    assert [i["fieldData"]["name"] for i in first.body["items"]] == ["Post 0"]
    rendered = 0
    newest = await api.get(
        f"/collections/{collection_id}/items?limit=1&sortBy=createdOn&sortOrder=desc"
        "&lastUpdated[gte]=2000-01-01T00:00:00Z"
    )
    # A sorted, filtered page too: a check paging by lastUpdated through a large collection
    # re-rendered every item for every page.
    assert rendered == 1
    assert newest.body["pagination"]["total"] == 30
    last = await api.get(f"/collections/{collection_id}/items?limit=2&offset=28&sortOrder=desc")
    assert [i["fieldData"]["name"] for i in last.body["items"]] == ["Post 1", "Post 0"]
    assert last.body["pagination"]["total"] == 30
