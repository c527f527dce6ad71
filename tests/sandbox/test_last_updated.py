"""``lastUpdated`` as Webflow keeps it: moved by every write of an item, whoever makes it (a
staged or a live PATCH, an archive), not by a publish or a read; the list endpoint filters on it
(``lastUpdated[gte]``, deepObject style, inclusive) and sorts by it. flowport's check for edits
made in Webflow (pipeline/stages/edits.py) relies on each of these."""

from __future__ import annotations

from pydantic import SecretStr

from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN
from tests.sandbox.conftest import Api, TimeControl


async def test_every_write_moves_last_updated_and_a_publish_does_not(
    sandbox: Sandbox, api: Api, clock: TimeControl
) -> None:
    collection_id = await api.collection()
    path = f"/collections/{collection_id}/items"
    ids = {}
    for slug in ("a", "b", "c", "d"):
        ids[slug] = (await api.item(collection_id, slug))["id"]
        clock.advance(1)
    created = {i["id"]: i["lastUpdated"] for i in (await api.get(path)).body["items"]}

    published = await api.post(f"{path}/publish", {"itemIds": [ids["a"], ids["d"]]})
    assert published.body["publishedItemIds"] == [ids["a"], ids["d"]]
    clock.advance(1)
    staged = await api.patch(path, {"items": [{"id": ids["b"], "fieldData": {"name": "B2"}}]})
    assert staged.status == 200
    clock.advance(1)
    archived = await api.patch(path, {"items": [{"id": ids["c"], "isArchived": True}]})
    assert archived.status == 200
    clock.advance(1)
    live = await api.patch(
        f"{path}/live", {"items": [{"id": ids["d"], "fieldData": {"name": "D2"}}]}
    )
    assert live.status == 200
    await api.get(f"{path}/{ids['a']}")

    now = {i["id"]: i for i in (await api.get(path)).body["items"]}
    # Published (and read), not written: lastUpdated stays, lastPublished says when.
    assert now[ids["a"]]["lastUpdated"] == created[ids["a"]]
    assert now[ids["a"]]["lastPublished"] == "2025-03-01T12:00:04.000Z"
    assert now[ids["b"]]["lastUpdated"] == "2025-03-01T12:00:05.000Z"
    assert now[ids["c"]]["lastUpdated"] == "2025-03-01T12:00:06.000Z"
    assert now[ids["d"]]["lastUpdated"] == "2025-03-01T12:00:07.000Z"
    # The answer to the write says the same lastUpdated as the item holds.
    assert live.body["items"][0]["lastUpdated"] == now[ids["d"]]["lastUpdated"]


async def test_the_client_lists_items_updated_since_newest_first(
    sandbox: Sandbox, api: Api, clock: TimeControl
) -> None:
    collection_id = await api.collection()
    path = f"/collections/{collection_id}/items"
    ids = {}
    for slug in ("a", "b", "c"):
        ids[slug] = (await api.item(collection_id, slug))["id"]
        clock.advance(1)
    await api.patch(path, {"items": [{"id": ids["a"], "fieldData": {"name": "A2"}}]})
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        page = await client.list_items(
            collection_id,
            updated_since="2025-03-01T12:00:01.000Z",  # b's: the bound is inclusive
            sort_by="lastUpdated",
            sort_order="desc",
        )
    assert [i.slug for i in page.items] == ["a", "c", "b"]
    assert page.pagination.total == 3
    assert page.items[0].last_updated == "2025-03-01T12:00:03.000Z"
