"""WebflowApi against the real sandbox: what is sent again, and what is counted and told."""

from __future__ import annotations

import pytest

from flowport.base.errors import RetriableError, ServerError
from flowport.pipeline.retry import RetryPolicy
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from flowport.pipeline.webflow.reliable import WebflowApi
from tests.engine.conftest import make_collection, set_faults

QUICK = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001)


async def test_a_create_is_not_sent_again_after_a_5xx_but_an_update_is(
    sandbox: Sandbox, client: WebflowClient
) -> None:
    collection_id = await make_collection(client, sandbox.site_id)
    notices: list[tuple[str, int | None]] = []

    def notice(collection: str, error: RetriableError) -> None:
        notices.append((collection, error.status))

    api = WebflowApi(client, policy=QUICK, on_retry=notice)
    await set_faults(sandbox, FaultConfig(error_rate=1.0))

    with pytest.raises(ServerError):
        await api.create_items(
            collection_id, [{"name": "A", "slug": "a"}], live=False, collection="posts"
        )
    # A 5xx may have landed: a create is read back by its caller, never sent again here.
    assert (api.stats.requests, api.stats.retries) == (1, 0)

    with pytest.raises(ServerError):
        await api.update_items(
            collection_id, [{"id": "a" * 24, "fieldData": {"name": "B"}}], live=False
        )
    assert (api.stats.requests, api.stats.retries) == (2, QUICK.max_attempts - 1)
    assert [collection for collection, _ in notices] == [""] * (QUICK.max_attempts - 1)
    assert all(status is not None and status >= 500 for _, status in notices)
    assert api.stats.rate_limited == 0


async def test_items_are_read_page_by_page_newest_first(
    sandbox: Sandbox, client: WebflowClient
) -> None:
    collection_id = await make_collection(client, sandbox.site_id)
    for start in range(0, 150, 50):
        await client.create_items(
            collection_id,
            [{"name": f"Item {i}", "slug": f"item-{i}"} for i in range(start, start + 50)],
            live=False,
        )
    api = WebflowApi(client)

    items = [item async for item in api.iter_items(collection_id, newest_first=True)]

    assert len(items) == 150
    # The last request's items come first.
    assert items[0].field_data["slug"] in {f"item-{i}" for i in range(100, 150)}
    assert api.stats.requests == 2
