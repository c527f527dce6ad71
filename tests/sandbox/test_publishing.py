"""Item states, staged versus live, item and site publishing, locales, listing."""

from __future__ import annotations

from flowport.pipeline.sandbox import Sandbox
from tests.sandbox.conftest import Api, SandboxFactory, TimeControl


async def live_slugs(api: Api, collection_id: str) -> list[str]:
    listed = await api.get(f"/collections/{collection_id}/items/live")
    assert listed.status == 200
    return [item["fieldData"]["slug"] for item in listed.body["items"]]


async def test_new_staged_item_is_a_draft_and_not_live(api: Api) -> None:
    collection_id = await api.collection()
    item = await api.item(collection_id, "draft")
    assert item["isDraft"] is True
    assert item["lastPublished"] is None
    assert await live_slugs(api, collection_id) == []
    live = await api.get(f"/collections/{collection_id}/items/{item['id']}/live")
    assert live.status == 404
    explicit = await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "q", "slug": "queued"}, "isDraft": False},
    )
    assert explicit.body["isDraft"] is False


async def test_publish_items_makes_them_live(api: Api, clock: TimeControl) -> None:
    collection_id = await api.collection()
    item = await api.item(collection_id, "post")
    clock.advance(5)
    answer = await api.post(
        f"/collections/{collection_id}/items/publish", {"itemIds": [item["id"]]}
    )
    assert answer.status == 202
    assert answer.body == {"publishedItemIds": [item["id"]], "errors": []}
    staged = await api.get(f"/collections/{collection_id}/items/{item['id']}")
    assert staged.body["isDraft"] is False
    assert staged.body["lastPublished"] == "2025-03-01T12:00:05.000Z"
    assert await live_slugs(api, collection_id) == ["post"]


async def test_publish_reports_unknown_and_archived_ids(api: Api) -> None:
    collection_id = await api.collection()
    good = await api.item(collection_id, "good")
    archived = await api.item(collection_id, "old")
    await api.patch(f"/collections/{collection_id}/items/{archived['id']}", {"isArchived": True})
    unknown = "0123456789abcdef01234567"
    answer = await api.post(
        f"/collections/{collection_id}/items/publish",
        {"itemIds": [good["id"], unknown, archived["id"]]},
    )
    assert answer.status == 202
    assert answer.body["publishedItemIds"] == [good["id"]]
    assert len(answer.body["errors"]) == 2
    assert unknown in answer.body["errors"][0]
    assert archived["id"] in answer.body["errors"][1]


async def test_staged_edit_of_a_published_item_leaves_live_alone(api: Api) -> None:
    collection_id = await api.collection()
    item = await api.item(collection_id, "post")
    await api.post(f"/collections/{collection_id}/items/publish", {"itemIds": [item["id"]]})
    edited = await api.patch(
        f"/collections/{collection_id}/items/{item['id']}", {"fieldData": {"name": "New"}}
    )
    assert edited.body["fieldData"]["name"] == "New"
    live = await api.get(f"/collections/{collection_id}/items/{item['id']}/live")
    assert live.body["fieldData"]["name"] == "Post"
    await api.post(f"/collections/{collection_id}/items/publish", {"itemIds": [item["id"]]})
    live = await api.get(f"/collections/{collection_id}/items/{item['id']}/live")
    assert live.body["fieldData"]["name"] == "New"


async def test_create_live_publishes_at_once(api: Api) -> None:
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items/live",
        {"items": [{"fieldData": {"name": "L", "slug": "live-one"}}]},
    )
    assert answer.status == 202
    created = answer.body["items"][0]
    assert created["isDraft"] is False
    assert created["lastPublished"] is not None
    assert await live_slugs(api, collection_id) == ["live-one"]


async def test_live_patch_of_a_never_published_item_is_409(api: Api) -> None:
    collection_id = await api.collection()
    item = await api.item(collection_id, "draft")
    single = await api.patch(
        f"/collections/{collection_id}/items/{item['id']}/live", {"fieldData": {"name": "x"}}
    )
    assert single.status == 409
    assert single.body["code"] == "conflict"
    bulk = await api.patch(
        f"/collections/{collection_id}/items/live",
        {"items": [{"id": item["id"], "fieldData": {"name": "x"}}]},
    )
    assert bulk.status == 409


