"""Webflow's own Python SDK (PyPI ``webflow==2.0.0``), unmodified, runs a CMS session here.

The SDK is Fern-generated from the same OpenAPI file, so it is a second, independent reader of the
contract: it builds the requests (paths, bodies, query strings) the way Webflow's clients do and
parses the answers into its own models. Its async client shares the event loop the sandbox serves
on; an httpx response hook also holds every answer it receives to the spec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from webflow import (
    AsyncWebflow,
    CollectionItemPatchSingleFieldData,
    NotFoundError,
    StaticField,
    WebflowEnvironment,
)
from webflow.resources.collections.resources.items import (
    CreateBulkCollectionItemRequestBodyFieldDataOneItem,
    ItemIDs,
)

from tests.conftest import TOKEN, UNLIMITED_RATE

from .spec_validator import ConformanceError, SpecValidator, require_spec, spec_validator

pytestmark = pytest.mark.shared

UNKNOWN_ID = "0123456789abcdef01234567"
ITEM_COUNT = 7


@pytest.fixture
def sandbox_settings() -> dict[str, Any]:
    # Checked before the sandbox starts, so a missing spec skips (or fails in CI) at once.
    require_spec()
    # Real time: the folder's hand-moved clock is for the tests of time.
    return {"rate_limit": UNLIMITED_RATE, "window_seconds": 60.0, "seed": 0}


class SpecHook:
    """An httpx response hook that checks each answer the SDK receives against the spec."""

    def __init__(self, validator: SpecValidator) -> None:
        self.validator = validator
        self.failures: list[str] = []
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(self, response: httpx.Response) -> None:
        body = await response.aread()
        request = response.request
        self.calls.append((request.method, request.url.path, response.status_code))
        try:
            self.validator.assert_response(
                request.method, str(request.url), response.status_code, response.headers, body
            )
        except ConformanceError as exc:
            self.failures.append(str(exc))


@pytest.fixture
async def sdk(sandbox: Any) -> AsyncIterator[tuple[AsyncWebflow, SpecHook]]:
    hook = SpecHook(spec_validator())
    environment = WebflowEnvironment(
        base=sandbox.base_url, data_api=sandbox.base_url, content_delivery_api=sandbox.base_url
    )
    async with httpx.AsyncClient(timeout=30.0, event_hooks={"response": [hook]}) as http:
        yield AsyncWebflow(environment=environment, access_token=TOKEN, httpx_client=http), hook


async def test_sdk_runs_a_cms_session_unmodified(
    sandbox: Any, sdk: tuple[AsyncWebflow, SpecHook]
) -> None:
    client, hook = sdk
    site_id = sandbox.site_id

    sites = await client.sites.list()
    assert site_id in [site.id for site in sites.sites or []]

    collection = await client.collections.create(
        site_id,
        display_name="Recipes",
        singular_name="Recipe",
        slug="recipes",
        fields=[
            StaticField(type="PlainText", display_name="Summary", is_required=False),
            StaticField(type="Number", display_name="Servings", is_required=False),
        ],
    )
    assert collection.id
    created_field = await client.collections.fields.create(
        collection.id,
        request=StaticField(type="PlainText", display_name="Cuisine", help_text="Where from"),
    )
    fetched = await client.collections.get(collection.id)
    slugs = {f.slug for f in fetched.fields}
    assert {"name", "slug", "summary", "servings", "cuisine"} <= slugs
    assert created_field.display_name == "Cuisine"

    bulk = await client.collections.items.create_items(
        collection.id,
        field_data=[
            CreateBulkCollectionItemRequestBodyFieldDataOneItem(
                name=f"Recipe {n}", slug=f"recipe-{n}", servings=n
            )
            for n in range(ITEM_COUNT)
        ],
    )
    assert bulk is not None

    # Walk every page at a small limit; the pagination block must add up.
    seen: list[str] = []
    offset = 0
    while True:
        page = await client.collections.items.list_items(collection.id, offset=offset, limit=3)
        assert page.pagination.total == ITEM_COUNT
        seen.extend(item.id for item in page.items if item.id)
        offset += len(page.items)
        if not page.items or offset >= page.pagination.total:
            break
    assert len(seen) == ITEM_COUNT
    assert len(set(seen)) == ITEM_COUNT

    published = await client.collections.items.publish_item(
        collection.id, request=ItemIDs(item_ids=[*seen[:3], UNKNOWN_ID])
    )
    assert sorted(published.published_item_ids or []) == sorted(seen[:3])
    assert any(UNKNOWN_ID in message for message in published.errors or [])
    live = await client.collections.items.get_item_live(collection.id, seen[0])
    assert live.id == seen[0]

    updated = await client.collections.items.update_item(
        collection.id,
        seen[1],
        field_data=CollectionItemPatchSingleFieldData(name="Recipe one, revised", slug="recipe-1"),
    )
    assert updated.field_data is not None
    assert updated.field_data.name == "Recipe one, revised"
    reread = await client.collections.items.get_item(collection.id, seen[1])
    assert reread.field_data is not None
    assert reread.field_data.name == "Recipe one, revised"

    await client.collections.items.delete_item_live(collection.id, seen[0])
    with pytest.raises(NotFoundError):
        await client.collections.items.get_item_live(collection.id, seen[0])
    staged = await client.collections.items.get_item(collection.id, seen[0])
    assert staged.id == seen[0]

    await client.collections.items.delete_item(collection.id, seen[2])
    with pytest.raises(NotFoundError):
        await client.collections.items.get_item(collection.id, seen[2])
    after = await client.collections.items.list_items(collection.id, limit=100)
    assert after.pagination.total == ITEM_COUNT - 1

    await client.collections.fields.delete(collection.id, created_field.id or "")
    await client.collections.delete(collection.id)
    with pytest.raises(NotFoundError):
        await client.collections.get(collection.id)

    assert hook.calls, "the hook saw no traffic: the SDK did not reach the sandbox"
    assert all(path.startswith("/v2/") for _method, path, _status in hook.calls)
    assert hook.failures == [], "\n\n".join(hook.failures)