async def test_live_patch_updates_live_and_staged(api: Api) -> None:
    collection_id = await api.collection()
    created = await api.post(
        f"/collections/{collection_id}/items/live", {"fieldData": {"name": "A", "slug": "a"}}
    )
    item_id = created.body["id"]
    answer = await api.patch(
        f"/collections/{collection_id}/items/{item_id}/live", {"fieldData": {"name": "B"}}
    )
    assert answer.status == 200
    live = await api.get(f"/collections/{collection_id}/items/{item_id}/live")
    staged = await api.get(f"/collections/{collection_id}/items/{item_id}")
    assert live.body["fieldData"]["name"] == "B"
    assert staged.body["fieldData"]["name"] == "B"


async def test_live_item_set_to_draft_stays_live_with_changes_staged(api: Api) -> None:
    collection_id = await api.collection()
    created = await api.post(
        f"/collections/{collection_id}/items/live", {"fieldData": {"name": "A", "slug": "a"}}
    )
    item_id = created.body["id"]
    answer = await api.patch(
        f"/collections/{collection_id}/items/{item_id}/live",
        {"isDraft": True, "fieldData": {"name": "Draft change"}},
    )
    assert answer.status == 200
    assert answer.body["isDraft"] is True
    assert answer.body["lastPublished"] is not None
    live = await api.get(f"/collections/{collection_id}/items/{item_id}/live")
    assert live.status == 200
    assert live.body["fieldData"]["name"] == "A"


async def test_unpublish_sets_draft_and_clears_last_published(api: Api) -> None:
    collection_id = await api.collection()
    first = await api.post(
        f"/collections/{collection_id}/items/live", {"fieldData": {"name": "A", "slug": "a"}}
    )
    second = await api.post(
        f"/collections/{collection_id}/items/live", {"fieldData": {"name": "B", "slug": "b"}}
    )
    single = await api.delete(f"/collections/{collection_id}/items/{first.body['id']}/live")
    assert single.status == 204
    bulk = await api.delete(
        f"/collections/{collection_id}/items/live", {"items": [{"id": second.body["id"]}]}
    )
    assert bulk.status == 204
    assert await live_slugs(api, collection_id) == []
    staged = await api.get(f"/collections/{collection_id}/items/{first.body['id']}")
    assert staged.body["isDraft"] is True
    assert staged.body["lastPublished"] is None


async def test_archived_items_leave_the_live_set_at_the_next_site_publish(api: Api) -> None:
    # Source: Webflow's docs (issue 17): archiving takes an item off the live site at the next
    # site publish, "queued to be archived" until then; the live version stays meanwhile.
    collection_id = await api.collection()
    created = await api.post(
        f"/collections/{collection_id}/items/live", {"fieldData": {"name": "A", "slug": "a"}}
    )
    answer = await api.patch(
        f"/collections/{collection_id}/items/{created.body['id']}", {"isArchived": True}
    )
    assert answer.body["isArchived"] is True
    assert await live_slugs(api, collection_id) == ["a"]
    published = await api.post(
        f"/sites/{api.sandbox.site_id}/publish", {"publishToWebflowSubdomain": True}
    )
    assert published.status == 202
    assert await live_slugs(api, collection_id) == []


async def test_site_publish_publishes_queued_items_not_drafts(
    sandbox: Sandbox, api: Api, clock: TimeControl
) -> None:
    collection_id = await api.collection()
    await api.item(collection_id, "draft")
    await api.post(
        f"/collections/{collection_id}/items",
        {"fieldData": {"name": "Q", "slug": "queued"}, "isDraft": False},
    )
    live = await api.post(
        f"/collections/{collection_id}/items/live", {"fieldData": {"name": "L", "slug": "live"}}
    )
    await api.patch(
        f"/collections/{collection_id}/items/{live.body['id']}",
        {"isDraft": True, "fieldData": {"name": "L2"}},
    )
    publish = await api.post(
        f"/sites/{sandbox.site_id}/publish", {"publishToWebflowSubdomain": True}
    )
    assert publish.status == 202
    assert publish.body["publishScope"] == "site"
    assert sorted(await live_slugs(api, collection_id)) == ["live", "queued"]
    still = await api.get(f"/collections/{collection_id}/items/{live.body['id']}/live")
    assert still.body["fieldData"]["name"] == "L"
    site = await api.get(f"/sites/{sandbox.site_id}")
    assert site.body["lastPublished"] == "2025-03-01T12:00:00.000Z"
    clock.advance(1)


async def test_site_publish_is_limited_per_interval(
    sandbox: Sandbox, api: Api, clock: TimeControl
) -> None:
    path = f"/sites/{sandbox.site_id}/publish"
    assert (await api.post(path, {"publishToWebflowSubdomain": True})).status == 202
    clock.advance(20)
    again = await api.post(path, {"publishToWebflowSubdomain": True})
    assert again.status == 429
    assert again.body["code"] == "too_many_requests"
    assert float(again.headers["Retry-After"]) == 40
    clock.advance(40)
    assert (await api.post(path, {"publishToWebflowSubdomain": True})).status == 202


async def test_site_publish_needs_a_target(sandbox: Sandbox, api: Api) -> None:
    answer = await api.post(f"/sites/{sandbox.site_id}/publish", {})
    assert answer.status == 400


async def test_list_pagination_filters_and_sorting(api: Api, clock: TimeControl) -> None:
    collection_id = await api.collection()
    for slug in ("c", "a", "b", "d", "e"):
        await api.item(collection_id, slug)
        clock.advance(1)
    path = f"/collections/{collection_id}/items"
    page = await api.get(path, params={"offset": "1", "limit": "2"})
    assert page.body["pagination"] == {"limit": 2, "offset": 1, "total": 5}
    assert [i["fieldData"]["slug"] for i in page.body["items"]] == ["a", "b"]
    by_slug = await api.get(path, params={"sortBy": "slug", "sortOrder": "desc"})
    assert [i["fieldData"]["slug"] for i in by_slug.body["items"]] == ["e", "d", "c", "b", "a"]
    one = await api.get(path, params={"slug": "d"})
    assert [i["fieldData"]["slug"] for i in one.body["items"]] == ["d"]
    named = await api.get(path, params={"name": "B"})
    assert [i["fieldData"]["slug"] for i in named.body["items"]] == ["b"]
    too_many = await api.get(path, params={"limit": "101"})
    assert too_many.status == 400
    bad_sort = await api.get(path, params={"sortBy": "colour"})
    assert bad_sort.status == 400
    recent = await api.get(path, params={"createdOn[gte]": "2025-03-01T12:00:03Z"})
    assert [i["fieldData"]["slug"] for i in recent.body["items"]] == ["d", "e"]


async def test_bulk_create_makes_one_item_per_locale(make_sandbox: SandboxFactory) -> None:
    sandbox, api = await make_sandbox(locales=("en", "fr", "de"))
    site = await api.get(f"/sites/{sandbox.site_id}")
    locales = site.body["locales"]
    assert [s["tag"] for s in locales["secondary"]] == ["fr", "de"]
    primary = locales["primary"]["cmsLocaleId"]
    french = locales["secondary"][0]["cmsLocaleId"]
    collection_id = await api.collection()
    answer = await api.post(
        f"/collections/{collection_id}/items/bulk",
        {
            "cmsLocaleIds": [primary, french],
            "fieldData": [{"name": "One", "slug": "one"}, {"name": "Two", "slug": "two"}],
        },
    )
    assert answer.status == 202
    pairs = [(i["fieldData"]["slug"], i["cmsLocaleId"]) for i in answer.body["items"]]
    assert pairs == [("one", primary), ("one", french), ("two", primary), ("two", french)]
    assert answer.body["items"][0]["id"] == answer.body["items"][1]["id"]
    in_french = await api.get(f"/collections/{collection_id}/items", params={"cmsLocaleId": french})
    assert [i["cmsLocaleId"] for i in in_french.body["items"]] == [french, french]
    item_id = answer.body["items"][0]["id"]
    patched = await api.patch(
        f"/collections/{collection_id}/items/{item_id}",
        {"cmsLocaleId": french, "fieldData": {"name": "Un"}},
    )
    assert patched.body["cmsLocaleId"] == french
    primary_view = await api.get(f"/collections/{collection_id}/items/{item_id}")
    assert primary_view.body["fieldData"]["name"] == "One"
    published = await api.post(
        f"/collections/{collection_id}/items/publish",
        {"items": [{"id": item_id, "cmsLocaleIds": [french]}]},
    )
    assert published.body["publishedItemIds"] == [item_id]
    live_fr = await api.get(
        f"/collections/{collection_id}/items/live", params={"cmsLocaleId": french}
    )
    assert [i["fieldData"]["name"] for i in live_fr.body["items"]] == ["Un"]
    state = await api.get(sandbox.root_url + "/_sandbox/state")
    assert state.body["itemCount"][sandbox.site_id] == 2
    unknown_locale = await api.post(
        f"/collections/{collection_id}/items/bulk",
        {"cmsLocaleIds": ["0123456789abcdef01234567"], "fieldData": {"name": "x", "slug": "x"}},
    )
    assert unknown_locale.status == 400
